"""``lumos-graph ask --agent alpha-umi``: building the agent from the ask options and showing
its run (the planner's decisions, the caller's actions with results, the answer)."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from lumos_graph.cli._options import load_models, model_overrides, tool_actions
from lumos_graph.cli._view import TraceView

__all__ = ["UmiTraceView", "build_umi_agent"]


def build_umi_agent(args: argparse.Namespace, names: list[str], err: TextIO) -> Any:
    """The alpha-UMi agent of the ask options for tool sets ``names``, its models loaded.

    ``--model`` is every role's model (``default``: the plain default model; the shipped
    adapter speaks LUMOS, not alpha-UMi); ``--planner-model`` is the planner's and
    ``--grounder-model`` the caller's. A bad ``--db``, ``--kb``, ... fails before any model
    loads.
    """
    from lumos_graph.errors import ConfigError
    from lumos_graph.graphs.alpha_umi import create_alpha_umi_agent
    from lumos_graph.llm.models import DEFAULT_PRESET

    if (args.samples or 1) > 1:
        raise ConfigError("--samples works with the LUMOS agents only, not --agent alpha-umi")
    if args.max_turns < 1:
        raise ConfigError("--max-turns must be at least 1")
    built: list[Any] = []

    def build_actions(models: list[Any]) -> None:
        built.append(tool_actions(args, names, models[1]))

    base = DEFAULT_PRESET if args.model == "default" else args.model
    specs = [args.planner_model or base, args.grounder_model or base, base]
    planner, caller, summarizer = load_models(err, specs, then=build_actions,
                                              overrides=model_overrides(args))
    return create_alpha_umi_agent(planner=planner, caller=caller, summarizer=summarizer,
                                  actions=built[0], max_turns=args.max_turns,
                                  use_grammar=not args.no_grammar)


class UmiTraceView(TraceView):
    """Prints an alpha-UMi run as it happens."""

    def update(self, node: str, delta: dict[str, Any]) -> None:
        if node == "planner":
            for decision in delta.get("decisions", []):
                mark = " (no decision: conclusion)" if decision["fallback"] else ""
                self._p(f"  Planner: {decision['thought']} -> Next: {decision['next']}.{mark}")
        elif node == "caller" and delta.get("errors"):
            for error in delta["errors"]:
                self._p(f"    ! caller: {error}")
        elif node == "execute":
            for action in delta.get("actions", []):
                call = f"{action['tool']}({action['args']})"
                if action.get("snapped"):
                    call += f"  [snapped from {action['snapped']['written']!r}]"
                if action.get("duplicate"):
                    self._p(f"    {call}  ->  not run again (same call as before)")
                elif action["error"]:
                    self._p(f"    {call}  ->  error: {action['error']}")
                else:
                    self._p(f"    {call}  ->  {', '.join(action['result'] or [])}")
