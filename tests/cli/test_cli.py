"""The command line: user mistakes give one clear line and exit 2, before any model loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def lumos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lumos_graph", *args], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_missing_model_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = lumos("ask", "--model", str(tmp_path / "nope.gguf"), "What is 2+2?")
    assert result.returncode == 2
    assert result.stderr.startswith("lumos-graph: error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_unknown_preset_and_not_a_gguf_file(tmp_path: Path) -> None:
    result = lumos("ask", "--model", "no-such-preset", "What is 2+2?")
    assert result.returncode == 2
    assert "no-such-preset" in result.stderr
    fake = tmp_path / "model.gguf"
    fake.write_text("not a model")
    result = lumos("ask", "--model", str(fake), "What is 2+2?")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_empty_question_and_bad_dataset() -> None:
    result = lumos("ask", "   ")
    assert result.returncode == 2
    assert "the question is empty" in result.stderr
    result = lumos("eval", "no-such-dataset.jsonl")
    assert result.returncode == 2
    assert "no dataset" in result.stderr


def test_models_lists_the_default_preset() -> None:
    result = lumos("models")
    assert result.returncode == 0
    assert "qwen2.5-coder-0.5b (default)" in result.stdout
    assert "qwen2.5-coder-0.5b-lumos-maths (default of LUMOS maths agents)" in result.stdout


def test_eval_dataset_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    binary = tmp_path / "bad.jsonl"
    binary.write_bytes(b"\xff\xfe\x00bad")
    result = lumos("eval", str(binary))
    assert result.returncode == 2
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"question": 5, "answer": "1"}\n')
    result = lumos("eval", str(wrong))
    assert result.returncode == 2
    assert "needs 'question' (a string)" in result.stderr


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("lumos-graph: error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    for needle in needles:
        assert needle in result.stderr
    assert result.stdout == ""


def test_tool_set_mistakes_are_one_line_errors_before_the_model_loads(tmp_path: Path) -> None:
    _one_line_error(lumos("ask", "--tools", "maths,web", "Q?"), "unknown tool set 'web'")
    _one_line_error(lumos("ask", "--tools", "sql", "How many tracks?"), "--db")
    _one_line_error(lumos("ask", "--tools", "sql", "--db", str(tmp_path / "no.sqlite"), "Q?"),
                    "no.sqlite")
    _one_line_error(lumos("ask", "--image", str(tmp_path / "no.png"), "What is it?"), "no.png")
    _one_line_error(lumos("ask", "--tools", "qa", "--kb", str(tmp_path / "none.sqlite"), "Q?"),
                    "lumos-graph index")
    _one_line_error(lumos("ask", "--tools", "vqa", "--vqa-model", str(tmp_path / "m.gguf"), "Q?"),
                    "--vqa-mmproj")


def test_index_needs_something_to_index(tmp_path: Path) -> None:
    _one_line_error(lumos("index", "--kb", str(tmp_path / "kb.sqlite")), "--wiki")


def test_index_builds_incrementally_and_sample_db_never_overwrites(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Alpha\n\nAlpha is the first letter.\n")
    (docs / "b.txt").write_text("Beta is the second letter.\n")
    kb = tmp_path / "kb.sqlite"
    first = lumos("index", str(docs), "--kb", str(kb))
    assert first.returncode == 0, first.stderr
    assert "2 added, 0 updated, 0 unchanged, 0 removed" in first.stdout
    assert f"{kb}: 2 documents, 2 passages" in first.stdout
    (docs / "b.txt").write_text("Beta is the second letter of the Greek alphabet.\n")
    again = lumos("index", str(docs), "--kb", str(kb))
    assert "0 added, 1 updated, 1 unchanged, 0 removed" in again.stdout
    existing = tmp_path / "chinook.sqlite"
    existing.write_bytes(b"mine")
    _one_line_error(lumos("sample-db", "chinook", str(existing)), "exists")
    assert existing.read_bytes() == b"mine"


def test_version_and_a_closed_pipe_are_quiet() -> None:
    from lumos_graph import __version__

    version = lumos("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"lumos-graph {__version__}"
    listing = subprocess.run(f"{sys.executable} -m lumos_graph datasets | head -1", shell=True,
                             capture_output=True, text=True, check=False)
    assert listing.stdout.startswith("maths-dev") and listing.stderr == ""


def test_a_grounded_program_prints_one_indented_line_per_program_line() -> None:
    from lumos_graph.cli._view import _action_line

    line = _action_line({"outputs": ["R1"], "tool": "Code", "args": "x = 3 * 12\nanswer = x - 10",
                         "error": None, "result": ["26"]})
    assert line == "R1 = Code(\n        x = 3 * 12\n        answer = x - 10\n    )  ->  26"
