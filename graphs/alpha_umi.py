"""alpha-UMi (arXiv 2401.07324) as a LangGraph ``StateGraph``: planner, caller, summarizer.

```
START -> planner -(Next: caller.)-> caller -> execute -> planner -> ...
         planner -(Next: conclusion. / no decision)-> summarize -> END
         planner -(Next: give up.)-> END;  caller -(format error)-> planner
```
The three roles are separate models in the paper; here each may be any LangChain chat model
or a model spec (a preset, a ``.gguf`` path), and roles on the same GGUF share one loaded base
(the llama.cpp pool). The tools are the same action set the LUMOS grounder uses, so maths, QA,
SQL, VQA and a user's own tools work unchanged. The turn cap (default 10, as the reference
port) ends a run that never concludes; AgentTuning's safeguards run in the nodes
(:mod:`lumos_graph.agent.umi_nodes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from lumos_graph.agent.actions import ActionSet
from lumos_graph.agent.safeguards import SNAP_THRESHOLD, Safeguards
from lumos_graph.agent.umi_nodes import (
    AlphaUmiState,
    UmiSpec,
    call_tool,
    execute_call,
    plan_next,
    route_after_call,
    route_after_plan,
    summarize,
)
from lumos_graph.llm.models import as_chat_model
from lumos_graph.tools.toolsets import ToolLike, create_actions

__all__ = ["build_alpha_umi_graph", "create_alpha_umi_agent"]


def build_alpha_umi_graph(spec: UmiSpec) -> StateGraph:
    """Wire the alpha-UMi nodes; returns the uncompiled graph."""
    builder = StateGraph(AlphaUmiState)
    builder.add_node("planner", partial(plan_next, spec=spec))
    builder.add_node("caller", partial(call_tool, spec=spec))
    builder.add_node("execute", partial(execute_call, spec=spec))
    builder.add_node("summarize", partial(summarize, spec=spec))
    builder.add_edge(START, "planner")
    builder.add_conditional_edges("planner", route_after_plan, ["caller", "summarize", END])
    builder.add_conditional_edges("caller", route_after_call, ["execute", "planner", END])
    builder.add_edge("execute", "planner")
    builder.add_edge("summarize", END)
    return builder


def create_alpha_umi_agent(
    model: BaseChatModel | str | None = None,
    *,
    planner: BaseChatModel | str | None = None,
    caller: BaseChatModel | str | None = None,
    summarizer: BaseChatModel | str | None = None,
    actions: ActionSet | str | Sequence[ToolLike] | None = None,
    max_turns: int = 10,
    max_tokens: int | None = None,
    use_grammar: bool = True,
    max_repeats: int = 3,
    snap_threshold: float = SNAP_THRESHOLD,
    checkpointer: Checkpointer = None,
    name: str = "alpha-umi",
) -> CompiledStateGraph:
    """Create an alpha-UMi agent as a compiled LangGraph graph.

    Args:
        model: the model of every role not given its own: any ``BaseChatModel`` or a model
            spec for :func:`~lumos_graph.llm.models.create_chat_model` (a preset, a ``.gguf``
            path, ``hf:...``); ``None`` loads the default preset (the plain default model:
            the shipped adapter was trained on LUMOS's format, not alpha-UMi's). For a GGUF
            with a LoRA adapter per role, pass ``ChatLlamaCpp(model_path=..., lora_path=...)``.
        planner: the planner's model (rationale and ``Next: caller.`` / ``conclusion.`` /
            ``give up.``), if different from ``model``.
        caller: the caller's model (``Action: NAME`` / ``Action Input: {json}``).
        summarizer: the summarizer's model (the final answer from the history).
        actions: an ``ActionSet``, tool set names (``"maths,qa"``) or a list of names,
            actions, LangChain tools and typed functions, as for ``create_lumos_agent``;
            defaults to the maths actions.
        max_turns: planner turns before the run ends with ``cap_reached`` (reference: 10).
        max_tokens: tokens per model call (``None``: 160 planner, 200 caller, 48 summarizer).
        use_grammar: constrain local models (``ChatLlamaCpp``) with GBNF grammars; without a
            grammar the caller's malformed actions are snapped (AgentTuning).
        max_repeats: identical consecutive outputs of one role that end the run as failed.
        snap_threshold: least character-BLEU score for snapping an unknown tool name.
        checkpointer: passed to ``compile``.
        name: the graph's name.

    Returns:
        The compiled graph: ``invoke({"task": "..."})``; the final state holds ``answer``,
        ``status`` (``answered``, ``cap_reached`` or ``failed``), ``reason``, ``decisions``,
        ``actions`` and the alpha-UMi ``history``.

    Raises:
        ConfigError: a bad model spec, action set or cap, before any model runs.
    """
    guards = Safeguards(max_repeats=max_repeats, snap_threshold=snap_threshold)
    shared = as_chat_model(model) if None in (planner, caller, summarizer) else None
    roles = [as_chat_model(m) if m is not None else shared for m in (planner, caller, summarizer)]
    planner_model, caller_model, summarizer_model = roles
    assert planner_model and caller_model and summarizer_model
    action_set = actions if isinstance(actions, ActionSet) else create_actions(
        "maths" if actions is None else actions, model=caller_model)
    spec = UmiSpec(planner=planner_model, caller=caller_model, summarizer=summarizer_model,
                   actions=action_set, max_turns=max_turns, max_tokens=max_tokens,
                   use_grammar=use_grammar, guards=guards)
    graph = build_alpha_umi_graph(spec).compile(checkpointer=checkpointer, name=name)
    # the turn cap ends every run; LangGraph's recursion limit must never end it first
    # (a turn is at most three supersteps: planner, caller, execute)
    return graph.with_config(recursion_limit=3 * max_turns + 10)
