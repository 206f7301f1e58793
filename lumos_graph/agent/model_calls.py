"""One model call on a protocol conversation, with its usage: the helper every node shares.

A failing model never raises from here (the error comes back as text for the run's reason),
except for :class:`~lumos_graph.errors.ConfigError`, a setup mistake the user must fix.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage

from lumos_graph.agent.execution import describe_error
from lumos_graph.agent.state import Usage
from lumos_graph.errors import ConfigError

__all__ = ["ModelReply", "call_model", "to_messages"]


def to_messages(turns: Sequence[dict[str, str]]) -> list[AnyMessage]:
    """Protocol turns (``{"role", "content"}``) as LangChain messages."""
    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [kinds[t["role"]](content=t["content"]) for t in turns]


@dataclass
class ModelReply:
    """What one call produced: ``text`` (``None`` when the model failed, see ``error``)."""

    text: str | None
    usage: Usage = field(default_factory=lambda: Usage(
        model_calls=1, prompt_tokens=0, completion_tokens=0, prompt_tokens_cached=0,
        model_seconds=0.0))
    error: str | None = None
    cut: bool = False  # the output ran into the token limit
    logprob: float = 0.0  # of the output, where the model reports it (our llama.cpp backend)


def call_model(
    model: BaseChatModel,
    turns: Sequence[dict[str, str]],
    *,
    stop: list[str] | None = None,
    max_tokens: int | None = None,
    grammar: str | None = None,
    sampling: Mapping[str, Any] | None = None,
) -> ModelReply:
    """Invoke ``model`` on ``turns``.

    ``grammar`` reaches only models that take one (``accepts_grammar``: our llama.cpp
    backend); ``stop``, ``max_tokens`` and ``sampling`` (``temperature``, ``seed``) go to
    every model.
    """
    kwargs: dict[str, Any] = dict(sampling or {})
    if stop:
        kwargs["stop"] = stop
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    if grammar and getattr(model, "accepts_grammar", False):
        kwargs["grammar"] = grammar
    reply = ModelReply(text=None)
    started = time.perf_counter()
    try:
        message = model.invoke(to_messages(turns), **kwargs)
    except ConfigError:
        raise  # a setup mistake (e.g. a GGUF without a chat template) is the user's to fix
    except Exception as exc:  # noqa: BLE001 - a failing model ends the run with a reason
        reply.usage["model_seconds"] = time.perf_counter() - started
        reply.error = describe_error(exc)
        return reply
    meta = getattr(message, "usage_metadata", None) or {}
    extra = getattr(message, "response_metadata", None) or {}
    reply.text = message.text
    reply.usage["prompt_tokens"] = int(meta.get("input_tokens", 0))
    reply.usage["completion_tokens"] = int(meta.get("output_tokens", 0))
    reply.usage["prompt_tokens_cached"] = int(extra.get("prompt_tokens_cached", 0))
    reply.usage["model_seconds"] = float(
        extra.get("model_seconds", time.perf_counter() - started))
    reply.cut = extra.get("finish_reason") == "length"
    reply.logprob = float(extra.get("logprob", 0.0))
    return reply
