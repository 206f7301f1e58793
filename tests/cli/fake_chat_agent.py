"""A stand-in for the LUMOS agent of ``lumos-graph chat``, so chat tests need no model.

The fake agent plans one subgoal and answers with the task it was given (so a test sees
what history reached it). A task containing ``HANG`` keeps working after planning (a step
every 0.1 s, for minutes), so a test can interrupt or kill it mid-turn. ``python -m tests.cli.fake_chat_agent ARGS`` runs ``lumos-graph ARGS``
with it.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from langgraph.graph import END, START, StateGraph

from lumos_graph.agent.state import LumosState


def _plan(state: LumosState) -> dict[str, Any]:
    return {"subgoals": [f"Answer: {state['task']}"]}


def _work(state: LumosState) -> dict[str, Any]:
    time.sleep(0.1)
    return {"results": ["."]}


def _route_after_work(state: LumosState) -> str:
    working = "HANG" in state["task"] and len(state.get("results", [])) < 3000
    return "work" if working else "finish"


def _finish(state: LumosState) -> dict[str, Any]:
    return {"answer": state["task"], "status": "answered", "reason": "the fake agent echoes"}


def fake_build_agent(args: Any, names: list[str], mode: str, err: Any, **options: Any) -> Any:
    """Has :func:`lumos_graph.cli._options.build_agent`'s signature; loads nothing."""
    builder = StateGraph(LumosState)
    builder.add_node("plan", _plan)
    builder.add_node("work", _work)
    builder.add_node("finish", _finish)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "work")
    builder.add_conditional_edges("work", _route_after_work, ["work", "finish"])
    builder.add_edge("finish", END)
    graph = builder.compile(checkpointer=options.get("checkpointer"), name=f"fake-{mode}")
    return graph.with_config(recursion_limit=10_000)


if __name__ == "__main__":
    from lumos_graph.cli import chat
    from lumos_graph.cli.main import main

    chat.build_agent = fake_build_agent  # type: ignore[assignment]
    sys.exit(main(sys.argv[1:]))
