"""The ``direct`` baseline: the model answers alone, thinking step by step (no tools).

```
START -> answer -> END
```
It shares the LUMOS state's output keys (``answer``, ``status``, ``reason``, ``usage``), so
``lumos-graph eval`` scores it the same way; ``output`` holds the whole chain of thought.
"""

from __future__ import annotations

import operator
from functools import partial
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from lumos_graph.agent import protocol
from lumos_graph.agent.model_calls import call_model
from lumos_graph.agent.state import Status, Usage, add_usage

__all__ = ["DirectState", "create_direct_agent"]


class DirectState(TypedDict, total=False):
    """Input ``task``; output ``answer``, ``status``, ``reason``, ``output`` and ``usage``."""

    task: str
    images: list[Any]  # accepted and ignored: the baseline has no eyes
    output: str
    answer: str | None
    status: Status
    reason: str
    usage: Annotated[Usage, add_usage]
    errors: Annotated[list[str], operator.add]


def create_direct_agent(
    model: BaseChatModel, *, max_tokens: int = 512, name: str = "direct"
) -> CompiledStateGraph:
    """A one-node graph: chain-of-thought prompt, then the ``Answer: ...`` line is the answer.

    Args:
        model: any chat model.
        max_tokens: the reasoning budget.
        name: the graph's name.
    """
    builder = StateGraph(DirectState)
    builder.add_node("answer", partial(_answer, model=model, max_tokens=max_tokens))
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder.compile(name=name)


def _answer(state: DirectState, model: BaseChatModel, max_tokens: int) -> dict[str, Any]:
    prompt = protocol.direct_prompt(state["task"])
    reply = call_model(model, prompt, max_tokens=max_tokens)
    if reply.text is None:
        return {"usage": reply.usage, "status": "failed", "answer": None,
                "reason": f"the model failed: {reply.error}"}
    answer = protocol.parse_direct_answer(reply.text)
    if answer is None:
        return {"usage": reply.usage, "output": reply.text, "status": "failed", "answer": None,
                "errors": ["no 'Answer: ...' line"],
                "reason": "the reply has no 'Answer: ...' line"}
    return {"usage": reply.usage, "output": reply.text, "status": "answered", "answer": answer,
            "reason": "answered in one reply"}
