"""The graphs ``langgraph.json`` declares, for LangGraph's server (``langgraph dev``, ``langgraph
up``, LangGraph Platform). The server brings the persistence: these graphs are compiled
without a checkpointer and every thread is stored by the platform.

- ``lumos-onepass`` and ``lumos-iterative``: one task per run, ``{"task": "..."}`` in, the
  LUMOS state out (``answer``, ``status``, ``reason``, the trace). Start each task on a new
  thread (the trace's lists add up over runs of one thread).
- ``lumos-chat``: one message per run, ``{"message": "..."}``; a thread is a conversation
  whose ``turns`` persist between runs, and a follow-up sees the earlier turns
  (:mod:`lumos_graph.graphs.chat`).

Settings come from the environment (``langgraph.json``'s ``env`` or the shell):
``LUMOS_GRAPH_MODEL`` (a preset, ``.gguf`` path or ``hf:`` reference; default ``default``,
which with only the maths tools is the default model with the trained maths adapter) and
``LUMOS_GRAPH_TOOLS`` (default ``maths``). Models load on the first run, once per process.
"""

from __future__ import annotations

import os
from typing import Literal

from langgraph.graph.state import CompiledStateGraph

from lumos_graph.graphs.chat import create_chat_graph
from lumos_graph.graphs.lumos import create_lumos_agent

__all__ = ["chat", "iterative", "onepass", "served_agent"]


def served_agent(mode: Literal["onepass", "iterative"], *, name: str | None = None,
                 checkpointer: bool | None = None) -> CompiledStateGraph:
    """A LUMOS agent set up from ``LUMOS_GRAPH_MODEL`` and ``LUMOS_GRAPH_TOOLS``."""
    return create_lumos_agent(
        os.environ.get("LUMOS_GRAPH_MODEL") or "default",
        actions=os.environ.get("LUMOS_GRAPH_TOOLS") or "maths",
        mode=mode,
        name=name or f"lumos-{mode}",
        checkpointer=checkpointer,
    )


onepass = served_agent("onepass")
iterative = served_agent("iterative")
# the agent runs inside each chat turn without checkpoints of its own; the thread keeps turns
chat = create_chat_graph(served_agent("onepass", name="lumos-chat-agent", checkpointer=False),
                         mode="onepass", name="lumos-chat")
