"""The stable JSON shape of one finished run (``lumos-graph ask --json`` prints it).

```
{
  "task": str,
  "mode": "onepass" | "iterative",
  "answer": str | null,
  "status": "answered" | "cap_reached" | "failed",
  "reason": str,                      # why the run ended, in a sentence
  "subgoals": [str, ...],
  "actions": [{"subgoal": int | null, "outputs": ["R1", ...], "tool": str, "args": str,
               "resolved_args": [str, ...], "result": [str, ...] | null, "error": str | null,
               "seconds": float}],
  "usage": {"model_calls": int, "prompt_tokens": int, "completion_tokens": int,
            "prompt_tokens_cached": int, "model_seconds": float},
  "seconds": float,
  "samples": [{"answer", "status", "votes", "logprob", "chosen"}, ...]   # self-consistency only
}
```
With self-consistency (``--samples K`` > 1, and the default OnePass maths agent's six programs)
the trace (subgoals, actions) is the chosen branch's and ``usage`` adds up every branch.
"""

from __future__ import annotations

from typing import Any

from lumos_graph.agent.state import LumosState, add_usage

__all__ = ["REPORT_KEYS", "run_report"]

REPORT_KEYS = ("task", "mode", "answer", "status", "reason", "subgoals", "actions", "usage",
               "seconds")


def run_report(state: LumosState, *, mode: str, seconds: float) -> dict[str, Any]:
    """The JSON document of a finished run."""
    status = state.get("status", "running")
    if status == "running":  # a graph interrupted from outside (e.g. a recursion limit)
        status = "failed"
    usage = add_usage(state.get("usage"), None)
    usage["model_seconds"] = round(usage["model_seconds"], 3)
    return {
        "task": state.get("task", ""),
        "mode": mode,
        "answer": state.get("answer"),
        "status": status,
        "reason": state.get("reason", ""),
        "subgoals": list(state.get("subgoals", [])),
        "actions": [dict(a) for a in state.get("actions", [])],
        "usage": usage,
        "seconds": round(seconds, 3),
    } | ({"samples": [{k: v for k, v in s.items() if k != "ground_turns"}
                      for s in state["samples"]]} if state.get("samples") else {})
