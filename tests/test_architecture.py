"""The package's shape: one wing per concern, imports running one way, no import circles.

Read from the source with ``ast`` (nothing is imported), so the rules hold for lazy imports
inside functions too. Wings, from the top down; a module may import its own wing and any wing
below it, never one above:

    cli                    the lumos-graph command
    training               training data, contamination, LoRA training
    evaluation             eval runner, datasets, metrics, bench
    graphs                 one graph per agent architecture
    tools                  tool executors by domain (maths, qa, sql, vqa) and tool sets
    agent | llm            the LUMOS protocol and nodes | the llama.cpp backend (siblings:
                           neither imports the other, so agents run on any chat model)
    errors, jsonl          shared by all
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# where each part of the installed package lives in the repository
SOURCES = {"lumos_graph": ROOT / "lumos_graph", "lumos_graph.tools": ROOT / "tools",
           "lumos_graph.graphs": ROOT / "graphs"}
LAYERS: list[set[str]] = [
    {"__main__"}, {"cli"}, {"training"}, {"evaluation"}, {"graphs"}, {"tools"}, {"agent"},
    {"llm"}, {"errors", "jsonl"},
]
SIBLINGS = {"agent", "llm"}  # same level: neither may import the other


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = [*package.split("."), *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The package's modules that ``path`` imports, anywhere in the file."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import of {node.module}; use lumos_graph..."
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                yield name if name in known else node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: {t for t in imports(p, known) if t in known and t != m} for m, p in known.items()}


def wing(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "lumos_graph"


def level(name: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if name in layer)


def test_every_module_belongs_to_a_wing() -> None:
    unplaced = sorted({wing(m) for m in modules()} - set().union(*LAYERS) - {"lumos_graph", "data"})
    assert unplaced == [], f"modules outside the known wings: {unplaced}"


def test_imports_run_one_way() -> None:
    wrong = []
    for module, targets in graph().items():
        source = wing(module)
        for target in targets:
            goal = wing(target)
            if "lumos_graph" in (source, goal) or source == goal:
                continue  # the package facade (lazy public API) and a wing's own modules
            if level(goal) < level(source) or {source, goal} == SIBLINGS:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_agent_never_imports_llama_cpp() -> None:
    """Agents talk to any LangChain chat model; the llama.cpp backend stays in llm/."""
    known = modules()
    leaks = [m for m, p in known.items() if wing(m) == "agent"
             for t in imports(p, known) if t.split(".")[0] in {"llama_cpp"}]
    assert leaks == []


def test_no_import_circles() -> None:
    edges = graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert cycles == []


@pytest.mark.parametrize("wing_name", ["agent", "llm", "evaluation", "training", "cli"])
def test_the_wings_are_packages(wing_name: str) -> None:
    assert (ROOT / "lumos_graph" / wing_name / "__init__.py").is_file()


def test_a_layering_mistake_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule test itself works: a tool importing the CLI is reported."""
    fake_tools = tmp_path / "tools"
    fake_tools.mkdir()
    (fake_tools / "bad.py").write_text("from lumos_graph.cli.main import main\n")
    (tmp_path / "lumos_graph" / "cli").mkdir(parents=True)
    (tmp_path / "lumos_graph" / "cli" / "main.py").write_text("def main(): ...\n")
    monkeypatch.setitem(SOURCES, "lumos_graph", tmp_path / "lumos_graph")
    monkeypatch.setitem(SOURCES, "lumos_graph.tools", fake_tools)
    monkeypatch.setitem(SOURCES, "lumos_graph.graphs", tmp_path / "none")
    with pytest.raises(AssertionError, match="lumos_graph.tools.bad -> lumos_graph.cli.main"):
        test_imports_run_one_way()
