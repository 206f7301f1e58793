"""Nodes and routers of the LUMOS graphs.

A node is ``(state, spec) -> partial state``: the graph binds the :class:`AgentSpec` (models,
actions, caps) with ``functools.partial``. Nodes do work; routers (``route_after_<node>``)
decide where to go next. A model's mistake never raises: it is recorded in the state, and the
caps bound every loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END

from lumos_graph.agent import protocol, safeguards
from lumos_graph.agent.actions import ActionSet
from lumos_graph.agent.execution import run_action
from lumos_graph.agent.few_shot_examples import EXAMPLES
from lumos_graph.agent.grammar import ground_grammar, plan_grammar, program_grammar, sql_grammar
from lumos_graph.agent.model_calls import ModelReply, call_model
from lumos_graph.agent.state import ActionRecord, LumosState
from lumos_graph.errors import ConfigError

__all__ = [
    "AgentSpec",
    "Caps",
    "answer",
    "check_input",
    "execute",
    "ground",
    "plan",
    "route_after_execute",
    "route_after_ground",
    "route_after_plan",
]

Mode = Literal["onepass", "iterative"]
Grounding = Literal["actions", "program", "sql"]


@dataclass(frozen=True)
class Caps:
    """Bounds of one run (LUMOS's GSM8K evaluation used 16 model calls and 8 subgoals)."""

    max_subgoals: int = 8
    max_actions: int = 24
    max_model_calls: int = 16
    max_tokens: int | None = None  # per model call; None keeps the model's own setting
    # AgentTuning's rule: the same output three times in a row ends the run as a failure
    max_repeats: int = 3

    def __post_init__(self) -> None:
        for name in ("max_subgoals", "max_actions", "max_model_calls", "max_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, not {value}")
        if self.max_repeats < 2:
            raise ConfigError(f"max_repeats must be at least 2, not {self.max_repeats}")


@dataclass(frozen=True)
class AgentSpec:
    """What the nodes of one LUMOS agent work with."""

    mode: Mode
    planner: BaseChatModel
    grounder: BaseChatModel
    actions: ActionSet
    caps: Caps = Caps()
    use_grammar: bool = True
    # QA tasks (LUMOS): the final answer is formed by this model from the intermediate QA
    # results, and iterative grounding turns list the results of earlier subgoals
    answerer: BaseChatModel | None = None
    grounding_context: bool = False
    # "actions": LUMOS action lines (R1 = Calculator(...)); "program" (OnePass): the whole plan
    # grounded as one Python program, run once by the Code action; "sql" (OnePass): the whole
    # plan grounded as one SQL query from the schema and sample rows, run by SQLQuery, with
    # one corrected attempt after an error or an empty result
    grounding: Grounding = "actions"

    def __post_init__(self) -> None:
        if self.grounding == "program" and self.mode != "onepass":
            raise ConfigError("program grounding works with mode='onepass' only")
        if self.grounding == "program" and "Code" not in self.actions.names:
            raise ConfigError("program grounding needs the Code action (the maths tools)")
        if self.grounding == "sql" and self.mode != "onepass":
            raise ConfigError("SQL grounding works with mode='onepass' only")
        if self.grounding == "sql" and "SQLQuery" not in self.actions.names:
            raise ConfigError("SQL grounding needs the SQLQuery action (the sql tools)")


# ---- model calls -----------------------------------------------------------------------------
def _prompt_format(model: BaseChatModel) -> protocol.PromptFormat:
    return getattr(model, "prompt_format", "chat_template")


def _call(
    spec: AgentSpec, model: BaseChatModel, turns: Sequence[dict[str, str]], grammar: str,
    state: LumosState,
) -> ModelReply:
    """Invoke a role's model on a conversation, sampled as the state says (greedy without).

    An empty ``grammar`` decodes freely (answers in words).
    """
    return call_model(model, turns, stop=["\n"], max_tokens=spec.caps.max_tokens,
                      grammar=grammar if spec.use_grammar else None,
                      sampling=state.get("sampling"))


def _calls_left(state: LumosState, spec: AgentSpec) -> bool:
    return state.get("usage", {}).get("model_calls", 0) < spec.caps.max_model_calls


def _cap(reason: str) -> dict[str, Any]:
    return _end("cap_reached", reason)


def _end(status: str, reason: str) -> dict[str, Any]:
    """The update that ends a run without an answer (``answer`` is always in the final state)."""
    return {"status": status, "reason": reason, "answer": None}


def _few_shot(spec: AgentSpec, model: BaseChatModel, module: str) -> list[dict[str, str]]:
    if getattr(model, "module_system", False):  # our trained modules: told which they are
        return [protocol.module_system(module, spec.mode)]  # type: ignore[arg-type]
    if _prompt_format(model) == "lumos" or not getattr(model, "few_shot", True):
        return []  # trained modules (LUMOS checkpoints, our adapters) saw the bare protocol
    return protocol.few_shot(
        module,  # type: ignore[arg-type]
        spec.mode,
        spec.actions.listing(),
        set(spec.actions.names),
        examples=EXAMPLES,
        grounding_context=spec.grounding_context,
    )


# ---- nodes -----------------------------------------------------------------------------------
def plan(state: LumosState, spec: AgentSpec) -> dict[str, Any]:
    """Ask the planner for all subgoals (OnePass) or the next subgoal or stop (Iterative)."""
    check_input(state)
    k = len(state.get("subgoals", [])) + 1
    if not _calls_left(state, spec):
        return _cap(f"model-call cap ({spec.caps.max_model_calls}) reached while planning")
    turns = list(state.get("plan_turns", []))
    new: list[dict[str, str]] = []
    if not turns or turns[-1]["role"] != "user":
        new.append({"role": "user", "content": protocol.plan_first(state["task"])})
    prompt = _few_shot(spec, spec.planner, "plan") + turns + new
    # OnePass: the grammar numbers the subgoals and ends the plan at the cap (grammar-less
    # models are checked against the cap below)
    bound = spec.caps.max_subgoals if spec.mode == "onepass" else None
    reply = _call(spec, spec.planner, prompt, plan_grammar(spec.mode, k, bound), state)
    text = reply.text
    if text is None:
        return {"usage": reply.usage, **_end("failed", f"the planner failed: {reply.error}")}
    update: dict[str, Any] = {"usage": reply.usage, "logprob": reply.logprob,
                              "plan_turns": [*new, _assistant(text)]}
    try:
        if spec.mode == "onepass":
            # a subgoal written twice word for word adds nothing; a small model's copy of it
            # is done twice by the program or the action line
            subgoals = list(dict.fromkeys(s.text for s in protocol.parse_plan(text)))
            if len(subgoals) > spec.caps.max_subgoals:
                return {**update, **_cap(f"the plan has {len(subgoals)} subgoals, over the cap")}
            return {**update, "subgoals": subgoals}
        decision = protocol.parse_decision(text)
    except protocol.ParseError as exc:
        return {**update, "errors": [str(exc)],
                **_end("failed", f"the planner's output is not a plan: {exc.reason}")}
    if decision.stop:
        if k == 1:
            return {**update, **_end("failed", "the planner stopped before any subgoal")}
        return {**update, "planning_done": True}
    assert decision.subgoal is not None
    if k > spec.caps.max_subgoals:  # the planner may still stop after the last allowed subgoal
        return {**update, **_cap(
            f"subgoal cap ({spec.caps.max_subgoals}) reached before the planner stopped")}
    recent = [*state.get("subgoals", [])[-(spec.caps.max_repeats - 1):], decision.subgoal.text]
    if len(recent) >= spec.caps.max_repeats and len(set(recent)) == 1:
        stuck = f"the planner repeated the same subgoal {spec.caps.max_repeats} times"
        if spec.answerer is not None and _findings(state.get("actions", [])):
            # LUMOS QA: planning stops and the answer step reads what was found so far; the
            # repeated subgoal is not grounded again (the reason says so)
            return {**update, "planning_done": True, "stop_note": stuck}
        return {**update, **_end("failed", stuck)}
    return {**update, "subgoals": [decision.subgoal.text]}


def ground(state: LumosState, spec: AgentSpec) -> dict[str, Any]:
    """Ask the grounder for the actions of the new subgoal(s)."""
    if not _calls_left(state, spec):
        return _cap(f"model-call cap ({spec.caps.max_model_calls}) reached while grounding")
    subgoals = state["subgoals"]
    if spec.grounding == "program":
        return _ground_program(state, spec, subgoals)
    if spec.grounding == "sql":
        return _ground_sql(state, spec, subgoals)
    listing = spec.actions.listing()
    turns = list(state.get("ground_turns", []))
    if spec.mode == "onepass":
        user = protocol.ground_first_onepass(state["task"], listing, subgoals)
    else:
        label = protocol.subgoal_text(len(subgoals), subgoals[-1])
        earlier = state.get("results", []) if spec.grounding_context else []
        user = (
            protocol.ground_next(label, earlier) if turns
            else protocol.ground_first(state["task"], listing, label)
        )
    new = [{"role": "user", "content": user}]
    prompt = _few_shot(spec, spec.grounder, "ground") + turns + new
    # only variables that hold a value may be referenced (a failed action's outputs do not)
    grammar = ground_grammar(spec.actions.names, _next_variable(state),
                             tuple(sorted(state.get("variables", {}))))
    reply = _call(spec, spec.grounder, prompt, grammar, state)
    text = reply.text
    if text is None:
        return {"usage": reply.usage, **_end("failed", f"the grounder failed: {reply.error}")}
    update: dict[str, Any] = {"usage": reply.usage, "logprob": reply.logprob,
                              "ground_turns": [*new, _assistant(text)]}
    earlier = [t["content"] for t in turns if t["role"] == "assistant"]
    if safeguards.repeated_output([*earlier, text], spec.caps.max_repeats):  # AgentTuning
        return {**update, **_end("failed", safeguards.repeat_reason(
            "grounder", text, spec.caps.max_repeats))}
    try:
        # a line cut by the token limit keeps its complete actions
        calls = protocol.parse_actions(text, cut_tail=reply.cut)
    except protocol.ParseError as exc:
        return {**update, "pending": [], "errors": [str(exc)],
                "actions": [_unparsed(state, spec, exc)]}
    return {**update, "pending": [c.render() for c in calls]}


def _ground_program(state: LumosState, spec: AgentSpec, subgoals: Sequence[str]) -> dict[str, Any]:
    """Program grounding: the plan as one Python program, pending as one ``Code`` action."""
    functions = spec.actions.code_functions()
    names = [a.name for a in functions]
    prompt = protocol.program_prompt(state["task"], subgoals, [a.doc for a in functions])
    grammar = program_grammar(protocol.program_import(names)) if spec.use_grammar else None
    return _ground_one(state, spec, prompt, prompt[-1:], grammar, max_tokens=512, tool="Code",
                       parse=lambda text: protocol.drop_import(protocol.parse_program(text),
                                                               names))


def _ground_one(
    state: LumosState, spec: AgentSpec, prompt: list[dict[str, str]],
    new: list[dict[str, str]], grammar: str | None, *, max_tokens: int, tool: str,
    parse: Callable[[str], str],
) -> dict[str, Any]:
    """Program and SQL grounding: one reply, parsed into the argument of one pending ``tool``
    action; ``new`` are the prompt's turns this call adds to ``ground_turns``."""
    reply = call_model(spec.grounder, prompt, stop=None,
                       max_tokens=spec.caps.max_tokens or max_tokens, grammar=grammar,
                       sampling=state.get("sampling"))
    text = reply.text
    if text is None:
        return {"usage": reply.usage, **_end("failed", f"the grounder failed: {reply.error}")}
    update: dict[str, Any] = {"usage": reply.usage, "logprob": reply.logprob,
                              "ground_turns": [*new, _assistant(text)]}
    try:
        argument = parse(text)
    except protocol.ParseError as exc:
        return {**update, "pending": [], "errors": [str(exc)],
                "actions": [_unparsed(state, spec, exc)]}
    call = protocol.ActionCall((f"R{_next_variable(state)}",), tool, argument)
    return {**update, "pending": [call.render()]}


SQL_ATTEMPTS = 2
"""Queries the SQL grounder writes at most: the first, and one corrected after an error or an
empty result (the query and what went wrong go back to it in the same conversation)."""


def _ground_sql(state: LumosState, spec: AgentSpec, subgoals: Sequence[str]) -> dict[str, Any]:
    """SQL grounding: the plan as one SQLite query, pending as one ``SQLQuery`` action."""
    schema = spec.actions.database_schema() or ""
    turns = list(state.get("ground_turns", []))
    first = protocol.sql_prompt(schema, state["task"], subgoals)
    if turns:  # the query before failed or found nothing: it goes back once
        last = state.get("actions", [])[-1]
        new = [protocol.sql_retry(last["error"])]
        prompt = [first[0], *turns, *new]
    else:
        new = first[1:]
        prompt = first
    grammar = sql_grammar() if spec.use_grammar else None
    return _ground_one(state, spec, prompt, new, grammar, max_tokens=384, tool="SQLQuery",
                       parse=_sql_query)


def _sql_query(text: str) -> str:
    """The query of the SQL grounder's reply; :class:`~.protocol.ParseError` without one."""
    query = protocol.parse_sql(text)
    if query is None:
        raise protocol.ParseError("no SQL query in the reply", text)
    return query


def _sql_retry(state: LumosState, spec: AgentSpec) -> bool:
    """SQL grounding: the last query failed or returned no rows, and it may be written again."""
    records = state.get("actions", [])
    if spec.grounding != "sql" or not records or not _calls_left(state, spec):
        return False
    attempts = sum(t["role"] == "assistant" for t in state.get("ground_turns", []))
    return attempts < SQL_ATTEMPTS and bool(records[-1]["error"] or records[-1].get("empty"))


def execute(state: LumosState, spec: AgentSpec) -> dict[str, Any]:
    """Run the pending actions in order, stopping at the first error."""
    variables = dict(state.get("variables", {}))
    done = len(state.get("actions", []))
    subgoal = len(state.get("subgoals", [])) if spec.mode == "iterative" else None
    records: list[ActionRecord] = []
    update: dict[str, Any] = {"pending": []}
    for text in state.get("pending", []):
        if done + len(records) >= spec.caps.max_actions:
            update.update(_cap(f"action cap ({spec.caps.max_actions}) reached"))
            break
        # re-parsing our own rendering of an already parsed call cannot fail
        call = protocol.parse_call(text)
        earlier = _duplicate_of(call, spec, variables, [*state.get("actions", []), *records])
        if earlier is not None:
            record, values = _repeat(call, earlier, variables, subgoal)
        else:
            record, values = run_action(
                call, spec.actions, variables, subgoal=subgoal, images=state.get("images", [])
            )
        records.append(record)
        variables.update(values)
        if record["error"]:
            break
    last = (records or state.get("actions", [])[-1:] or [None])[-1]
    result = _result_text(last)
    update.update(
        actions=records,
        variables={k: v for k, v in variables.items() if state.get("variables", {}).get(k) != v},
        results=[result],
    )
    if spec.mode == "iterative":
        k = len(state.get("subgoals", []))
        update["plan_turns"] = [{"role": "user", "content": protocol.feedback(k, result)}]
    return update


def answer(state: LumosState, spec: AgentSpec) -> dict[str, Any]:
    """Form the final answer.

    The value of the last successful action (LUMOS maths), or, with an ``answerer`` model
    (LUMOS QA), that model's short answer to the task from the intermediate results.
    """
    records = state.get("actions", [])
    if spec.mode == "onepass" and records and records[-1]["error"]:
        return {"status": "failed", "answer": None,
                "reason": f"the last action failed: {records[-1]['error']}"}
    if spec.answerer is not None:
        return _answer_from_findings(state, spec, records)
    for record in reversed(records):
        if record["error"] is None and record["outputs"]:
            value = state.get("variables", {}).get(record["outputs"][-1])
            if value is not None:
                return {"status": "answered", "answer": value, "reason": "the plan was carried out"}
    return {"status": "failed", "answer": None, "reason": "no action produced a result"}


def _answer_from_findings(
    state: LumosState, spec: AgentSpec, records: Sequence[ActionRecord]
) -> dict[str, Any]:
    findings = _findings(records)
    if not findings:
        return {"status": "failed", "answer": None, "reason": "no action produced a result"}
    if not _calls_left(state, spec):
        return _cap(f"model-call cap ({spec.caps.max_model_calls}) reached before answering")
    assert spec.answerer is not None
    prompt = protocol.final_answer_prompt(state["task"], findings)
    reply = _call(spec, spec.answerer, prompt, "", state)
    if reply.text is None:
        return {"usage": reply.usage,
                **_end("failed", f"the answer model failed: {reply.error}")}
    final = protocol.parse_short_answer(reply.text)
    if final is None:
        return {"usage": reply.usage, **_end("failed", "the findings do not answer the task")}
    reason = "answered from the intermediate results"
    if state.get("stop_note"):
        reason += f" ({state['stop_note']}; planning stopped there)"
    return {"usage": reply.usage, "logprob": reply.logprob, "status": "answered",
            "answer": final, "reason": reason}


def _findings(records: Sequence[ActionRecord]) -> list[tuple[str, str]]:
    """(question, result) pairs for the answer step: QA-like results, then the last result.

    Retrieval results (passages) are left out: the QA actions already read them.
    """
    ok = [r for r in records if r["error"] is None and r["result"]]
    asked = [r for r in ok if r["tool"] in _ANSWERING_TOOLS]
    if ok and ok[-1] not in asked and ok[-1]["tool"] not in _RETRIEVAL_TOOLS:
        asked.append(ok[-1])
    pairs = []
    for r in asked:
        question = r["resolved_args"][-1] if r["tool"] in _ANSWERING_TOOLS else (
            f"{r['tool']}({', '.join(r['resolved_args'])})")
        question = question.removeprefix("Question:").strip()
        pairs.append((question, ", ".join(r["result"] or [])))
    return pairs


_ANSWERING_TOOLS = {"QA", "VQA"}
_RETRIEVAL_TOOLS = {"KnowledgeQuery", "ParagraphRetrieve"}


# ---- routers ---------------------------------------------------------------------------------
def route_after_plan(state: LumosState) -> Literal["ground", "answer", "__end__"]:
    """End on a terminal status, answer after a stop decision, else ground."""
    if state.get("status", "running") != "running":
        return END
    if state.get("planning_done"):
        return "answer"
    return "ground"


def route_after_ground(state: LumosState) -> Literal["execute", "__end__"]:
    """End on a terminal status, else execute."""
    return END if state.get("status", "running") != "running" else "execute"


def route_after_execute(
    spec: AgentSpec, state: LumosState
) -> Literal["plan", "ground", "answer", "__end__"]:
    """End on a terminal status; a failed or empty SQL query is grounded again once; Iterative
    plans again, OnePass answers."""
    if state.get("status", "running") != "running":
        return END
    if _sql_retry(state, spec):
        return "ground"
    return "plan" if spec.mode == "iterative" else "answer"


# ---- helpers ---------------------------------------------------------------------------------
def check_input(state: LumosState) -> None:
    """Usage mistakes in the graph input are raised before any model runs."""
    if state.get("status", "running") != "running":
        raise ConfigError(
            "this thread already finished a task; start the next task on a new thread_id")
    task = state.get("task")
    if not isinstance(task, str) or not task.strip():
        raise ConfigError("the graph input needs 'task', a non-empty string")


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text.strip()}


def _next_variable(state: LumosState) -> int:
    names = [*state.get("variables", {})]
    for record in state.get("actions", []):
        names += record["outputs"]
    # a model without a grammar may name R followed by thousands of digits: not a number to
    # continue from (and int() refuses more than 4,300 digits)
    numbers = [int(n[1:]) for n in names if n[1:].isdigit() and len(n) <= 10]
    return max(numbers, default=0) + 1


def _unparsed(state: LumosState, spec: AgentSpec, exc: protocol.ParseError) -> ActionRecord:
    return {
        "subgoal": len(state.get("subgoals", [])) if spec.mode == "iterative" else None,
        "outputs": [],
        "tool": "",
        "args": exc.raw,
        "resolved_args": [],
        "result": None,
        "error": f"Could not parse the grounded actions ({exc.reason}).",
        "seconds": 0.0,
    }


def _duplicate_of(
    call: protocol.ActionCall, spec: AgentSpec, variables: dict[str, str],
    records: Sequence[ActionRecord],
) -> ActionRecord | None:
    """The earlier successful record of the same action with the same resolved arguments."""
    action = spec.actions.get(call.tool)
    if action is None or any(r not in variables for r in protocol.references(call.args)):
        return None  # run_action reports these mistakes
    resolved = [protocol.substitute(piece, variables, expression=action.expression_args)
                for piece in protocol.split_args(call.args, action.arity()[1])]
    earlier = safeguards.find_duplicate(records, safeguards.call_key(call.tool, resolved))
    if earlier is None or earlier["error"] or len(earlier["outputs"]) < len(call.outputs):
        return None  # a failed call may be retried; a shorter one cannot fill the outputs
    return earlier  # type: ignore[return-value]


def _repeat(
    call: protocol.ActionCall, earlier: ActionRecord, variables: dict[str, str],
    subgoal: int | None,
) -> tuple[ActionRecord, dict[str, str]]:
    """AgentTuning's no-progress rule: the outputs take the earlier call's values, unrun."""
    values = {new: variables[old] for new, old in zip(call.outputs, earlier["outputs"],
                                                       strict=False) if old in variables}
    record: ActionRecord = {
        "subgoal": subgoal, "outputs": list(call.outputs), "tool": call.tool, "args": call.args,
        "resolved_args": list(earlier["resolved_args"]),
        "result": list(earlier["result"] or [])[: len(call.outputs)], "error": None,
        "seconds": 0.0, "duplicate": True,
    }
    return record, values


def _result_text(record: ActionRecord | None) -> str:
    if record is None:
        return "Error: no action was executed"
    if record.get("duplicate"):
        return safeguards.duplicate_feedback(record)
    if record["error"]:
        return f"Error: {record['error']}"
    return ", ".join(record["result"] or [])
