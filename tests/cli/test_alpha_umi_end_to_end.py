"""alpha-UMi end to end with the real default model, through the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lumos_graph.agent.report import REPORT_KEYS
from lumos_graph.tools.maths.actions import math_actions

pytestmark = pytest.mark.model

QUESTION = "A shop has 17 apples and gets 25 more. How many apples does it have now?"


@pytest.fixture(scope="module")
def report(default_gguf: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "lumos_graph", "ask", "--agent", "alpha-umi",
         "--model", "qwen2.5-coder-0.5b", "--json", QUESTION],
        check=False, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert "Traceback" not in result.stderr, result.stderr
    doc = json.loads(result.stdout)
    assert result.returncode == (0 if doc["status"] == "answered" else 1)
    return doc


def test_the_planner_caller_and_summarizer_answer_the_question(report: dict[str, Any]) -> None:
    assert tuple(report)[: len(REPORT_KEYS)] == REPORT_KEYS
    assert report["mode"] == "alpha-umi"
    assert report["status"] == "answered", report["reason"]
    assert report["answer"] is not None and "42" in report["answer"]
    decisions = report["decisions"]
    assert decisions and decisions[0]["next"] == "caller"  # the grammar allows three choices
    assert decisions[-1]["next"] == "conclusion"
    assert report["history"][-1]["role"] == "conclusion"


def test_the_caller_only_calls_maths_tools_and_results_are_theirs(
        report: dict[str, Any]) -> None:
    actions = math_actions()
    assert report["actions"], "the caller made no call"
    for action in report["actions"]:
        assert action["tool"] in actions.names  # the grammar allows nothing else
        if action["error"] or action["duplicate"]:
            continue
        values = actions.get(action["tool"]).executor(*action["resolved_args"])
        shown = [v.shown() for v in (values if isinstance(values, list) else [values])]
        assert shown[: len(action["result"])] == action["result"]
    observations = [t for t in report["history"] if t["role"] == "observation"]
    assert len(observations) == len(report["actions"])


def test_a_sql_question_is_answered_from_one_query_and_concluded(tmp_path: Path,
                                                                  default_gguf: Path) -> None:
    import sqlite3

    from tests.sql_fixtures import chinook_database

    db = chinook_database(tmp_path / "chinook.sqlite")
    question = "How many tracks are longer than 300000 milliseconds?"
    result = subprocess.run(
        [sys.executable, "-m", "lumos_graph", "ask", "--agent", "alpha-umi", "--tools", "sql",
         "--db", str(db), "--model", "qwen2.5-coder-0.5b", "--json", question],
        check=False, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert "Traceback" not in result.stderr, result.stderr
    doc = json.loads(result.stdout)
    with sqlite3.connect(db) as connection:
        (gold,), = connection.execute(
            "SELECT COUNT(*) FROM track WHERE milliseconds > 300000").fetchall()
    assert doc["status"] == "answered", doc["reason"]
    assert doc["answer"] is not None and str(gold) in doc["answer"]
    assert doc["decisions"][-1]["next"] == "conclusion"
    assert any(a["tool"] == "SQLQuery" and a["result"] == [str(gold)] for a in doc["actions"])
