"""``pip install -e ".[test]"`` brings every package a test imports, named in the ``test`` extra
(directly, through an extra it includes, or as a dependency of lumos-graph itself), not left to
some other package's dependencies."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# calls whose first argument names a module a test imports when it can (tests/needs.py)
IMPORT_CALLS = {"need", "importorskip", "_require", "import_module", "__import__"}


def imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if name in IMPORT_CALLS and isinstance(first, ast.Constant) \
                    and isinstance(first.value, str):
                yield first.value.split(".")[0]


def third_party_imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for module in imported_modules(path):
            if module in sys.stdlib_module_names or module in ("lumos_graph", "tests"):
                continue
            found.setdefault(module, set()).add(str(path.relative_to(ROOT)))
    return found


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def names_in_the_test_extra() -> set[str]:
    if sys.version_info < (3, 11):
        pytest.skip("reading pyproject.toml needs tomllib (Python 3.11+): run this test on 3.11+")
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    names = {_name(r) for r in project["dependencies"]}
    todo, seen = ["test"], set()
    while todo:
        extra = todo.pop()
        seen.add(extra)
        for requirement in extras[extra]:
            own = re.fullmatch(r"lumos-graph\[([\w,\s-]+)\]", requirement.strip())
            if own:
                todo += [e.strip() for e in own.group(1).split(",") if e.strip() not in seen]
            else:
                names.add(_name(requirement))
    return names


def test_every_package_a_test_imports_is_in_the_test_extra() -> None:
    listed = names_in_the_test_extra()
    distributions = packages_distributions()
    missing = []
    for module, users in sorted(third_party_imports().items()):
        dists = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
        if not dists & listed:
            names = ", ".join(sorted(dists)) or "not installed"
            missing.append(f"{module} ({names}), imported by {', '.join(sorted(users))}")
    assert not missing, "not in the test extra:\n" + "\n".join(missing)
