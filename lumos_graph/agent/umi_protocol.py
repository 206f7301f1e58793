"""The alpha-UMi protocol: every model-facing text of the planner, caller and summarizer, their
parsers and their GBNF grammars, built from one set of delimiters.

Formats of alpha-UMi (arXiv 2401.07324), as its reference code writes them:

* tool docs, one JSON object per line:
  ``{"Name": ..., "function": ..., "input": {arg: "type, description"}}``;
* the planner writes a rationale, then one decision: ``Next: caller.``, ``Next: conclusion.``
  or ``Next: give up.`` (no decision found: conclusion, as the reference port falls back);
* the caller writes ``Action: NAME`` and ``Action Input: {JSON arguments}``;
* the shared history: ``user: Q</s>assistant: {thought}\\n Next: caller.</s>caller: Action:
  f\\nAction Input: {...}</s>observation: {text}``, observations cut to 1,024 characters;
* the summarizer ("conclusion") gives the final answer from the history alone.

Each role sees one system turn (its job, the tool docs and, for the maths, QA and SQL tools,
one worked history in the same format) and one user turn holding the history; the
release's single prompt string maps onto a chat model that way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from string import Template
from typing import Any, Literal

from lumos_graph.agent.actions import Action, ActionSet
from lumos_graph.agent.protocol import ParseError, parse_short_answer, split_args
from lumos_graph.errors import LumosError

__all__ = [
    "DECISIONS",
    "OBSERVATION_LIMIT",
    "CallerOutput",
    "Decision",
    "PlannerOutput",
    "arguments",
    "caller_grammar",
    "caller_prompt",
    "observation",
    "parse_caller",
    "parse_planner",
    "parse_summary",
    "planner_grammar",
    "planner_prompt",
    "render_call",
    "render_decision",
    "render_history",
    "summarizer_prompt",
    "tool_docs",
]

Decision = Literal["caller", "conclusion", "give up"]
DECISIONS: tuple[Decision, ...] = ("caller", "conclusion", "give up")
Turn = dict[str, str]

# ---- delimiters ------------------------------------------------------------------------------
EOS = "</s>"
NEXT = "Next: "
ACTION = "Action: "
ACTION_INPUT = "Action Input: "
OBSERVATION_LIMIT = 1024  # characters of an observation kept in the history (reference: 1024)
ROLES = ("user", "assistant", "caller", "observation", "conclusion")

_NEXT_RE = re.compile(r"Next:\s*(caller|conclusion|give\s*up)\s*\.?", re.IGNORECASE)
_ACTION_RE = re.compile(r"Action\s*:\s*(?P<name>[^\n]*)", re.IGNORECASE)
_INPUT_RE = re.compile(r"Action\s*Input\s*:\s*(?P<input>.*)", re.IGNORECASE | re.DOTALL)


def _fill(template: Template, **values: str) -> str:
    try:
        return template.substitute(**values)
    except KeyError as exc:  # a missing variable is a bug in our code: fail loudly
        raise LumosError(f"prompt template needs {exc.args[0]!r}") from None


# ---- templates -------------------------------------------------------------------------------
TOOLS_HEAD = Template("You have access to the following tools:\n${docs}${notes}")
PLANNER_SYSTEM = Template(
    "You are the planner of a team of three: planner, caller and conclusion. ${tools}\n\n"
    "Read the conversation history. Write one sentence saying what to do next, then on a new "
    "line exactly one of:\nNext: caller.  (the caller will call one tool for that step)\n"
    "Next: conclusion.  (the history already holds the answer; the conclusion will state it)\n"
    "Next: give up.  (the tools cannot solve the task)${example}"
)
CALLER_SYSTEM = Template(
    "You are the caller of a team of three: planner, caller and conclusion. ${tools}\n\n"
    "Read the conversation history and call one tool for the planner's last step, in exactly "
    "this format:\nAction: TOOL NAME\nAction Input: {JSON object of the tool's inputs}"
    "${example}"
)
SUMMARIZER_SYSTEM = Template(
    "You are the conclusion of a team of three: planner, caller and conclusion. Read the "
    "conversation history and give the final answer to the user's question in a few words "
    "on one line (a number alone for a calculation, yes or no for a yes/no question). No "
    "explanation.${example}"
)
HISTORY = Template("The conversation history is:\n${history}\n\n${ask}")
# The last line of each role's user turn: small models follow the instruction they read last.
PLANNER_ASK = "What should be done next? One sentence, then the Next: line."
CALLER_ASK = "Call one tool for the planner's last step."
SUMMARIZER_ASK = ("The final answer to the user's question, in a few words (a number alone "
                  "for a calculation):")
EXAMPLE = Template("\n\nAn example history:\n${history}")
NOTES = Template("\n${notes}")
NO_RESULT = "(no result)"
ERROR_OBSERVATION = Template("Error: ${error}")

# One worked history per tool set, keyed by the action that marks the set (a set with several
# shows the first: the QA tools include a Calculator): user, planner, caller, observation,
# planner turns and the answer.
_EXAMPLES: dict[str, tuple[tuple[tuple[str, str], ...], str]] = {
    "KnowledgeQuery": ((
        ("user", "Is the Eiffel Tower in Italy?"),
        ("assistant", "Look up the Eiffel Tower.\n Next: caller."),
        ("caller", 'Action: KnowledgeQuery\nAction Input: {"query": "Eiffel Tower"}'),
        ("observation", ("Eiffel Tower: The Eiffel Tower is a wrought-iron lattice tower on "
                         "the Champ de Mars in Paris, France.")),
        ("assistant", ("The page says the Eiffel Tower is in Paris, France, not in Italy, which "
                       "answers the question.\n Next: conclusion.")),
    ), "no"),
    "Calculator": ((
        ("user", ("A baker bakes 5 trays of 8 muffins and sells 13 of them. How many "
                  "muffins are left?")),
        ("assistant", "Compute the muffins left: 5 trays of 8 minus the 13 sold.\n Next: caller."),
        ("caller", 'Action: Calculator\nAction Input: {"formula": "5 * 8 - 13"}'),
        ("observation", "27"),
        ("assistant", ("The calculator says 27 muffins are left, which answers the question.\n"
                       " Next: conclusion.")),
    ), "27"),
    "SQLQuery": ((
        ("user", "How many customers live in Canada?"),
        ("assistant", "Count the customers whose country is Canada.\n Next: caller."),
        ("caller", 'Action: SQLQuery\nAction Input: {"query": "SELECT COUNT(*) FROM customers '
                   "WHERE country = 'Canada'\"}"),
        ("observation", "8"),
        ("assistant", ("The query counted 8 customers in Canada, which answers the question.\n"
                       " Next: conclusion.")),
    ), "8"),
}
_EXAMPLE_TURNS = 5  # turns of each worked history


# ---- rendering -------------------------------------------------------------------------------
def tool_docs(actions: ActionSet) -> str:
    """One JSON object per line per action, in alpha-UMi's tool-doc format."""
    lines = []
    for action in actions:
        inputs = {p: "string" for p in action.params}
        if action.variadic:
            inputs[action.params[-1]] = "string, one or more values separated by commas"
        lines.append(json.dumps({"Name": action.name, "function": action.description,
                                 "input": inputs}, ensure_ascii=False))
    return "\n".join(lines)


def render_history(history: Sequence[Turn]) -> str:
    """``role: content`` turns joined by ``</s>``, as alpha-UMi's history string."""
    return EOS.join(f"{t['role']}: {t['content']}" for t in history)


def render_decision(thought: str, decision: Decision) -> str:
    """A planner turn as the history holds it: ``{thought}\\n Next: caller.`` (``Next:
    caller.`` alone without a rationale)"""
    if not thought.strip():
        return f"{NEXT}{decision}."
    return f"{thought.strip()}\n {NEXT}{decision}."


def render_call(name: str, args: dict[str, Any]) -> str:
    """A caller turn: ``Action: NAME\\nAction Input: {json}``."""
    return f"{ACTION}{name}\n{ACTION_INPUT}{json.dumps(args, ensure_ascii=False)}"


def observation(result: str | None, error: str | None) -> str:
    """An observation as the history holds it, cut to :data:`OBSERVATION_LIMIT` characters."""
    text = _fill(ERROR_OBSERVATION, error=error) if error else (result or NO_RESULT)
    return text[:OBSERVATION_LIMIT]


def _tools(actions: ActionSet) -> str:
    notes = _fill(NOTES, notes=actions.notes) if actions.notes else ""
    return _fill(TOOLS_HEAD, docs=tool_docs(actions), notes=notes)


def _example(actions: ActionSet, upto: int, answer: bool = False) -> str:
    marker = next((name for name in _EXAMPLES if name in actions.names), None)
    if marker is None:
        return ""
    history, final = _EXAMPLES[marker]
    turns = [{"role": r, "content": c} for r, c in history[:upto]]
    if answer:
        turns.append({"role": "conclusion", "content": final})
    return _fill(EXAMPLE, history=render_history(turns))


def _conversation(system: str, history: Sequence[Turn], ask: str) -> list[Turn]:
    user = _fill(HISTORY, history=render_history(history), ask=ask)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def planner_prompt(actions: ActionSet, history: Sequence[Turn]) -> list[Turn]:
    """The planner's conversation: its job, the tools, the history."""
    system = _fill(PLANNER_SYSTEM, tools=_tools(actions),
                   example=_example(actions, _EXAMPLE_TURNS))
    return _conversation(system, history, PLANNER_ASK)


def caller_prompt(actions: ActionSet, history: Sequence[Turn]) -> list[Turn]:
    """The caller's conversation: its job, the tools, the history (ending with the plan)."""
    system = _fill(CALLER_SYSTEM, tools=_tools(actions), example=_example(actions, 3))
    return _conversation(system, history, CALLER_ASK)


def summarizer_prompt(actions: ActionSet, history: Sequence[Turn]) -> list[Turn]:
    """The summarizer's conversation: its job and the history alone (no tools)."""
    system = _fill(SUMMARIZER_SYSTEM,
                   example=_example(actions, _EXAMPLE_TURNS, answer=True))
    return _conversation(system, history, SUMMARIZER_ASK)


# ---- parsing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlannerOutput:
    """A parsed planner turn; ``fallback`` when no decision was found (then ``conclusion``)."""

    thought: str
    decision: Decision
    fallback: bool = False


@dataclass(frozen=True)
class CallerOutput:
    """A parsed caller turn: the tool name as written and its JSON arguments (or the raw
    input text when it is not a JSON object: ``args`` is then ``None``)."""

    name: str
    args: dict[str, Any] | None
    raw_input: str


def parse_planner(text: str) -> PlannerOutput:
    """The rationale and decision of a planner output (the last ``Next:`` wins); without one,
    the whole text is the rationale and the decision is ``conclusion``."""
    matches = list(_NEXT_RE.finditer(text))
    if not matches:
        return PlannerOutput(text.strip(), "conclusion", fallback=True)
    last = matches[-1]
    word = " ".join(last.group(1).lower().split())
    decision: Decision = "give up" if word.replace(" ", "") == "giveup" else word  # type: ignore[assignment]
    return PlannerOutput(text[: last.start()].strip(), decision)


def parse_caller(text: str) -> CallerOutput:
    """``Action: NAME`` and ``Action Input: {...}`` of a caller output.

    Raises:
        ParseError: no ``Action:`` line, or no ``Action Input:``.
    """
    action = _ACTION_RE.search(text)
    given = _INPUT_RE.search(text)
    if action is None or not action.group("name").strip():
        raise ParseError("no 'Action: NAME' line", text)
    name = action.group("name").strip()
    if given is None or given.start() < action.start():
        raise ParseError("no 'Action Input: {...}' after the action", text)
    raw = given.group("input").strip()
    return CallerOutput(name, _json_object(raw), raw)


def _json_object(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def arguments(action: Action, call: CallerOutput) -> list[str]:
    """The executor's string arguments of ``call`` for ``action``.

    JSON keys are matched to the parameters by name; a one-parameter action also takes a
    single value under another key. Input that is not JSON (a snapped ``Add(4, 6)``) is split
    at top-level commas into the parameters by position. A variadic
    last parameter is split at top-level commas, as LUMOS grounding does.

    Raises:
        ParseError: a parameter is missing (the message names the expected keys).
    """
    params = action.params
    if call.args is None:  # a call-looking text, ``Add(4, 6)``: the values by position
        high = None if action.variadic else len(params)
        values = split_args(call.raw_input, high) if call.raw_input.strip() else []
        if len(values) < len(params):
            raise ParseError(f"Action Input of {action.name} must be a JSON object with "
                             f"{_keys(action)}", call.raw_input)
        return values
    elif all(p in call.args for p in params):
        values = [_text(call.args[p]) for p in params]
    elif len(params) == 1 and len(call.args) == 1:
        values = [_text(next(iter(call.args.values())))]
    else:
        missing = [p for p in params if p not in call.args]
        raise ParseError(f"Action Input of {action.name} needs {_keys(action)}; missing "
                         f"{', '.join(missing)}", call.raw_input)
    if action.variadic:
        values = [*values[:-1], *split_args(values[-1], None)]
    return values


def _keys(action: Action) -> str:
    return "the keys " + ", ".join(f'"{p}"' for p in action.params)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return json.dumps(value, ensure_ascii=False)


def parse_summary(text: str) -> str | None:
    """The summarizer's final answer (``None`` when it says it has none)."""
    return parse_short_answer(text)


# ---- grammars --------------------------------------------------------------------------------
def _lit(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


@lru_cache(maxsize=8)
def planner_grammar(conclude: bool = True) -> str:
    """A one-sentence rationale, a newline, then one of the three decisions. Without
    ``conclude`` (no tool has answered yet, so the history cannot hold the answer) the decision
    is ``caller`` or ``give up`` and the rationale may be left out; with it, the rationale is
    required.

    After an observation the rationale is where the planner reads the result: left free to
    write ``Next: caller.`` alone, the small model called the same SQL query again after it
    had answered the question. Before any observation it is optional: required there, the
    model wrote "The conversation history is incomplete." or a made-up result, then repeated
    that sentence. It is one sentence, ending at its first full stop (a "." inside a number is
    kept), so the model cannot copy the prompt's list of decisions into it (it did, then called
    the same tool until the cap). It never starts with "Next": a model that writes the
    decision first has made it.
    """
    choices = " | ".join(_lit(d) for d in DECISIONS if conclude or d != "conclusion")
    optional = "" if conclude else "?"
    return (f'root ::= (thought "\\n" " "?){optional} {_lit(NEXT)} ({choices}) "."\n'
            'thought ::= start ([^\\n.] | "." [0-9])* "."\n'
            'start ::= [^\\nN.] | "N" [^\\ne.] | "Ne" [^\\nx.] | "Nex" [^\\nt.]\n')


@lru_cache(maxsize=64)
def caller_grammar(actions: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    """``Action: NAME\\nAction Input: {...}`` with NAME one of ``actions`` (``(name,
    params)`` pairs, e.g. ``tuple((a.name, a.params) for a in action_set)``) and exactly that
    action's keys, in order, each a JSON string or number."""
    calls = []
    for name, params in actions:
        pairs = ' ", " '.join(f"{_lit(json.dumps(p) + ': ')} value" for p in params)
        calls.append(f"{_lit(ACTION + name + chr(10) + ACTION_INPUT + '{')} {pairs} \"}}\"")
    return "\n".join([
        f"root ::= {' | '.join(calls)}",
        'value ::= string | number',
        'string ::= "\\"" char* "\\""',
        'char ::= [^"\\\\\\n] | "\\\\" ["\\\\/nt]',
        'number ::= "-"? [0-9]+ ("." [0-9]+)?',
    ]) + "\n"
