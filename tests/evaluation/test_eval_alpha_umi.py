"""`lumos-graph eval --agents alpha-umi`: the agent beside the others, its trajectory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lumos_graph.evaluation.run import AGENTS, format_table, run_eval
from tests.fakes import rule_model

ITEMS = [{"id": "a", "question": "What is 2 plus 3?", "answer": "5", "kind": "maths"}]
RULES = [  # the history each role reads ends differently; the first needle found wins
    ("Next: conclusion.", "5"),
    ("observation: 5", "The sum is 5.\nNext: conclusion."),
    ("Next: caller.", 'Action: Calculator\nAction Input: {"formula": "2 + 3"}'),
    ("What is 2 plus 3?", "Add the numbers.\nNext: caller."),
    ("subgoal-based plan", "Subgoal 1: Add the numbers."),
    ("Task: What is 2 plus 3?", "R1 = Calculator(2 + 4)"),
]


def test_alpha_umi_runs_beside_lumos_and_writes_its_history(tmp_path: Path) -> None:
    assert "alpha-umi" in AGENTS
    summary = run_eval("toy", ITEMS, rule_model(RULES), model_name="rules",
                       agents=["alpha-umi", "lumos-onepass"], out=tmp_path)
    umi = summary["agents"]["alpha-umi"]
    assert umi["accuracy"] == pytest.approx(1.0)
    assert umi["model_calls_per_question"] == 4
    assert summary["agents"]["lumos-onepass"]["accuracy"] == 0.0
    row = json.loads((tmp_path / "trajectories" / "alpha-umi.jsonl").read_text())
    assert row["answer"] == "5" and row["status"] == "answered"
    assert [d["next"] for d in row["decisions"]] == ["caller", "conclusion"]
    assert [t["role"] for t in row["history"]] == [
        "user", "assistant", "caller", "observation", "assistant", "conclusion"]
    assert row["actions"][0]["tool"] == "Calculator" and row["actions"][0]["result"] == ["5"]
    assert "| alpha-umi | 100% (1/1) |" in format_table(summary)
