"""LUMOS-OnePass and LUMOS-Iterative as LangGraph ``StateGraph``s.

```
OnePass:    START -> plan -> ground -> execute -> answer -> END
Iterative:  START -> plan -> ground -> execute -> plan ... plan (stop) -> answer -> END
```
Every node may end the run early (``status`` ``failed`` or ``cap_reached``); the caps bound
the loop, so a model that never says stop ends with a final state saying so.

Self-consistency (``samples=K``): K branches of the same graph run at once, the first greedy
and the others sampled at ``temperature`` with their own seeds; each is executed by the tools,
and the answer most branches agree on wins (:func:`~lumos_graph.agent.voting.vote`):
```
START -> (branch x K, in parallel) -> vote -> END
START -> plan -> (ground -> execute -> answer) x K -> vote -> END     program grounding
```
With program grounding the K branches share one greedy plan and differ in their programs.
The branches call the model concurrently, so our llama.cpp backend decodes them as one batch.
The plan and the branches run as sub-graphs: ``stream(..., stream_mode="messages",
subgraphs=True)`` streams their tokens (LangGraph leaves sub-graph output out otherwise).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from functools import partial, reduce
from typing import Annotated, Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer, Send

from lumos_graph.agent.actions import ActionSet
from lumos_graph.agent.nodes import (
    AgentSpec,
    Caps,
    answer,
    check_input,
    execute,
    ground,
    plan,
    route_after_execute,
    route_after_ground,
    route_after_plan,
)
from lumos_graph.agent.state import LumosState, add_usage
from lumos_graph.agent.voting import answer_key, rows_key, vote
from lumos_graph.errors import ConfigError
from lumos_graph.llm.models import DEFAULT_PRESET, as_chat_model, lumos_default
from lumos_graph.tools.toolsets import (
    ToolLike,
    create_actions,
    is_maths_only,
    is_sql_only,
    runs_in_code,
)

__all__ = [
    "PROGRAM_SAMPLES", "build_lumos_graph", "create_lumos_agent", "default_grounding",
    "default_samples",
]


def build_lumos_graph(spec: AgentSpec, *, planned: bool = False) -> StateGraph:
    """Wire the LUMOS nodes for ``spec.mode``; returns the uncompiled graph.

    ``planned`` (OnePass): the graph starts at ``ground``, on a state that already holds the
    plan (``subgoals``, ``plan_turns``); the program branches of self-consistency share one
    greedy plan this way.
    """
    if planned and spec.mode != "onepass":
        raise ConfigError("a graph that starts from a given plan is OnePass only")
    builder = StateGraph(LumosState)
    builder.add_node("plan", partial(plan, spec=spec))
    builder.add_node("ground", partial(ground, spec=spec))
    builder.add_node("execute", partial(execute, spec=spec))
    builder.add_node("answer", partial(answer, spec=spec))
    builder.add_edge(START, "ground" if planned else "plan")
    builder.add_conditional_edges("plan", route_after_plan, ["ground", "answer", END])
    builder.add_conditional_edges("ground", route_after_ground, ["execute", END])
    builder.add_conditional_edges(
        "execute", partial(route_after_execute, spec), ["plan", "ground", "answer", END]
    )
    builder.add_edge("answer", END)
    return builder


def create_lumos_agent(
    model: BaseChatModel | str | None = None,
    *,
    planner: BaseChatModel | str | None = None,
    grounder: BaseChatModel | str | None = None,
    actions: ActionSet | str | Sequence[ToolLike] | None = None,
    mode: Literal["onepass", "iterative"] = "onepass",
    grounding: Literal["actions", "program", "sql"] | None = None,
    max_subgoals: int = 8,
    max_actions: int = 24,
    max_model_calls: int = 16,
    max_tokens: int | None = None,
    use_grammar: bool = True,
    samples: int | None = None,
    temperature: float = 0.7,
    seed: int = 0,
    checkpointer: Checkpointer = None,
    name: str | None = None,
) -> CompiledStateGraph:
    """Create a LUMOS agent as a compiled LangGraph graph.

    Args:
        model: the model of both roles: any ``BaseChatModel``, or a model spec for
            :func:`~lumos_graph.llm.models.create_chat_model` (a preset name, a ``.gguf`` path or
            ``hf:owner/repo/file.gguf``). ``None`` or ``"default"`` loads the default model;
            with only the maths tools, with lumos-graph's trained LUMOS maths adapter
            (preset ``qwen2.5-coder-0.5b-lumos-maths``; pass ``"qwen2.5-coder-0.5b"`` for the
            untrained model with few-shot prompts).
        planner: the planning module's model, if different from ``model``.
        grounder: the grounding module's model, if different from ``model``.
        actions: the action set: an ``ActionSet`` (see
            :func:`~lumos_graph.tools.toolsets.create_actions`), tool set names (``"maths,qa"``), or
            a list of names, actions, LangChain tools and typed functions. Defaults to the
            LUMOS maths actions. With a ``QA`` action (complex QA), the final answer is formed
            by the grounder's model from the intermediate results, and iterative grounding
            turns list earlier results, as in LUMOS.
        mode: ``"onepass"`` (plan all, ground all, execute) or ``"iterative"``.
        grounding: ``"actions"``, LUMOS action lines (``R1 = Calculator(...)``), or
            ``"program"`` (OnePass with the ``Code`` action): the grounder writes the whole plan
            as one Python program, a commented step per subgoal, which ``Code`` runs once.
            With the default model, both roles are then the plain model (few-shot planner):
            on maths-val it beat the shipped adapter as planner, 42% against 37%.
            ``None``: :func:`default_grounding` (``"program"`` for the default model with
            only the maths tools in OnePass, the winner on maths-val; ``"actions"`` otherwise).
        max_subgoals: cap on subgoals.
        max_actions: cap on executed actions.
        max_model_calls: cap on planner and grounder calls together.
        max_tokens: cap on tokens per model call (``None``: the model's own setting).
        use_grammar: constrain local models (``ChatLlamaCpp``) with GBNF grammars.
        samples: self-consistency: run this many branches (the first greedy, the others
            sampled) and answer what most of them agree on; 1 runs the graph once, greedily.
            With program grounding the branches share one greedy plan and sample programs.
            ``None``: :func:`default_samples` (6 for the default agent's program grounding,
            chosen on validation; 1 otherwise).
        temperature: the sampled branches' temperature.
        seed: the sampled branches use seeds ``seed + 1``, ``seed + 2``, ...
        checkpointer: passed to ``compile`` (persist threads, resume runs).
        name: the graph's name.

    Returns:
        The compiled graph: ``invoke({"task": "..."})``, ``stream``, ``batch`` and ``as_tool``
        work as with any LangGraph graph. The final state holds ``answer``, ``status``
        (``answered``, ``cap_reached`` or ``failed``), ``reason`` and the whole trace.

    Raises:
        ConfigError: a bad model spec, action or cap, before any model runs.
    """
    if mode not in ("onepass", "iterative"):
        raise ConfigError(f"mode must be 'onepass' or 'iterative', not {mode!r}")
    if samples is not None and not 1 <= samples <= 64:
        raise ConfigError(f"samples must be between 1 and 64, not {samples}")
    if not temperature > 0:
        raise ConfigError(f"temperature must be positive, not {temperature}")
    caps = Caps(max_subgoals, max_actions, max_model_calls, max_tokens)  # validates the caps
    # "default" (or no model) in a maths-only agent is the default model with the trained adapter
    chosen = grounding is None
    if grounding is None:
        explicit_roles = planner is not None or grounder is not None
        grounding = "actions" if explicit_roles else default_grounding(model, mode, actions)
    if samples is None:
        samples = default_samples(grounding if chosen else None)
    if grounding not in ("actions", "program", "sql"):
        raise ConfigError(f"grounding must be 'actions', 'program' or 'sql', not {grounding!r}")
    maths_only = is_maths_only(actions)
    if grounding == "program" and planner is None and grounder is None and model in (
            None, "default"):
        model = DEFAULT_PRESET  # the plain model plans (few-shot) and writes the programs
    model = _resolve_default(model, maths_only)
    planner = _resolve_default(planner, maths_only) if planner is not None else None
    grounder = _resolve_default(grounder, maths_only) if grounder is not None else None
    shared = as_chat_model(model) if (planner is None or grounder is None) else None
    grounding_model = as_chat_model(grounder) if grounder is not None else shared
    action_set = _action_set(actions, grounding_model)  # type: ignore[arg-type]
    complex_qa = "QA" in action_set.names
    spec = AgentSpec(
        mode=mode,
        planner=as_chat_model(planner) if planner is not None else shared,  # type: ignore[arg-type]
        grounder=grounding_model,  # type: ignore[arg-type]
        actions=action_set,
        caps=caps,
        use_grammar=use_grammar,
        answerer=grounding_model if complex_qa else None,
        grounding_context=complex_qa,
        grounding=grounding,
    )
    # The caps end every run; LangGraph's recursion limit (25 in some 1.x releases) must never
    # end it first. A model call is at most three supersteps (plan or ground, execute, answer).
    limit = 3 * (max_model_calls + max_subgoals) + 10
    if samples == 1:
        graph = build_lumos_graph(spec).compile(
            checkpointer=checkpointer, name=name or f"lumos-{mode}")
        return graph.with_config(recursion_limit=limit)
    # program and SQL grounding: one greedy plan, then K programs or queries (the plan is short
    # and the program carries the work; on validation, votes over programs of one plan won);
    # queries vote on the rows they return
    shared_plan = grounding in ("program", "sql")
    branch = build_lumos_graph(spec, planned=shared_plan).compile(name=f"lumos-{mode}-branch")
    planner_graph = _plan_only(spec) if shared_plan else None
    # a negative answer counts half a vote for programs (maths), where it was measured
    graph = _self_consistency(branch.with_config(recursion_limit=limit), samples,
                              temperature, seed, planner=planner_graph,
                              negative_weight=0.5 if grounding == "program" else 1.0,
                              key=rows_key if grounding == "sql" else answer_key).compile(
        checkpointer=checkpointer, name=name or f"lumos-{mode}-x{samples}")
    return graph.with_config(recursion_limit=limit)


def _plan_only(spec: AgentSpec) -> Any:
    """``START -> plan -> END``: the greedy plan the program branches share."""
    builder = StateGraph(LumosState)
    builder.add_node("plan", partial(plan, spec=spec))
    builder.add_edge(START, "plan")
    builder.add_edge("plan", END)
    return builder.compile(name="lumos-plan")


class _VotingState(LumosState, total=False):
    branches: Annotated[list[dict[str, Any]], operator.add]


def _less(usage: dict[str, Any], spent: dict[str, Any]) -> dict[str, Any]:
    """A branch's own usage: its total less what it started with (the shared plan's)."""
    return {k: v - spent.get(k, 0) for k, v in usage.items()}


def _self_consistency(
    branch: Any, samples: int, temperature: float, seed: int, *, planner: Any = None,
    negative_weight: float = 1.0, key: Callable[[str], str] = answer_key,
) -> StateGraph:
    """``START -> branch x samples (parallel) -> vote -> END`` around a compiled graph; with
    ``planner`` (a compiled plan-only graph), ``START -> plan -> branch x samples -> vote``, the
    branches starting from its plan. ``negative_weight`` and ``key``: see :func:`vote`."""

    def fan_out(state: _VotingState) -> list[Send]:
        check_input(state)  # a bad input is the user's mistake, raised before any model runs
        base = {"task": state["task"], "images": state.get("images", [])}
        if planner is not None:  # the plan's usage too, so that each branch's caps count it
            base |= {"subgoals": state.get("subgoals", []),
                     "plan_turns": state.get("plan_turns", []), "usage": state.get("usage", {})}
        return [Send("branch", {**base, "n": 0})] + [
            Send("branch", {**base, "n": i,
                            "sampling": {"temperature": temperature, "seed": seed + i}})
            for i in range(1, samples)
        ]

    def run_branch(inputs: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        n = inputs.pop("n")
        final = branch.invoke(inputs, config)
        return {"branches": [{**final, "n": n}]}

    def decide(state: _VotingState) -> dict[str, Any]:
        branches = sorted(state["branches"], key=lambda b: b["n"])
        chosen, summary = vote(branches, negative_weight=negative_weight, key=key)
        # the shared plan (subgoals, plan_turns, its usage) is in the state already
        shared = ("subgoals", "plan_turns", "logprob") if planner is not None else ()
        winner = {k: v for k, v in branches[chosen].items()
                  if k not in ("n", "usage", "sampling", "task", "images", *shared)}
        plan = state.get("usage", {}) if planner is not None else {}
        usage = reduce(add_usage, (_less(b.get("usage", {}), plan) for b in branches),
                       None)  # every branch's own cost, added to the plan's
        agree = summary[chosen]["votes"]
        reason = winner.get("reason", "")
        if winner.get("status") == "answered":
            reason = f"{reason}; {agree} of {samples} samples agree"
        return {**winner, "usage": usage, "samples": summary, "reason": reason}

    def plan_once(state: _VotingState, config: RunnableConfig) -> dict[str, Any]:
        check_input(state)
        planned = planner.invoke({"task": state["task"], "images": state.get("images", [])},
                                 config)
        return {k: v for k, v in planned.items() if k not in ("task", "images")}

    def after_plan(state: _VotingState) -> Any:
        if state.get("status", "running") != "running":
            return END  # the planner failed or hit a cap: that is the run's outcome
        return fan_out(state)

    builder = StateGraph(_VotingState)
    builder.add_node("branch", run_branch)
    builder.add_node("vote", decide)
    if planner is not None:
        builder.add_node("plan", plan_once)
        builder.add_edge(START, "plan")
        builder.add_conditional_edges("plan", after_plan, ["branch", END])
    else:
        builder.add_conditional_edges(START, fan_out, ["branch"])
    builder.add_edge("branch", "vote")
    builder.add_edge("vote", END)
    return builder




def default_grounding(
    model: BaseChatModel | str | None, mode: str,
    actions: ActionSet | str | Sequence[ToolLike] | None,
) -> Literal["actions", "program", "sql"]:
    """The grounding the default agent uses: ``"program"`` for the default model (``None`` or
    ``"default"``) in OnePass with the maths tools, where it won on maths-val (42% against 30%
    for action lines and 20% for the plain model's chain of thought), and with the maths tools
    and user tools, which the program calls as functions (not measured on a split: chosen so
    that one program does the arithmetic around them); ``"actions"`` for every other model,
    mode or tool set (LUMOS checkpoints and other trained grounders were trained on action
    lines). With the sql tools alone, the default model in OnePass grounds into ``"sql"``,
    one query from the schema and its sample rows (on the first 29 questions of chinook-val,
    86% against 59% for action lines; see the README's Figures)."""
    default = model is None or model == "default"
    if default and mode == "onepass" and is_sql_only(actions):
        return "sql"
    return "program" if default and mode == "onepass" and runs_in_code(actions) else "actions"


# The default agent's self-consistency: one greedy plan, a greedy program and five sampled
# ones (temperature 0.7), a vote over their executed results (agent/voting.py). On
# maths-wide-val (one question from each of 70 unseen gsm_symbolic templates) the vote of these
# six programs was right on 27, the greedy program of the same runs on 22.
PROGRAM_SAMPLES = 6


# The default SQL agent's: one greedy query and four sampled ones, voting on their rows. On a
# Chinook validation set of 48 questions (not Spider's databases) five queries were right on
# 36, one greedy query on 33, direct text-to-SQL on 32.
SQL_SAMPLES = 5


def default_samples(default_grounding_chosen: str | None) -> int:
    """Branches of the default agent: :data:`PROGRAM_SAMPLES` when the default grounding
    (:func:`default_grounding`) chose programs, :data:`SQL_SAMPLES` when it chose SQL, else
    1. An explicit ``grounding`` gets 1."""
    return {"program": PROGRAM_SAMPLES, "sql": SQL_SAMPLES}.get(default_grounding_chosen or "", 1)


def _resolve_default(model: BaseChatModel | str | None, maths_only: bool) -> BaseChatModel | str:
    if isinstance(model, BaseChatModel):
        return model
    return lumos_default(model, maths_only=maths_only)


def _action_set(
    actions: ActionSet | str | Sequence[ToolLike] | None, model: BaseChatModel
) -> ActionSet:
    if isinstance(actions, ActionSet):
        return actions
    return create_actions("maths" if actions is None else actions, model=model)
