"""End to end with the real default GGUF model, through the command line, in both modes."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from lumos_graph.agent.report import REPORT_KEYS
from lumos_graph.tools.maths.actions import math_actions

pytestmark = pytest.mark.model

QUESTION = "A baker made 24 cupcakes in the morning and 18 in the afternoon. He sold 30 of them. " \
           "How many cupcakes are left?"


def ask(*args: str) -> tuple[int, str]:
    result = subprocess.run([sys.executable, "-m", "lumos_graph", "ask", *args],
                            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                            check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout


@pytest.fixture(scope="module", params=["onepass", "iterative"])
def run_json(request: pytest.FixtureRequest, default_gguf: object) -> dict[str, Any]:
    code, out = ask("--mode", request.param, "--json", QUESTION)
    doc = json.loads(out)
    assert code == (0 if doc["status"] == "answered" else 1)
    return doc


def test_trace_has_the_documented_shape(run_json: dict[str, Any]) -> None:
    # self-consistency (the default OnePass maths agent votes over six programs) adds samples
    assert tuple(k for k in run_json if k != "samples") == REPORT_KEYS
    if run_json["mode"] == "onepass" and run_json["status"] == "answered":  # the vote answered
        assert len(run_json["samples"]) == 6 and sum(s["chosen"] for s in run_json["samples"]) == 1
    assert run_json["status"] in ("answered", "cap_reached", "failed")
    assert run_json["subgoals"], "the planner produced no subgoal"
    assert run_json["actions"], "the grounder produced no action"
    usage = run_json["usage"]
    assert usage["model_calls"] >= 2
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert run_json["seconds"] > 0


def test_results_shown_are_what_the_maths_tools_compute(run_json: dict[str, Any]) -> None:
    actions = math_actions()
    checked = 0
    for action in run_json["actions"]:
        assert action["tool"] in actions.names, action  # the grammar allows nothing else
        if action["result"] is None:
            assert action["error"]
            continue
        recomputed = actions.get(action["tool"]).executor(*action["resolved_args"])
        values = recomputed if isinstance(recomputed, list) else [recomputed]
        assert [v.shown() for v in values][: len(action["result"])] == action["result"]
        checked += 1
    assert checked, "no action produced a result"


def test_an_answer_is_the_last_result_and_anything_else_says_why(
        run_json: dict[str, Any]) -> None:
    if run_json["mode"] == "onepass":  # greedy decoding: this question is answered every run
        assert run_json["status"] == "answered", run_json["reason"]
    if run_json["status"] == "answered":
        last = [a for a in run_json["actions"] if a["result"]][-1]
        assert run_json["answer"] in last["result"][-1]
    else:
        assert run_json["answer"] is None
        assert run_json["reason"]


def test_terminal_output_streams_plan_actions_and_answer(default_gguf: object) -> None:
    code, out = ask("--mode", "onepass", QUESTION)
    lines = out.splitlines()
    assert lines[0] == f"Task: {QUESTION}"
    assert any(line.startswith("  Subgoal 1: ") for line in lines)
    # the default OnePass agent grounds into one program: "R1 = Code(" ... ")  ->  26"
    assert any(" = Code(" in line for line in lines)
    assert any(line.strip().startswith(")  ->  ") for line in lines)
    assert lines[-2].startswith(("Answer: ", "No answer ("))
    assert "model calls" in lines[-1]
    assert code == (0 if lines[-2].startswith("Answer: ") else 1)


def test_langgraph_messages_mode_streams_tokens_of_both_modules(default_gguf: object) -> None:
    from lumos_graph import create_lumos_agent

    agent = create_lumos_agent(mode="onepass", samples=1)
    chunks: dict[str, int] = {}
    for _message, meta in agent.stream({"task": "What is 6 times 7?"}, stream_mode="messages"):
        node = meta["langgraph_node"]
        chunks[node] = chunks.get(node, 0) + 1
    assert chunks.get("plan", 0) > 3 and chunks.get("ground", 0) > 3
    # self-consistency (the default) runs the modules in sub-graphs: LangGraph streams their
    # tokens with subgraphs=True, each with its own node's name
    chunks = {}
    for _ns, (_message, meta) in create_lumos_agent(mode="onepass").stream(
            {"task": "What is 6 times 7?"}, stream_mode="messages", subgraphs=True):
        node = meta["langgraph_node"]
        chunks[node] = chunks.get(node, 0) + 1
    assert chunks.get("plan", 0) > 3 and chunks.get("ground", 0) > 3
