"""Running grounded actions: variable substitution, argument shape checks, error capture.

Every failure here (unknown action, undefined variable, wrong number of arguments, a tool
error or crash) becomes an :class:`~lumos_graph.agent.state.ActionRecord` with ``error`` set: text
the model can read. Nothing raises at the caller.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from lumos_graph.agent import protocol
from lumos_graph.agent.actions import ActionSet, as_values
from lumos_graph.agent.state import ActionRecord
from lumos_graph.errors import ToolError

__all__ = ["describe_error", "run_action"]


def describe_error(exc: BaseException) -> str:
    """One line of text for the model about an exception."""
    if isinstance(exc, ToolError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def run_action(
    call: protocol.ActionCall,
    actions: ActionSet,
    variables: Mapping[str, str],
    *,
    subgoal: int | None = None,
    images: Sequence[str | bytes] = (),
) -> tuple[ActionRecord, dict[str, str]]:
    """Execute one parsed action.

    ``images`` (the run's input images) reach only actions with ``needs_images`` set.

    Returns:
        The record of the action and the new values of its output variables (empty on error).
    """
    record: ActionRecord = {
        "subgoal": subgoal,
        "outputs": list(call.outputs),
        "tool": call.tool,
        "args": call.args,
        "resolved_args": [],
        "result": None,
        "error": None,
        "seconds": 0.0,
    }
    action = actions.get(call.tool)
    if action is None:
        record["error"] = (
            f"Unknown action '{call.tool}'. The available actions are {', '.join(actions.names)}."
        )
        return record, {}
    missing = [r for r in protocol.references(call.args) if r not in variables]
    if missing:
        record["error"] = f"{', '.join(dict.fromkeys(missing))} is not defined yet."
        return record, {}
    low, high = action.arity()
    pieces = protocol.split_args(call.args, high)
    resolved = [
        protocol.substitute(piece, variables, expression=action.expression_args)
        for piece in pieces
    ]
    record["resolved_args"] = resolved
    if len(resolved) < low:
        record["error"] = (
            f"{action.name} expects {low} argument{'s' if low > 1 else ''}: {action.signature}."
        )
        return record, {}
    started = time.perf_counter()
    try:
        extra = {"images": list(images)} if action.needs_images else {}
        values = as_values(action.executor(*resolved, **extra))
    except Exception as exc:  # noqa: BLE001 - a tool failure is an observation, never a crash
        record["error"] = describe_error(exc)
        return record, {}
    finally:
        record["seconds"] = round(time.perf_counter() - started, 6)
    if len(values) < len(call.outputs):
        record["error"] = (
            f"{action.name} returned {len(values)} value{'s' if len(values) != 1 else ''} "
            f"for {len(call.outputs)} output variables."
        )
        return record, {}
    # Like the LUMOS reference, extra values beyond the named outputs are dropped.
    record["result"] = [v.shown() for v in values[: len(call.outputs)]]
    if any(v.empty for v in values[: len(call.outputs)]):
        record["empty"] = True
    return record, {name: v.text for name, v in zip(call.outputs, values, strict=False)}
