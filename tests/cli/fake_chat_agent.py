"""A stand-in for the LUMOS agent of ``lumos-graph chat``, so chat tests need no model.

The fake agent plans one subgoal and answers with the task it was given (so a test sees
what history reached it). A task containing ``HANG`` blocks after planning, until the
process is killed. ``python -m tests.cli.fake_chat_agent ARGS`` runs ``lumos-graph ARGS``
with it.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from langgraph.graph import END, START, StateGraph

from lumos_graph.agent.state import LumosState


def _plan(state: LumosState) -> dict[str, Any]:
    return {"subgoals": [f"Answer: {state['task']}"]}


def _finish(state: LumosState) -> dict[str, Any]:
    if "HANG" in state["task"]:
        threading.Event().wait()  # until SIGKILL
    return {"answer": state["task"], "status": "answered", "reason": "the fake agent echoes"}


def fake_build_agent(args: Any, names: list[str], mode: str, err: Any, **options: Any) -> Any:
    """Has :func:`lumos_graph.cli._options.build_agent`'s signature; loads nothing."""
    builder = StateGraph(LumosState)
    builder.add_node("plan", _plan)
    builder.add_node("finish", _finish)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "finish")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=options.get("checkpointer"), name=f"fake-{mode}")


if __name__ == "__main__":
    from lumos_graph.cli import chat
    from lumos_graph.cli.main import main

    chat.build_agent = fake_build_agent  # type: ignore[assignment]
    sys.exit(main(sys.argv[1:]))
