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

AgentTuning's safeguards (:mod:`lumos_graph.agent.safeguards`) run as one middleware,
:class:`AgentTuningMiddleware`: three identical model outputs in a row end the run with
``status`` ``failed`` and a ``reason`` in the state; a tool call with the same name and
arguments as an earlier one is not run again (the model reads why, and the call limit counts
the model call); for a model without a grammar, an unknown tool name is snapped to the
closest tool (``response_metadata["snapped"]``) or gets one format error, and a second
malformed call ends the run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from string import Template
from typing import Any, Literal

from langchain.agents import create_agent
from langchain.agents.middleware import (
    AgentMiddleware,
    AgentState,
    ModelCallLimitMiddleware,
    ToolCallRequest,
    hook_config,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.tools import StructuredTool, ToolException
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import NotRequired

from lumos_graph.agent import protocol
from lumos_graph.agent import safeguards as guard
from lumos_graph.agent.actions import Action, ActionSet, as_values
from lumos_graph.agent.execution import describe_error
from lumos_graph.errors import ConfigError
from lumos_graph.llm.models import as_chat_model
from lumos_graph.tools.toolsets import ToolLike, create_actions

__all__ = ["LIMIT_REASON", "AgentTuningMiddleware", "action_tool", "create_react_agent",
           "react_answer", "react_status"]

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
        except Exception as exc:  # a tool failure is an observation, never a crash
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


class _GuardedState(AgentState[Any]):
    status: NotRequired[str]
    reason: NotRequired[str]
    format_errors: NotRequired[int]


class AgentTuningMiddleware(AgentMiddleware[_GuardedState, Any]):
    """AgentTuning's runtime rules for a LangChain agent (see the module docstring).

    Args:
        tool_names: the agent's tools, the admissible actions of snapping.
        snap_calls: snap unknown tool names and answer malformed calls with a format error
            (for models without a grammar; a grammar makes both impossible).
        guards: the rules' settings (``None``: AgentTuning's values).
    """

    state_schema = _GuardedState

    def __init__(self, tool_names: Sequence[str], *, snap_calls: bool,
                 guards: guard.Safeguards | None = None) -> None:
        super().__init__()
        self.tool_names = list(tool_names)
        self.snap_calls = snap_calls
        self.guards = guards or guard.Safeguards()

    @property
    def name(self) -> str:
        return "AgentTuningSafeguards"

    @hook_config(can_jump_to=["end", "model"])
    def after_model(self, state: _GuardedState, runtime: Any) -> dict[str, Any] | None:
        messages = list(state["messages"])
        outputs = [_raw_output(m) for m in _this_run(messages) if isinstance(m, AIMessage)]
        if guard.repeated_output(outputs, self.guards.max_repeats):
            return {"status": "failed", "jump_to": "end",
                    "reason": guard.repeat_reason("model", outputs[-1], self.guards.max_repeats)}
        last = messages[-1] if messages else None
        if not self.snap_calls or not isinstance(last, AIMessage):
            return None
        calls, snaps, unknown = [], [], []
        for call in last.tool_calls:
            found = (None if call["name"] in self.tool_names else
                     guard.snap(call["name"], self.tool_names, self.guards.snap_threshold))
            if found is not None:
                snaps.append({"written": found.written, "action": found.action,
                              "score": found.score})
                call = {**call, "name": found.action}
            elif call["name"] not in self.tool_names:
                unknown.append(call["name"])
            calls.append(call)
        update: dict[str, Any] = {}
        if snaps:  # same id: add_messages replaces the model's message with the snapped one
            meta = {**last.response_metadata, "snapped": snaps}
            last = last.model_copy(update={"tool_calls": calls, "response_metadata": meta})
            update["messages"] = [last]
        broken = [c.get("name") or "?" for c in last.invalid_tool_calls]
        if not unknown and not broken:
            return update or None
        errors = state.get("format_errors", 0)
        names = ", ".join(map(repr, unknown + broken))
        if not guard.format_retry_left(errors, self.guards):
            return {**update, "status": "failed", "jump_to": "end",
                    "reason": f"the model's tool call is malformed again ({names})"}
        update["format_errors"] = errors + 1
        if broken and not last.tool_calls:  # nothing to run: the format error goes back now
            feedback = guard.format_feedback(f"the call of {names} is not valid JSON",
                                             self.tool_names)
            update["messages"] = [*update.get("messages", []), HumanMessage(feedback)]
            update["jump_to"] = "model"
        return update  # an unknown name's error comes back as its tool message

    def wrap_tool_call(self, request: ToolCallRequest,
                       handler: Callable[[ToolCallRequest], Any]) -> Any:
        call = request.tool_call
        earlier = _earlier_result(list(request.state["messages"]), call["name"], call["args"])
        if earlier is None:
            return handler(request)
        return ToolMessage(guard.duplicate_feedback(earlier), tool_call_id=call["id"],
                           name=call["name"], status="error",
                           additional_kwargs={"duplicate": True})


def _this_run(messages: Sequence[AnyMessage]) -> list[AnyMessage]:
    """The messages after the last user message (a thread may hold earlier tasks)."""
    starts = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)
              and not m.text.startswith("Format error:")]
    return list(messages[starts[-1] + 1:] if starts else messages)


def _raw_output(message: AIMessage) -> str:
    calls = [(c["name"], c["args"]) for c in message.tool_calls]
    bad = [(c.get("name"), c.get("args")) for c in message.invalid_tool_calls]
    return message.text + (json.dumps([calls, bad], sort_keys=True, default=str)
                           if calls or bad else "")


def _earlier_result(messages: Sequence[AnyMessage], name: str,
                    args: Mapping[str, Any]) -> dict[str, Any] | None:
    """The earlier executed call of ``name`` with ``args`` in this run, as an action record
    (``tool``, ``result`` or ``error``); ``None`` when the call is new. The model message
    being executed (the last one) does not count."""
    run = _this_run(messages)
    key = guard.call_key(name, dict(args))
    ai = [i for i, m in enumerate(run) if isinstance(m, AIMessage)]
    for i in ai[:-1]:
        for call in run[i].tool_calls:  # type: ignore[union-attr]
            if guard.call_key(call["name"], dict(call["args"])) != key:
                continue
            reply = next((m for m in run[i + 1:] if isinstance(m, ToolMessage)
                          and m.tool_call_id == call["id"]), None)
            if reply is None or reply.additional_kwargs.get("duplicate"):
                continue
            failed = getattr(reply, "status", "success") == "error"
            return {"tool": name, "result": None if failed else [reply.text],
                    "error": reply.text if failed else None}
    return None


def create_react_agent(
    model: BaseChatModel | str | None = None,
    actions: ActionSet | str | Sequence[ToolLike] | None = None,
    *,
    max_model_calls: int = 16,
    images: Sequence[str | bytes] = (),
    system_prompt: str | None = None,
    guards: guard.Safeguards | None = None,
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
        guards: settings of AgentTuning's safeguards (:class:`AgentTuningMiddleware`);
            ``None``: AgentTuning's values.
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
    guards = guards or guard.Safeguards()
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
        middleware=[
            _ModelCallLimit(run_limit=max_model_calls, exit_behavior="end"),
            AgentTuningMiddleware(action_set.names, guards=guards,
                                  snap_calls=not getattr(chat_model, "accepts_grammar", False)),
        ],
        name=name,
    )
    # The call limit ends every run; LangGraph's recursion limit must never end it first. A
    # model call is five supersteps (limit check, model, safeguards, call count, tools).
    return agent.with_config(recursion_limit=5 * max_model_calls + 10)


def react_status(state: Mapping[str, Any]) -> Literal["answered", "cap_reached", "failed"]:
    """How a ReAct run ended: with an answer, at the model call limit, or without an answer
    (the last reply was a broken tool call, or empty, or the safeguards ended the run:
    ``state["reason"]`` says why)."""
    if state.get("status") == "failed":  # AgentTuning's safeguards ended the run
        return "failed"
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
