"""The chat graph: a session is a checkpointer thread of finished turns; a follow-up's task
carries the earlier turns; the agent's trace streams out as custom events."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from lumos_graph.errors import ConfigError
from lumos_graph.graphs.chat import TurnCancelledError, contextual_task, create_chat_graph
from lumos_graph.graphs.lumos import create_lumos_agent
from tests.fakes import scripted


def _turn(message: str, answer: str | None) -> dict[str, Any]:
    return {"message": message, "report": {"answer": answer}}


def test_the_follow_up_task_is_the_earlier_turns_then_the_message() -> None:
    turns = [_turn("Leah had 32 dollars and spent 4. How much is left?", "28"),
             _turn("Who knows?", None),
             _turn("And then she earns 10?", "38")]
    assert contextual_task([], "  How many?  ") == "How many?"
    assert contextual_task(turns, "Double it?", history=2) == (
        "Who knows? And then she earns 10? The answer was 38. Double it?")
    assert contextual_task(turns, "Double it?", history=0) == "Double it?"


def _agent(lines: list[str]) -> Any:
    return create_lumos_agent(scripted(lines), actions="maths", checkpointer=False)


def test_turns_persist_per_thread_and_the_planner_sees_the_earlier_turn() -> None:
    planner_lines = [
        "Subgoal 1: Multiply 3 by 12.",
        "Subgoal 1: Calculate 3 times 12 = 36, then subtract 10.",
    ]
    model = scripted([planner_lines[0], "R1 = Calculator(3 * 12)",
                      planner_lines[1], "R1 = Calculator(3 * 12 - 10)"])
    agent = create_lumos_agent(model, actions="maths", checkpointer=False)
    graph = create_chat_graph(agent, checkpointer=InMemorySaver())
    session = {"configurable": {"thread_id": "s"}}
    events: list[dict[str, Any]] = []
    for kind, chunk in graph.stream({"message": "Tom has 3 boxes of 12 pencils. How many?"},
                                    session, stream_mode=["custom", "values"]):
        if kind == "custom":
            events.append(chunk)
    assert [e["node"] for e in events] == ["plan", "ground", "execute", "answer"]
    state = graph.invoke({"message": "And if he gives away 10?"}, session)
    assert [t["report"]["answer"] for t in state["turns"]] == ["36", "26"]
    second_plan_prompt = model.prompts[2][-1].content
    assert ("Tom has 3 boxes of 12 pencils. How many? The answer was 36. "
            "And if he gives away 10?") in second_plan_prompt
    other = graph.get_state({"configurable": {"thread_id": "other"}}).values
    assert other == {}


def test_an_empty_message_and_a_negative_history_are_refused() -> None:
    graph = create_chat_graph(_agent([]), checkpointer=InMemorySaver())
    with pytest.raises(ConfigError, match="empty"):
        graph.invoke({"message": "  "}, {"configurable": {"thread_id": "e"}})
    with pytest.raises(ConfigError, match="history"):
        create_chat_graph(_agent([]), history=-1)


def test_a_cancelled_turn_adds_nothing_to_the_session() -> None:
    cancel = threading.Event()
    model = scripted(["Subgoal 1: Multiply 3 by 12.", "R1 = Calculator(3 * 12)"] * 2)
    agent = create_lumos_agent(model, actions="maths", checkpointer=False)
    graph = create_chat_graph(agent, checkpointer=InMemorySaver(), cancel=cancel)
    session = {"configurable": {"thread_id": "c"}}
    graph.invoke({"message": "How many pencils in 3 boxes of 12?"}, session)
    cancel.set()
    with pytest.raises(TurnCancelledError):
        graph.invoke({"message": "And in 4 boxes?"}, session)
    turns = graph.get_state(session).values["turns"]
    assert [t["message"] for t in turns] == ["How many pencils in 3 boxes of 12?"]
    assert len(model.prompts) == 3  # the cancelled turn stopped after the agent's first step
