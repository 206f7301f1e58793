"""A conversation with a LUMOS agent as a LangGraph graph: one turn per user message, the
session's finished turns in the graph's state, so a checkpointer persists a chat (one thread
per session) and a resumed thread sees every earlier turn.

```
START -> respond -> END          (one superstep per user message)
```

How follow-ups see earlier turns: ``respond`` gives the agent a task that starts with the
last few finished turns, each as its question and, when there was one, the sentence
"The answer was X." (:data:`FOLLOW_UP_TASK`), then the new message. History travels inside
the task, the one slot of the LUMOS prompts that is the user's; the prompts around it (the
LUMOS wrapper and zero-shot instruction of the lumos-* presets, the few-shot conversations
of other models) stay byte for byte what they are. A first message is the task unchanged.

The agent is passed in (``create_chat_graph(agent)``); its trace streams out as ``custom``
events ``{"node": name, "delta": partial state}``, the same updates ``agent.stream`` gives.
"""

from __future__ import annotations

import operator
import threading
import time
from functools import partial
from typing import Annotated, Any, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from lumos_graph.agent.report import run_report
from lumos_graph.errors import ConfigError

__all__ = [
    "FOLLOW_UP_TASK", "ChatState", "ChatTurn", "TurnCancelledError", "contextual_task",
    "create_chat_graph",
]

# The task a follow-up gives the agent. {earlier} holds one EARLIER_TURN per earlier turn.
FOLLOW_UP_TASK = "{earlier}{message}"
EARLIER_TURN = "{question}{answered} "
EARLIER_ANSWER = " The answer was {answer}{stop}"  # {stop}: "." unless the answer ends one


class ChatTurn(TypedDict):
    """One finished turn: the user's message, the task the agent got, and its report
    (the ``ask --json`` document: ``answer``, ``status``, ``reason``, ``subgoals``, ...)."""

    message: str
    report: dict[str, Any]


class ChatState(TypedDict, total=False):
    """Input: ``message``. Kept: ``turns``, every finished turn of the session in order."""

    message: str
    turns: Annotated[list[ChatTurn], operator.add]


def contextual_task(turns: list[ChatTurn], message: str, *, history: int = 3) -> str:
    """The agent's task for ``message`` after ``turns``: the last ``history`` turns, then the
    message (just the message when there are none or ``history`` is 0).

    Example:
        >>> turns = [{"message": "Tom has 3 boxes of 12 pencils. How many pencils?",
        ...           "report": {"answer": "36"}}]
        >>> contextual_task(turns, "And if he gives away 10?")
        'Tom has 3 boxes of 12 pencils. How many pencils? The answer was 36. And if he gives away 10?'
    """
    recent = turns[-history:] if history > 0 else []
    earlier = "".join(
        EARLIER_TURN.format(
            question=turn["message"].strip(),
            answered=_answered(turn["report"].get("answer")))
        for turn in recent)
    return FOLLOW_UP_TASK.format(earlier=earlier, message=message.strip())


class TurnCancelledError(Exception):
    """The turn was cancelled (``cancel`` was set) before the agent finished."""


def _answered(answer: Any) -> str:
    text = "" if answer is None else str(answer).strip()
    if not text:
        return ""
    return EARLIER_ANSWER.format(answer=text, stop="" if text.endswith((".", "!", "?")) else ".")


def respond(state: ChatState, *, agent: Any, mode: str, history: int,
            cancel: threading.Event | None = None) -> dict[str, Any]:
    """Run the agent on the new message with the earlier turns as context; add the turn.

    Raises:
        TurnCancelledError: ``cancel`` was set; checked after each step of the agent.
    """
    message = (state.get("message") or "").strip()
    if not message:
        raise ConfigError("the message is empty")
    task = contextual_task(state.get("turns", []), message, history=history)
    write = get_stream_writer()
    started = time.perf_counter()
    final: dict[str, Any] = {}
    for kind, chunk in agent.stream({"task": task}, stream_mode=["updates", "values"]):
        if kind == "values":
            final = chunk
            continue
        for node, delta in chunk.items():
            write({"node": node, "delta": delta or {}})
        if cancel is not None and cancel.is_set():
            raise TurnCancelledError("the turn was cancelled")
    report = run_report(final, mode=mode, seconds=time.perf_counter() - started)  # type: ignore[arg-type]
    return {"turns": [ChatTurn(message=message, report=report)]}


def create_chat_graph(
    agent: Any,
    *,
    mode: str = "onepass",
    history: int = 3,
    checkpointer: Checkpointer = None,
    name: str = "lumos-chat",
    cancel: threading.Event | None = None,
) -> CompiledStateGraph:
    """A chat session over ``agent`` (a compiled LUMOS graph, e.g. ``create_lumos_agent()``).

    Args:
        agent: the graph that answers each turn; it runs without a checkpointer of its own
            (the session's checkpoint holds the finished turns).
        mode: the agent's formulation, recorded in each turn's report.
        history: how many earlier turns a follow-up's task carries.
        checkpointer: persists sessions: ``invoke({"message": ...}, {"configurable":
            {"thread_id": session}})``.
        name: the graph's name.
        cancel: when set, the running turn stops after the agent's current step and the run
            raises :class:`TurnCancelledError` (the session keeps its earlier turns).
    """
    if history < 0:
        raise ConfigError(f"history must be 0 or more turns, not {history}")
    builder = StateGraph(ChatState)
    builder.add_node("respond", partial(respond, agent=agent, mode=mode, history=history,
                                        cancel=cancel))
    builder.add_edge(START, "respond")
    builder.add_edge("respond", END)
    return builder.compile(checkpointer=checkpointer, name=name)
