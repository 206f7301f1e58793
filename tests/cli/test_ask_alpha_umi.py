"""`lumos-graph ask --agent alpha-umi` with scripted models: the trace and the JSON report."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lumos_graph.cli import _alpha_umi
from lumos_graph.cli.main import main
from tests.fakes import scripted

LINES = ["Compute 3 * 12 - 10.\nNext: caller.",
         'Action: calculater\nAction Input: {"formula": "3 * 12 - 10"}',
         "The calculator gave 26.\nNext: conclusion.", "26"]


@pytest.fixture
def scripted_roles(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every role is one scripted model (no grammar); records the specs asked for."""
    asked: list[list[str]] = []

    def load(err: Any, specs: list[str], then: Any = None, overrides: Any = None) -> list[Any]:
        asked.append(list(specs))
        model = scripted(LINES)
        models = [model] * len(specs)
        if then is not None:
            then(models)
        return models

    monkeypatch.setattr(_alpha_umi, "load_models", load)
    return asked


def test_json_report_shows_decisions_actions_and_answer(
        scripted_roles: list[list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ask", "--agent", "alpha-umi", "--json", "How many pencils?"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (doc["mode"], doc["answer"], doc["status"]) == ("alpha-umi", "26", "answered")
    assert [d["next"] for d in doc["decisions"]] == ["caller", "conclusion"]
    action = doc["actions"][0]
    assert (action["tool"], action["result"]) == ("Calculator", ["26"])
    assert action["snapped"]["written"] == "calculater"  # this fake takes no grammar
    assert scripted_roles == [["qwen2.5-coder-0.5b"] * 3]  # the plain model in every role


def test_the_trace_prints_planner_caller_and_answer(
        scripted_roles: list[list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "--agent", "alpha-umi", "How many pencils?"]) == 0
    out = capsys.readouterr().out
    assert "Planner: Compute 3 * 12 - 10. -> Next: caller." in out
    assert 'Calculator({"formula": "3 * 12 - 10"})  [snapped from \'calculater\']  ->  26' in out
    assert "Answer: 26" in out and "[alpha-umi;" in out


def test_samples_are_refused_with_alpha_umi(
        scripted_roles: list[list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "--agent", "alpha-umi", "--samples", "3", "Q?"]) == 2
    assert "--samples" in capsys.readouterr().err
