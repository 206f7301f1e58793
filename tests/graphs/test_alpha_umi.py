"""The alpha-UMi graph with scripted models: routing, caps, the history format and
AgentTuning's safeguards (repeat stop, duplicate calls, snapping, one format error)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest

from lumos_graph.agent.actions import Action, ActionSet
from lumos_graph.agent.umi_nodes import umi_report
from lumos_graph.agent.umi_protocol import OBSERVATION_LIMIT
from lumos_graph.errors import ConfigError
from lumos_graph.graphs.alpha_umi import create_alpha_umi_agent
from tests.agent.gbnf import accepts
from tests.fakes import ScriptedChatModel, scripted, toy_actions

TASK = "Add 2 and 3, then double it."


def call(name: str, **args: str) -> str:
    return f"Action: {name}\nAction Input: {json.dumps(args)}"


class GrammarScripted(ScriptedChatModel):
    """A scripted model that says it takes grammars, as our llama.cpp model does."""

    accepts_grammar: ClassVar[bool] = True


def counting_actions() -> tuple[ActionSet, list[str]]:
    runs: list[str] = []

    def add(a: str, b: str) -> str:
        runs.append(f"{a}+{b}")
        return str(int(a) + int(b))

    return ActionSet([Action("Add", "Add two integers", ("a", "b"), add),
                      *[a for a in toy_actions() if a.name != "Add"]]), runs


def run(lines: list[str], **options: Any) -> dict[str, Any]:
    options.setdefault("actions", toy_actions())
    agent = create_alpha_umi_agent(scripted(lines), **options)
    return agent.invoke({"task": TASK})


def test_planner_caller_summarizer_answer_from_the_tool_results() -> None:
    state = run(["Add 2 and 3.\nNext: caller.", call("Add", a="2", b="3"),
                 "Double the sum.\nNext: caller.", call("Double", x="5"),
                 "The result is 10.\nNext: conclusion.", "10"])
    assert (state["answer"], state["status"]) == ("10", "answered")
    assert [d["next"] for d in state["decisions"]] == ["caller", "caller", "conclusion"]
    assert [(a["tool"], a["result"]) for a in state["actions"]] == [("Add", ["5"]),
                                                                   ("Double", ["10"])]
    roles = [t["role"] for t in state["history"]]
    assert roles == ["user", "assistant", "caller", "observation", "assistant", "caller",
                     "observation", "assistant", "conclusion"]
    assert state["history"][1]["content"] == "Add 2 and 3.\n Next: caller."
    assert state["usage"]["model_calls"] == 6


def test_the_history_reaches_each_role_in_alpha_umi_format() -> None:
    model = scripted(["Add.\nNext: caller.", call("Add", a="2", b="3"),
                      "Done.\nNext: conclusion.", "5"])
    create_alpha_umi_agent(model, actions=toy_actions()).invoke({"task": TASK})
    summarizer_prompt = model.prompts[-1][-1].text
    assert summarizer_prompt.startswith(
        f"The conversation history is:\nuser: {TASK}</s>assistant: Add.\n Next: caller.</s>"
        'caller: Action: Add\nAction Input: {"a": "2", "b": "3"}</s>observation: 5</s>'
        "assistant: Done.\n Next: conclusion.\n\nThe final answer")
    planner_system = model.prompts[0][0].text
    assert '{"Name": "Add", "function": "Add two integers", "input": {"a": "string", ' \
           '"b": "string"}}' in planner_system


def test_a_missing_decision_falls_back_to_the_summarizer() -> None:
    state = run(["I think the answer is 5.", "5"])
    assert (state["answer"], state["status"]) == ("5", "answered")
    assert state["decisions"][0]["fallback"] is True
    assert "no next role" in state["reason"]


def test_give_up_ends_the_run_as_failed_without_an_answer() -> None:
    state = run(["No tool can do this.\nNext: give up."])
    assert (state["answer"], state["status"]) == (None, "failed")
    assert "gave up" in state["reason"]


def test_the_turn_cap_ends_a_run_that_never_concludes() -> None:
    lines = []
    for k in range(3):
        lines += [f"Step {k}.\nNext: caller.", call("Double", x=str(k))]
    state = run(lines, max_turns=3)
    assert (state["status"], state["answer"]) == ("cap_reached", None)
    assert "turn cap (3)" in state["reason"]
    assert len(state["actions"]) == 3


def test_tool_errors_and_long_results_become_observations() -> None:
    long = ActionSet([Action("Echo", "Repeat a text", ("text",), lambda t: t * 2000),
                      *toy_actions()])
    state = run(["Echo.\nNext: caller.", call("Echo", text="ab"),
                 "Double.\nNext: caller.", call("Double", x="abc"),
                 "Stop.\nNext: conclusion.", "none"], actions=long)
    observations = [t["content"] for t in state["history"] if t["role"] == "observation"]
    assert len(observations[0]) == OBSERVATION_LIMIT
    assert observations[1].startswith("Error: Double needs an integer")
    assert state["status"] == "failed"  # the summarizer found no answer


def test_three_identical_planner_outputs_on_the_same_observation_fail_the_run() -> None:
    same = "Double 1.\nNext: caller."
    calls = [call("Double", x=x) for x in ("1", " 1", "1 ", " 1 ")]  # one call, four spellings
    # the later calls are duplicates: the planner sees the same refusal each time
    state = run([same, calls[0], same, calls[1], same, calls[2], same, calls[3], same])
    assert (state["status"], state["answer"]) == ("failed", None)
    assert state["reason"].startswith("the planner produced the same output 3 times in a row")
    assert len(state["actions"]) == 4


def test_a_bare_decision_after_new_results_is_no_repeat() -> None:
    # the small model often writes the decision alone: new results each time, no loop
    state = run(["Next: caller.", call("Double", x="1"), "Next: caller.", call("Double", x="2"),
                 "Next: caller.", call("Double", x="4"), "Next: conclusion.", "8"])
    assert (state["status"], state["answer"]) == ("answered", "8")
    assert [a["result"] for a in state["actions"]] == [["2"], ["4"], ["8"]]


def test_a_repeated_call_is_not_run_again_the_model_is_told_and_the_cap_counts_it() -> None:
    actions, runs = counting_actions()
    state = run(["Add.\nNext: caller.", call("Add", a="2", b="3"),
                 "Add again.\nNext: caller.", call("Add", b=" 3", a="2")],
                actions=actions, max_turns=2)
    assert runs == ["2+3"]  # executed once
    assert [a["duplicate"] for a in state["actions"]] == [False, True]
    told = state["history"][-1]
    assert told["role"] == "observation" and "already called Add" in told["content"]
    assert "5" in told["content"]
    assert state["status"] == "cap_reached"  # the refused call used up a turn


def test_without_a_grammar_a_misspelt_tool_is_snapped_and_recorded() -> None:
    state = run(["Double 5.\nNext: caller.", "Action: dubble\nAction Input: {\"x\": \"5\"}",
                 "Add.\nNext: caller.", "Add(4, 6)",
                 "Done.\nNext: conclusion.", "10"])
    assert [(a["tool"], a["result"]) for a in state["actions"]] == [("Double", ["10"]),
                                                                   ("Add", ["10"])]
    first, second = (a["snapped"] for a in state["actions"])
    assert first["written"] == "dubble" and first["action"] == "Double"
    assert first["score"] >= 0.5
    assert second["action"] == "Add" and second["written"] == "Add"
    assert state["history"][2]["content"] == 'Action: Double\nAction Input: {"x": "5"}'
    assert state["status"] == "answered"


def test_below_the_threshold_one_format_error_goes_back_then_the_run_fails() -> None:
    state = run(["Look it up.\nNext: caller.", "Action: Weather\nAction Input: {}",
                 "Try again.\nNext: caller.", "I would search the web."])
    feedback = state["history"][3]
    assert feedback["role"] == "observation"
    assert feedback["content"].startswith("Format error: unknown tool 'Weather'")
    assert "Add, Double, Split, Boom" in feedback["content"]
    assert (state["status"], state["answer"]) == ("failed", None)
    assert "malformed again" in state["reason"]
    assert state["actions"] == [] and len(state["errors"]) == 2


def test_a_grammar_model_gets_both_grammars_and_is_never_snapped() -> None:
    model = GrammarScripted(messages=iter([]), prompts=[], call_kwargs=[])
    from langchain_core.messages import AIMessage

    model.messages = iter([AIMessage(m) for m in [
        "Double 5.\nNext: caller.", "Action: dubble\nAction Input: {\"x\": \"5\"}",
        "Stop.\nNext: give up."]])
    state = create_alpha_umi_agent(model, actions=toy_actions()).invoke({"task": TASK})
    planner_grammar, caller_grammar = (k["grammar"] for k in model.call_kwargs[:2])
    assert accepts(planner_grammar, "Double 5.\nNext: caller.")
    assert accepts(planner_grammar, "No tool fits.\nNext: give up.")
    # nothing observed yet: no conclusion (the history cannot hold the answer)
    assert not accepts(planner_grammar, "Done.\nNext: conclusion.")
    # before any observation the decision may come alone; a rationale never starts with "Next"
    assert accepts(planner_grammar, "Next: caller.")
    assert accepts(planner_grammar, "Now double 5.\nNext: caller.")
    assert not accepts(planner_grammar, "Next: caller. (call a tool)\nNext: give up.")
    assert accepts(caller_grammar, 'Action: Double\nAction Input: {"x": "5"}')
    assert not accepts(caller_grammar, 'Action: dubble\nAction Input: {"x": "5"}')
    assert not accepts(caller_grammar, 'Action: Add\nAction Input: {"a": "1"}')
    assert state["actions"] == []  # unknown name under a grammar: a format error, not a snap
    assert state["errors"]


def test_each_role_may_have_its_own_model() -> None:
    planner = scripted(["Add.\nNext: caller.", "Done.\nNext: conclusion."])
    caller = scripted([call("Add", a="1", b="1")])
    summarizer = scripted(["2"])
    agent = create_alpha_umi_agent(planner=planner, caller=caller, summarizer=summarizer,
                                   actions=toy_actions())
    assert agent.invoke({"task": TASK})["answer"] == "2"
    assert (len(planner.prompts), len(caller.prompts), len(summarizer.prompts)) == (2, 1, 1)


def test_report_adds_decisions_and_history_to_the_run_report() -> None:
    state = run(["Add.\nNext: caller.", call("Add", a="2", b="3"), "Done.\nNext: conclusion.",
                 "5"])
    report = umi_report(state, seconds=1.0)
    assert report["mode"] == "alpha-umi" and report["answer"] == "5"
    assert report["decisions"][0] == {"thought": "Add.", "next": "caller", "fallback": False}
    assert report["history"] == state["history"]
    json.dumps(report)  # plain JSON


def test_usage_mistakes_raise_before_any_model_runs() -> None:
    with pytest.raises(ConfigError):
        create_alpha_umi_agent(scripted([]), actions=toy_actions(), max_turns=0)
    with pytest.raises(ConfigError):
        create_alpha_umi_agent(scripted([]), actions=toy_actions(), max_repeats=1)
    with pytest.raises(ConfigError, match="task"):
        create_alpha_umi_agent(scripted([]), actions=toy_actions()).invoke({"task": " "})


def test_after_an_observation_the_planner_may_conclude() -> None:
    model = GrammarScripted(messages=iter([]), prompts=[], call_kwargs=[])
    from langchain_core.messages import AIMessage

    model.messages = iter([AIMessage(m) for m in [
        "Double 5.\nNext: caller.", 'Action: Double\nAction Input: {"x": "5"}',
        "Done.\nNext: conclusion.", "10"]])
    state = create_alpha_umi_agent(model, actions=toy_actions()).invoke({"task": TASK})
    assert (state["status"], state["answer"]) == ("answered", "10")
    second_planner = model.call_kwargs[2]["grammar"]
    assert accepts(second_planner, "Done.\nNext: conclusion.")
    # after an observation the rationale is required: it is where the result is read
    assert not accepts(second_planner, "Next: caller.")
    assert not accepts(second_planner, "Next: conclusion.")
    # one sentence: the prompt's list of decisions cannot be copied into the rationale
    assert accepts(second_planner, "It costs 3.5 dollars.\nNext: conclusion.")
    assert not accepts(second_planner, "It sells 141. Next: caller.  (the caller will call one "
                                       "tool)\n Next: caller.")


def test_each_tool_set_gets_its_own_worked_example() -> None:
    from lumos_graph.agent import umi_protocol as umi
    from lumos_graph.tools.maths.actions import math_actions

    sql = ActionSet([Action("SQLQuery", "Run an SQL query on the database", ("query",),
                            lambda q: "8")])
    start = [{"role": "user", "content": TASK}]
    assert "SELECT COUNT(*) FROM customers" in umi.caller_prompt(sql, start)[0]["content"]
    assert '"formula": "5 * 8 - 13"' in umi.caller_prompt(math_actions(), start)[0]["content"]
    assert "An example history" not in umi.caller_prompt(toy_actions(), start)[0]["content"]
    assert umi.summarizer_prompt(sql, start)[0]["content"].endswith("conclusion: 8")
    # the QA tools carry a Calculator too: they are shown the QA history, not the maths one
    qa = ActionSet([Action("KnowledgeQuery", "Look up a page", ("query",), lambda q: "x"),
                    *math_actions()])
    shown = umi.planner_prompt(qa, start)[0]["content"]
    assert '"query": "Eiffel Tower"' in shown and "5 * 8 - 13" not in shown
