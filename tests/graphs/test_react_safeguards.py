"""AgentTuning's safeguards in the ReAct baseline, driven by a scripted tool-calling model."""

from __future__ import annotations

from typing import Any, ClassVar

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from lumos_graph.agent.actions import Action, ActionSet
from lumos_graph.graphs.react import create_react_agent, react_answer, react_status
from tests.graphs.test_react import ToolCallingFake, call, fake


class GrammarFake(ToolCallingFake):
    accepts_grammar: ClassVar[bool] = True


def counting() -> tuple[ActionSet, list[str]]:
    runs: list[str] = []

    def add(a: str, b: str) -> str:
        runs.append(f"{a}+{b}")
        return str(int(a) + int(b))

    return ActionSet([Action("Add", "Add two integers", ("a", "b"), add)]), runs


def run(model: ToolCallingFake, actions: ActionSet) -> dict[str, Any]:
    agent = create_react_agent(model, actions, max_model_calls=8)
    return agent.invoke({"messages": [HumanMessage("Add 2 and 3.")]})


def tool_texts(state: dict[str, Any]) -> list[str]:
    return [m.text for m in state["messages"] if isinstance(m, ToolMessage)]


def test_a_repeated_call_is_not_run_again_and_the_model_is_told() -> None:
    actions, runs = counting()
    state = run(fake([call("Add", a="2", b="3"), call("Add", b="3", a="2"), AIMessage("5")]),
                actions)
    assert runs == ["2+3"]
    first, second = tool_texts(state)
    assert first == "5"
    assert "already called Add" in second and "5" in second
    assert react_answer(state) == "5" and react_status(state) == "answered"


def test_three_identical_outputs_end_the_run_as_failed() -> None:
    actions, runs = counting()
    model = fake([call("Add", a="2", b="3") for _ in range(3)] + [AIMessage("never read")])
    state = run(model, actions)
    assert runs == ["2+3"] and len(model.prompts) == 3
    assert react_status(state) == "failed" and react_answer(state) is None
    assert state["reason"].startswith("the model produced the same output 3 times in a row")


def test_without_a_grammar_a_misspelt_tool_is_snapped_and_recorded() -> None:
    actions, runs = counting()
    state = run(fake([call("add", a="2", b="3"), AIMessage("5")]), actions)
    assert runs == ["2+3"]
    snapped = next(m for m in state["messages"] if isinstance(m, AIMessage) and m.tool_calls)
    assert snapped.tool_calls[0]["name"] == "Add"
    assert snapped.response_metadata["snapped"] == [
        {"written": "add", "action": "Add", "score": 1.0}]
    assert react_answer(state) == "5"


def test_below_the_threshold_one_format_error_goes_back_then_the_run_fails() -> None:
    actions, runs = counting()
    model = fake([call("Weather", city="Paris"), call("Forecast", city="Paris"),
                  AIMessage("never read")])
    state = run(model, actions)
    assert runs == [] and len(model.prompts) == 2
    assert "Weather" in tool_texts(state)[0]  # the tool node's error went back once
    assert react_status(state) == "failed"
    assert "malformed again ('Forecast')" in state["reason"]


def test_a_grammar_model_is_never_snapped() -> None:
    actions, runs = counting()
    model = GrammarFake(messages=iter([call("add", a="2", b="3"), AIMessage("no tool")]))
    state = run(model, actions)
    assert runs == [] and "snapped" not in state["messages"][1].response_metadata
    assert react_status(state) == "answered"
