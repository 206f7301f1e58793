"""The ReAct baseline: the agent a LangChain user would build instead of LUMOS.

LangChain's own ``create_agent`` with the same actions as LangChain tools and the chat model's
native tool calling (``bind_tools``; for local models, :class:`~lumos_graph.llm.llama.ChatLlamaCpp`
with its tool-call grammar)::

    START -> model -> tools -> model -> ... -> model (no tool call) -> END

A run ends when the model answers without calling a tool, or after ``max_model_calls`` model
calls: LangChain's ``ModelCallLimitMiddleware`` then ends it with a marked message (see
:func:`react_status`). Nothing raises at the caller for a model's mistake: a tool's failure,
an unknown tool or bad arguments come back to the model as tool messages with
``status="error"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from string import Template
from typing import Any, Literal

from langchain.agents import create_agent
from langchain.agents.middleware import ModelCallLimitMiddleware, hook_config
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import StructuredTool, ToolException
from langgraph.graph.state import CompiledStateGraph

from lumos_graph.agent import protocol
from lumos_graph.agent.actions import Action, ActionSet, as_values
from lumos_graph.agent.execution import describe_error
from lumos_graph.errors import ConfigError
from lumos_graph.llm.models import as_chat_model
from lumos_graph.tools.toolsets import ToolLike, create_actions

__all__ = ["LIMIT_REASON", "action_tool", "create_react_agent", "react_answer", "react_status"]

REACT_SYSTEM_PROMPT = Template(
    "You are a helpful assistant. Solve the user's task step by step, calling the tools when "
    "they help. When you know the final answer, reply with the final answer only.$notes"
)
VARIADIC_NOTE = "one or more values, separated by commas"
LIMIT_REASON = "model_call_limit"
"""``response_metadata["finish_reason"]`` of the message that ends a run at the call limit."""

_ANSWER_PREFIX = re.compile(r"^\s*(?:final\s+answer|answer)\s*:\s*", re.IGNORECASE)


def action_tool(action: Action, images: Sequence[str | bytes] = ()) -> StructuredTool:
    """A LangChain tool running ``action``: one string argument per parameter.

    The tool's result is the action's values as text (``", "``-joined). A failure, including
    a missing argument, becomes the text of a tool message with ``status="error"``. The last
    argument of a variadic action is split at top-level commas, as LUMOS grounding does.

    Args:
        action: the action to wrap.
        images: the run's input images, passed to an action with ``needs_images``.
    """
    variadic = action.params[-1] if action.variadic else None
    properties: dict[str, dict[str, str]] = {p: {"type": "string"} for p in action.params}
    if variadic is not None:
        properties[variadic]["description"] = VARIADIC_NOTE
    schema = {"type": "object", "properties": properties, "required": list(action.params)}
    extra = {"images": list(images)} if action.needs_images else {}

    def run(**kwargs: Any) -> str:
        missing = [p for p in action.params if p not in kwargs]
        if missing:
            raise ToolException(f"{action.name} expects {', '.join(action.params)}; "
                                f"missing {', '.join(missing)}.")
        args = [str(kwargs[p]) for p in action.params]
        if variadic is not None:
            args = [*args[:-1], *protocol.split_args(args[-1], None)]
        try:
            values = as_values(action.executor(*args, **extra))
        except Exception as exc:  # noqa: BLE001 - a tool failure is an observation, never a crash
            raise ToolException(describe_error(exc)) from exc
        return ", ".join(value.shown() for value in values)

    return StructuredTool(
        name=action.name,
        description=action.description,
        args_schema=schema,
        func=run,
        handle_tool_error=True,
    )


class _ModelCallLimit(ModelCallLimitMiddleware):
    """LangChain's per-run model call limit, its closing message marked with LIMIT_REASON."""

    @property
    def name(self) -> str:  # graph node names as with the plain middleware
        return ModelCallLimitMiddleware.__name__

    @hook_config(can_jump_to=["end"])
    def before_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        update = super().before_model(state, runtime)
        if update is not None:
            update["messages"] = [
                message.model_copy(update={"response_metadata": {"finish_reason": LIMIT_REASON}})
                for message in update.get("messages", [])
            ]
        return update


def create_react_agent(
    model: BaseChatModel | str | None = None,
    actions: ActionSet | str | Sequence[ToolLike] | None = None,
    *,
    max_model_calls: int = 16,
    images: Sequence[str | bytes] = (),
    system_prompt: str | None = None,
    name: str = "react",
) -> CompiledStateGraph:
    """Create the ReAct baseline agent: LangChain's ``create_agent`` over ``actions``.

    Args:
        model: a chat model with ``bind_tools``, or a model spec for
            :func:`~lumos_graph.llm.models.create_chat_model`; ``None`` loads the default preset.
        actions: an ``ActionSet``, tool set names or a list of tools, as for
            :func:`~lumos_graph.graphs.lumos.create_lumos_agent`; defaults to the maths actions.
            Each action becomes a LangChain tool (:func:`action_tool`).
        max_model_calls: the most model calls of one run.
        images: the input images of the run (for actions with ``needs_images``, e.g. ``VQA``);
            build one agent per image set.
        system_prompt: replaces the default system prompt (the action set's notes, such as a
            database schema, are appended to the default one only).
        name: the graph's name.

    Returns:
        The compiled graph: ``invoke({"messages": [HumanMessage(task)]})``. Read the final
        state with :func:`react_answer` and :func:`react_status`.

    Raises:
        ConfigError: a bad model spec, action set or limit, before any model runs.
    """
    if max_model_calls < 1:
        raise ConfigError(f"max_model_calls must be at least 1, got {max_model_calls}")
    chat_model = as_chat_model(model)
    action_set = (
        actions if isinstance(actions, ActionSet)
        else create_actions("maths" if actions is None else actions, model=chat_model)
    )
    if system_prompt is None:
        notes = f"\n\n{action_set.notes}" if action_set.notes else ""
        system_prompt = REACT_SYSTEM_PROMPT.substitute(notes=notes)
    agent = create_agent(
        chat_model,
        tools=[action_tool(action, images) for action in action_set],
        system_prompt=system_prompt,
        middleware=[_ModelCallLimit(run_limit=max_model_calls, exit_behavior="end")],
        name=name,
    )
    # The call limit ends every run; LangGraph's recursion limit must never end it first. A
    # model call is four supersteps (limit check, model, call count, tools).
    return agent.with_config(recursion_limit=4 * max_model_calls + 10)


def react_status(state: Mapping[str, Any]) -> Literal["answered", "cap_reached", "failed"]:
    """How a ReAct run ended: with an answer, at the model call limit, or without an answer
    (the last reply was a broken tool call, or empty)."""
    messages = state.get("messages") or []
    last = messages[-1] if messages else None
    if isinstance(last, AIMessage) and last.response_metadata.get("finish_reason") == LIMIT_REASON:
        return "cap_reached"
    return "answered" if react_answer(state) is not None else "failed"


def react_answer(state: Mapping[str, Any]) -> str | None:
    """The final answer of a ReAct run: the last AI message's text, without a leading
    ``Final answer:``/``Answer:``; ``None`` if the run ended on a tool call, at the call
    limit, or with an empty reply."""
    messages = state.get("messages") or []
    last = messages[-1] if messages else None
    if (
        not isinstance(last, AIMessage)
        or last.tool_calls
        or last.invalid_tool_calls
        or last.response_metadata.get("finish_reason") == LIMIT_REASON
    ):
        return None
    return _ANSWER_PREFIX.sub("", last.text).strip() or None
