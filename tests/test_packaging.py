"""The wheel ships tools/ and graphs/ inside lumos_graph, and nothing as top-level packages."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

import lumos_graph

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    (path,) = out.glob("lumos_graph-*.whl")
    return path


def test_wheel_layout(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"lumos_graph"}
    for expected in ("lumos_graph/py.typed", "lumos_graph/tools/maths/actions.py",
                     "lumos_graph/tools/qa/knowledge.py", "lumos_graph/tools/sql/actions.py",
                     "lumos_graph/tools/vqa/actions.py", "lumos_graph/graphs/lumos.py",
                     "lumos_graph/agent/protocol.py", "lumos_graph/llm/llama.py",
                     "lumos_graph/evaluation/run.py", "lumos_graph/training/train.py",
                     "lumos_graph/cli/main.py", "lumos_graph/data/maths_test.jsonl",
                     "lumos_graph/data/adapters/qwen2.5-coder-0.5b-lumos-maths-lora-f16.gguf"):
        assert expected in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "lumos-graph = lumos_graph.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.slow
def test_wheel_installs_and_imports_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    # Dependencies come from this interpreter's site-packages through a plain path entry; the
    # development (editable) install of lumos-graph is not visible there because .pth files of
    # that directory are not processed.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)  # what pip does for a pure-Python wheel, without needing pip here
    probe = (
        "import importlib.util, lumos_graph, lumos_graph.tools, lumos_graph.graphs;"
        "import lumos_graph.tools.maths.actions, lumos_graph.graphs.lumos;"
        "print(lumos_graph.__file__);"
        "print(importlib.util.find_spec('tools') is None, importlib.util.find_spec('graphs') is None)"
    )
    result = subprocess.run([python, "-c", probe], cwd=tmp_path, check=True,
                            capture_output=True, text=True)
    first, second = result.stdout.splitlines()
    assert first.startswith(str(site))
    assert Path(lumos_graph.__file__).parent != Path(first).parent
    assert second == "True True"
