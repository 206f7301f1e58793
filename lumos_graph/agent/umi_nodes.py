"""State, nodes and routers of the alpha-UMi graph (planner, caller, summarizer).

```
START -> planner -(Next: caller.)-> caller -> execute -> planner ...
         planner -(Next: conclusion. / no decision)-> summarize -> END
         planner -(Next: give up.)-> END
```
Nodes are ``(state, spec) -> partial state``; routers decide. The shared history holds the
turns of every role in alpha-UMi's format (:mod:`lumos_graph.agent.umi_protocol`). AgentTuning's
safeguards (:mod:`lumos_graph.agent.safeguards`) run here: three identical outputs of one role
in a row fail the run, a repeated call is not run again (the model reads why, the turn counts),
and without a grammar a caller's unknown tool name is snapped to the closest admissible one or,
below the threshold, gets one format error back.
"""

from __future__ import annotations

import json
import operator
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END

from lumos_graph.agent import safeguards as guard
from lumos_graph.agent import umi_protocol as umi
from lumos_graph.agent.actions import ActionSet, as_values
from lumos_graph.agent.execution import describe_error
from lumos_graph.agent.model_calls import ModelReply, call_model
from lumos_graph.agent.nodes import check_input
from lumos_graph.agent.protocol import ParseError
from lumos_graph.agent.report import run_report
from lumos_graph.agent.state import Sampling, Status, Usage, add_usage
from lumos_graph.errors import ConfigError

__all__ = [
    "AlphaUmiState",
    "UmiSpec",
    "call_tool",
    "execute_call",
    "plan_next",
    "route_after_call",
    "route_after_plan",
    "summarize",
    "umi_report",
]


class AlphaUmiState(TypedDict, total=False):
    """State of an alpha-UMi run. Input: ``task`` (and optionally ``images``, ``sampling``).
    Output: ``answer``, ``status``, ``reason``, the history and the trace."""

    task: str
    images: list[str | bytes]
    history: Annotated[list[dict[str, str]], operator.add]  # {"role", "content"}, all roles
    decisions: Annotated[list[dict[str, Any]], operator.add]  # {"thought", "next", "fallback"}
    actions: Annotated[list[dict[str, Any]], operator.add]  # ActionRecord + key/duplicate/snapped
    outputs: Annotated[list[dict[str, str]], operator.add]  # raw outputs {"role", "text"[, "seen"]}
    pending: dict[str, Any] | None  # the caller's call waiting for execute
    errors: Annotated[list[str], operator.add]  # format errors
    usage: Annotated[Usage, add_usage]
    status: Status
    reason: str
    answer: str | None
    sampling: Sampling
    logprob: Annotated[float, operator.add]


@dataclass(frozen=True)
class UmiSpec:
    """What the nodes of one alpha-UMi agent work with."""

    planner: BaseChatModel
    caller: BaseChatModel
    summarizer: BaseChatModel
    actions: ActionSet
    max_turns: int = 10
    max_tokens: int | None = None  # per call; None: the role's defaults below
    use_grammar: bool = True
    guards: guard.Safeguards = field(default_factory=guard.Safeguards)

    def __post_init__(self) -> None:
        if self.max_turns < 1:
            raise ConfigError(f"max_turns must be at least 1, not {self.max_turns}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be at least 1, not {self.max_tokens}")

    def constrained(self, model: BaseChatModel) -> bool:
        """Whether ``model`` decodes under our grammars (else the caller's output is snapped)."""
        return self.use_grammar and bool(getattr(model, "accepts_grammar", False))


_PLANNER_TOKENS, _CALLER_TOKENS, _SUMMARY_TOKENS = 160, 200, 48


def _call(spec: UmiSpec, model: BaseChatModel, turns: list[dict[str, str]], *, grammar: str,
          stop: list[str] | None, tokens: int, state: AlphaUmiState) -> ModelReply:
    return call_model(model, turns, stop=stop, max_tokens=spec.max_tokens or tokens,
                      grammar=grammar if spec.use_grammar else None,
                      sampling=state.get("sampling"))


def _end(status: Status, reason: str) -> dict[str, Any]:
    return {"status": status, "reason": reason, "answer": None}


def _repeat(state: AlphaUmiState, spec: UmiSpec, role: str, text: str,
            seen: str = "") -> dict[str, Any] | None:
    """The failing update when ``text`` makes ``max_repeats`` identical outputs of ``role``.

    ``seen``: what the output answered (the planner's latest observation). The planner's
    decision is often the bare ``Next: caller.``: it repeats only when it also saw the same."""
    mine = [o["text"] + "\0" + o.get("seen", "") for o in state.get("outputs", [])
            if o["role"] == role] + [text + "\0" + seen]
    if guard.repeated_output(mine, spec.guards.max_repeats):
        return _end("failed", guard.repeat_reason(role, text, spec.guards.max_repeats))
    return None


# ---- nodes -----------------------------------------------------------------------------------
def plan_next(state: AlphaUmiState, spec: UmiSpec) -> dict[str, Any]:
    """The planner: a rationale and the next role (caller, conclusion or give up)."""
    check_input(state)  # type: ignore[arg-type] - the same input contract
    turns = len(state.get("decisions", []))
    if turns >= spec.max_turns:
        return _end("cap_reached", f"turn cap ({spec.max_turns}) reached before a conclusion")
    start = [] if state.get("history") else [{"role": "user", "content": state["task"].strip()}]
    history = [*state.get("history", []), *start]
    latest = next((t for t in reversed(history) if t["role"] == "observation"), None)
    seen = latest["content"] if latest is not None else ""  # what this turn answers
    # no conclusion before any observation: the small model otherwise copies the worked
    # example's last decision on its first turn and concludes with nothing to conclude from
    reply = _call(spec, spec.planner, umi.planner_prompt(spec.actions, history),
                  grammar=umi.planner_grammar(latest is not None), stop=None,
                  tokens=_PLANNER_TOKENS, state=state)
    if reply.text is None:
        return {"usage": reply.usage, **_end("failed", f"the planner failed: {reply.error}")}
    parsed = umi.parse_planner(reply.text)
    update: dict[str, Any] = {
        "usage": reply.usage, "logprob": reply.logprob,
        "outputs": [{"role": "planner", "text": reply.text, "seen": seen}],
        "history": [*start, {"role": "assistant",
                             "content": umi.render_decision(parsed.thought, parsed.decision)}],
        "decisions": [{"thought": parsed.thought, "next": parsed.decision,
                       "fallback": parsed.fallback}],
    }
    stop = _repeat(state, spec, "planner", reply.text, seen)
    if stop is not None:
        return {**update, **stop}
    if parsed.decision == "give up":
        return {**update, **_end("failed", f"the planner gave up: {parsed.thought}")}
    return update


def call_tool(state: AlphaUmiState, spec: UmiSpec) -> dict[str, Any]:
    """The caller: one action and its JSON arguments for the planner's last step."""
    constrained = spec.constrained(spec.caller)
    grammar = umi.caller_grammar(tuple((a.name, a.params) for a in spec.actions))
    reply = _call(spec, spec.caller, umi.caller_prompt(spec.actions, state["history"]),
                  grammar=grammar, stop=None, tokens=_CALLER_TOKENS, state=state)
    if reply.text is None:
        return {"usage": reply.usage, **_end("failed", f"the caller failed: {reply.error}")}
    text = reply.text.strip()
    update: dict[str, Any] = {"usage": reply.usage, "logprob": reply.logprob,
                              "outputs": [{"role": "caller", "text": reply.text}]}
    stop = _repeat(state, spec, "caller", reply.text)
    if stop is not None:
        return {**update, "history": [{"role": "caller", "content": text}], **stop}
    try:
        call, snapped = _resolve(text, spec, constrained)
    except ParseError as exc:
        return {**update, **_format_error(state, spec, text, exc)}
    name, args = call
    shown = umi.render_call(name, args)
    pending = {"tool": name, "args": args, "snapped": snapped}
    return {**update, "history": [{"role": "caller", "content": shown}], "pending": pending}


def _resolve(text: str, spec: UmiSpec, constrained: bool
             ) -> tuple[tuple[str, dict[str, Any]], dict[str, Any] | None]:
    """``((name, args), snapped)`` of a caller output; raises ParseError for a format error.
    Snapping applies only to models we cannot constrain."""
    recovered = False
    try:
        parsed = umi.parse_caller(text)
    except ParseError:
        if constrained:
            raise
        # a call-looking line (``Calculator(3 + 4)``) is snapped as a whole
        first = text.strip().splitlines()[0] if text.strip() else ""
        parsed = umi.CallerOutput(first.split("(")[0].removeprefix("Action:").strip(),
                                  None, _paren(first))
        recovered = bool(parsed.name)
        if not recovered:
            raise
    snapped = None
    action = spec.actions.get(parsed.name)
    if (action is None or recovered) and not constrained:
        found = guard.snap(parsed.name, spec.actions.names, spec.guards.snap_threshold)
        if found is not None:
            action = spec.actions.get(found.action)
            snapped = {"written": found.written, "action": found.action, "score": found.score}
    if action is None:
        raise ParseError(f"unknown tool {parsed.name!r}", text)
    values = umi.arguments(action, parsed)  # raises ParseError for missing keys
    if parsed.args is not None and all(p in parsed.args for p in action.params):
        args = {p: parsed.args[p] for p in action.params}
    else:  # the values by position (a variadic last parameter takes the rest)
        head = len(action.params) - 1
        args = dict(zip(action.params, [*values[:head], ", ".join(values[head:])], strict=True))
    return (action.name, args), snapped


def _paren(line: str) -> str:
    """``Calculator(3 + 4)`` -> ``3 + 4`` (the argument text of a call-looking line)."""
    if "(" in line and line.rstrip().endswith(")"):
        return line[line.index("(") + 1: line.rstrip().rindex(")")].strip()
    return ""


def _format_error(state: AlphaUmiState, spec: UmiSpec, text: str,
                  exc: ParseError) -> dict[str, Any]:
    """One format error goes back to the model (through the planner); the next ends the run."""
    errors = len(state.get("errors", []))
    history = [{"role": "caller", "content": text}]
    if not guard.format_retry_left(errors, spec.guards):
        return {"history": history, "errors": [str(exc)], "pending": None,
                **_end("failed", f"the caller's output is malformed again: {exc.reason}")}
    feedback = guard.format_feedback(exc.reason, spec.actions.names)
    return {"history": [*history, {"role": "observation", "content": feedback[
        :umi.OBSERVATION_LIMIT]}], "errors": [str(exc)], "pending": None}


def execute_call(state: AlphaUmiState, spec: UmiSpec) -> dict[str, Any]:
    """Run the caller's action (not again when the same call already ran) and append the
    observation to the history."""
    call = state.get("pending")
    if not call:
        return {}
    action = spec.actions.get(call["tool"])
    assert action is not None  # the caller resolved it
    values = umi.arguments(action, umi.CallerOutput(action.name, call["args"], ""))
    key = guard.call_key(action.name, values)
    record: dict[str, Any] = {
        "subgoal": len(state.get("decisions", [])), "outputs": [], "tool": action.name,
        "args": json.dumps(call["args"], ensure_ascii=False), "resolved_args": values,
        "result": None, "error": None,
        "seconds": 0.0, "key": key, "duplicate": False, "snapped": call.get("snapped"),
    }
    earlier = guard.find_duplicate(state.get("actions", []), key)
    if earlier is not None:
        record.update(duplicate=True, result=earlier.get("result"))
        seen = guard.duplicate_feedback(earlier)
        return {"actions": [record], "pending": None,
                "history": [{"role": "observation", "content": seen[:umi.OBSERVATION_LIMIT]}]}
    started = time.perf_counter()
    try:
        extra = {"images": list(state.get("images", []))} if action.needs_images else {}
        record["result"] = [v.shown() for v in as_values(action.executor(*values, **extra))]
    except Exception as exc:  # noqa: BLE001 - a tool failure is an observation, never a crash
        record["error"] = describe_error(exc)
    record["seconds"] = round(time.perf_counter() - started, 6)
    result = ", ".join(record["result"]) if record["result"] is not None else None
    seen = umi.observation(result, record["error"])
    return {"actions": [record], "pending": None,
            "history": [{"role": "observation", "content": seen}]}


def summarize(state: AlphaUmiState, spec: UmiSpec) -> dict[str, Any]:
    """The summarizer ("conclusion"): the final answer from the history alone."""
    reply = _call(spec, spec.summarizer, umi.summarizer_prompt(spec.actions, state["history"]),
                  grammar="", stop=["\n"], tokens=_SUMMARY_TOKENS, state=state)
    if reply.text is None:
        return {"usage": reply.usage, **_end("failed", f"the summarizer failed: {reply.error}")}
    answer = umi.parse_summary(reply.text)
    update: dict[str, Any] = {"usage": reply.usage, "logprob": reply.logprob,
                              "outputs": [{"role": "conclusion", "text": reply.text}],
                              "history": [{"role": "conclusion", "content": reply.text.strip()}]}
    if answer is None:
        return {**update, **_end("failed", "the summarizer found no answer in the history")}
    fallback = state.get("decisions", [{}])[-1].get("fallback")
    reason = ("the planner named no next role, so the summarizer answered (alpha-UMi's fallback)"
              if fallback else "the planner concluded and the summarizer answered")
    return {**update, "status": "answered", "answer": answer, "reason": reason}


# ---- routers ---------------------------------------------------------------------------------
def route_after_plan(state: AlphaUmiState) -> Literal["caller", "summarize", "__end__"]:
    """End on a terminal status; the caller on ``Next: caller.``; else the summarizer."""
    if state.get("status", "running") != "running":
        return END
    return "caller" if state["decisions"][-1]["next"] == "caller" else "summarize"


def route_after_call(state: AlphaUmiState) -> Literal["execute", "planner", "__end__"]:
    """End on a terminal status; execute a parsed call; a format error goes to the planner."""
    if state.get("status", "running") != "running":
        return END
    return "execute" if state.get("pending") else "planner"


# ---- report ----------------------------------------------------------------------------------
def umi_report(state: AlphaUmiState, *, seconds: float) -> dict[str, Any]:
    """The ``--json`` document of an alpha-UMi run: the LUMOS run report (``mode``
    ``alpha-umi``, no subgoals) plus ``decisions`` (the planner's rationale and next role per
    turn) and ``history`` (every role's turn in alpha-UMi's format)."""
    report = run_report(state, mode="alpha-umi", seconds=seconds)  # type: ignore[arg-type]
    report["decisions"] = list(state.get("decisions", []))
    report["history"] = list(state.get("history", []))
    return report

