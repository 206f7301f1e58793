"""`lumos-graph eval` with the real default model: every agent, every output file, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lumos_graph.evaluation.run import DEFAULT_AGENTS as AGENTS  # what the CLI runs
from lumos_graph.evaluation.run import SUMMARY_KEYS

pytestmark = pytest.mark.model


def evaluate(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "lumos_graph", "eval", *args],
                            capture_output=True, text=True, timeout=1800,
                            stdin=subprocess.DEVNULL)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_a_small_real_eval_writes_every_output_and_resumes(
    tmp_path: Path, default_gguf: Path
) -> None:
    out = tmp_path / "run"
    first = evaluate("maths-dev", "--limit", "2", "--out", str(out), "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["dataset"] == "maths-dev" and summary["n"] == 2
    assert list(summary["agents"]) == list(AGENTS)
    for figures in summary["agents"].values():
        assert set(SUMMARY_KEYS) <= set(figures)
        assert 0 <= figures["accuracy"] <= 1
        assert figures["model_calls_per_question"] >= 1
    for name in ("run.json", "results.json", "results.md", "accuracy_vs_seconds.png"):
        assert (out / name).stat().st_size > 0, name
    for agent in AGENTS:
        rows = [json.loads(x) for x in
                (out / "trajectories" / f"{agent}.jsonl").read_text().splitlines()]
        assert len(rows) == 2
        for row in rows:
            assert row["reward"] in (0.0, 1.0)
            assert row["model_calls"], f"{agent} recorded no model call"
            assert all(c["prompt"] and "output" in c for c in row["model_calls"])
            assert row["usage"]["model_calls"] == len(row["model_calls"])
    # as they ship: LUMOS on maths with the trained adapter (its bare protocol prompts, no
    # few-shot turns), the other agents with the plain default model
    assert "with qwen2.5-coder-0.5b-lumos-maths" in first.stderr
    for agent in ("lumos-onepass", "lumos-iterative"):
        rows = [json.loads(x) for x in
                (out / "trajectories" / f"{agent}.jsonl").read_text().splitlines()]
        # no few-shot turns: the module's system turn naming its formulation, then the task
        for r in rows:
            first_call = r["model_calls"][0]["prompt"]
            assert [m["role"] for m in first_call] == ["system", "user"], agent
            assert "formulation" in first_call[0]["content"], agent
    react = [json.loads(x) for x in (out / "trajectories" / "react.jsonl").read_text().splitlines()]
    assert any(c["prompt"][0]["role"] == "system" for r in react for c in r["model_calls"])

    again = evaluate("maths-dev", "--limit", "2", "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("(saved)") == 2 * len(AGENTS)  # nothing was run twice
    assert "| lumos-onepass |" in again.stdout and "accuracy_vs_seconds.png" in again.stdout
