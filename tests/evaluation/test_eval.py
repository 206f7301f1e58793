"""`lumos-graph eval`'s runner: agents side by side, trajectories, outputs, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lumos_graph.errors import ConfigError
from lumos_graph.evaluation.run import format_table, run_eval
from tests.fakes import rule_model

ITEMS = [
    {"id": "a", "question": "What is 2 plus 3?", "answer": "5", "kind": "maths"},
    {"id": "b", "question": "What is 4 plus 4?", "answer": "8", "kind": "maths"},
    {"id": "c", "question": "What is 1 plus 1?", "answer": "2", "kind": "maths"},
]
RULES = [
    ("subgoal-based plan", "Subgoal 1: Add the numbers."),
    ("Task: What is 2 plus 3?", "R1 = Calculator(2 + 3)"),
    ("Task: What is 4 plus 4?", "R1 = Calculator(4 + 5)"),  # a wrong grounding
    ("Task: What is 1 plus 1?", "R1 = Calculator(1 + 1)"),
    ("What is 2 plus 3?", "2 plus 3 makes 5.\nAnswer: 5"),
    ("What is 4 plus 4?", "Answer: 8"),
    ("What is 1 plus 1?", "I am not sure."),  # no Answer: line: a format error
]


def test_agents_run_side_by_side_and_every_output_is_written(tmp_path: Path) -> None:
    model = rule_model(RULES)
    summary = run_eval("toy", ITEMS, model, model_name="rules",
                       agents=["lumos-onepass", "direct"], out=tmp_path)
    onepass, direct = summary["agents"]["lumos-onepass"], summary["agents"]["direct"]
    assert onepass["accuracy"] == pytest.approx(2 / 3)
    assert onepass["model_calls_per_question"] == 2
    assert direct["accuracy"] == pytest.approx(2 / 3)
    assert direct["format_errors"] == 1
    for name in ("run.json", "results.json", "results.md", "accuracy_vs_seconds.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "accuracy_vs_seconds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["agents"]["direct"]["n"] == 3
    rows = [json.loads(line) for line in
            (tmp_path / "trajectories" / "lumos-onepass.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    first = rows[0]
    assert first["reward"] == 1.0 and first["correct"] is True
    assert first["answer"] == "5"
    assert [c["output"] for c in first["model_calls"]] == [
        "Subgoal 1: Add the numbers.", "R1 = Calculator(2 + 3)"]
    assert first["model_calls"][0]["prompt"][0]["role"] == "system"
    assert first["actions"][0]["tool"] == "Calculator"
    assert first["ground_turns"][-1]["content"] == "R1 = Calculator(2 + 3)"
    table = format_table(summary)
    assert "| lumos-onepass | 67% (2/3) |" in table and "| direct | 67% (2/3) |" in table


def test_an_interrupted_run_resumes_without_recomputing(tmp_path: Path) -> None:
    model = rule_model(RULES)
    seen: list[tuple[str, str]] = []

    def stop_after_three(done: int, total: int, row: dict[str, Any], resumed: bool) -> None:
        seen.append((row["agent"], row["id"]))
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_eval("toy", ITEMS, model, model_name="rules", agents=["lumos-onepass", "direct"],
                 out=tmp_path, on_result=stop_after_three)
    calls_before = len(model.calls)
    assert calls_before == 5  # a: onepass 2 + direct 1; b: onepass 2
    # a torn last line (killed mid-write) is dropped and its example run again
    direct_file = tmp_path / "trajectories" / "direct.jsonl"
    with direct_file.open("a") as handle:
        handle.write('{"id": "b", "agent": "dir')
    resumed: list[bool] = []
    summary = run_eval("toy", ITEMS, model, model_name="rules",
                       agents=["lumos-onepass", "direct"], out=tmp_path,
                       on_result=lambda d, t, r, was: resumed.append(was))
    assert resumed == [True, True, True, False, False, False]
    assert len(model.calls) - calls_before == 1 + 2 + 1  # b direct, c onepass, c direct
    assert summary["agents"]["direct"]["n"] == 3
    ids = [json.loads(x)["id"] for x in direct_file.read_text().splitlines()]
    assert ids == ["a", "b", "c"]


def test_a_resumed_folder_must_hold_the_same_dataset_and_model(tmp_path: Path) -> None:
    run_eval("toy", ITEMS[:1], rule_model(RULES), model_name="rules", agents=["direct"],
             out=tmp_path)
    with pytest.raises(ConfigError, match="give another --out"):
        run_eval("toy", ITEMS[:1], rule_model(RULES), model_name="other", agents=["direct"],
                 out=tmp_path)
    with pytest.raises(ConfigError, match="unknown agent 'reflexion'"):
        run_eval("toy", ITEMS[:1], rule_model(RULES), model_name="rules",
                 agents=["reflexion"], out=tmp_path)


def test_the_table_shows_intervals_and_a_yes_no_set_its_majority_class(tmp_path: Path) -> None:
    items = [
        {"id": "y1", "question": "Is ice cold?", "answer": "Yes", "kind": "yesno"},
        {"id": "y2", "question": "Is fire cold?", "answer": "No", "kind": "yesno"},
        {"id": "y3", "question": "Is snow hot?", "answer": "No", "kind": "yesno"},
    ]
    rules = [("Is ice cold?", "Ice is frozen water.\nAnswer: yes"),
             ("Is fire cold?", "No, fire is hot."),  # a leading no is the answer
             ("Is snow hot?", "Answer: yes")]
    summary = run_eval("toy-yesno", items, rule_model(rules), model_name="rules",
                       agents=["direct"], out=tmp_path)
    direct = summary["agents"]["direct"]
    assert direct["correct"] == 2
    low, high = direct["accuracy_ci95"]
    assert 0 < low < 2 / 3 < high < 1
    assert summary["majority_class"] == {"answer": "no", "correct": 2, "n": 3,
                                         "accuracy": pytest.approx(2 / 3)}
    table = (tmp_path / "results.md").read_text()
    assert "| agent | accuracy | 95% interval | s / question | model calls / q |" in table
    assert f"| direct | 67% (2/3) | {100 * low:.0f}-{100 * high:.0f}% |" in table
    assert 'always answering "no" scores 67% (2/3)' in table
    assert json.loads((tmp_path / "results.json").read_text())["majority_class"]["n"] == 3


def test_a_maths_set_has_no_majority_class(tmp_path: Path) -> None:
    summary = run_eval("toy", ITEMS, rule_model(RULES), model_name="rules", agents=["direct"],
                       out=tmp_path)
    assert "majority_class" not in summary
    assert "Majority class" not in format_table(summary)


def test_a_voting_agent_keeps_every_branch_in_its_trajectory(tmp_path: Path) -> None:
    from lumos_graph.evaluation.run import EvalOptions

    model = rule_model(RULES)
    run_eval("toy", ITEMS[:1], model, model_name="rules", agents=["lumos-onepass"],
             out=tmp_path, options=EvalOptions(samples=3))
    row = json.loads((tmp_path / "trajectories" / "lumos-onepass.jsonl").read_text())
    assert [s["answer"] for s in row["samples"]] == ["5", "5", "5"]
    assert [s["votes"] for s in row["samples"]] == [3, 3, 3]
    assert sum(s["chosen"] for s in row["samples"]) == 1
    single = tmp_path / "single"
    run_eval("toy", ITEMS[:1], model, model_name="rules", agents=["lumos-onepass"],
             out=single, options=EvalOptions(samples=1))
    assert "samples" not in json.loads((single / "trajectories" / "lumos-onepass.jsonl").read_text())
    with pytest.raises(ConfigError, match="lumos-onepass runs with 3 samples, not 1"):
        run_eval("toy", ITEMS[:1], model, model_name="rules", agents=["lumos-onepass"],
                 out=tmp_path, options=EvalOptions(samples=1))
