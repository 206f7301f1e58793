"""GBNF grammars for plan and ground outputs, built from the protocol's delimiters.

A local model decoding under these grammars can only produce text that
:mod:`lumos_graph.agent.protocol` parses. Grammars are plain strings, built once per distinct
argument set (``functools.lru_cache``); the llama backend compiles each text once as well.
"""

from __future__ import annotations

from functools import lru_cache

from lumos_graph.agent import protocol as p

__all__ = ["ground_grammar", "plan_grammar", "program_grammar", "sql_grammar"]

# One subgoal's text: anything on the line but the item separator.
_TEXT = 'text ::= [^;\\n] [^;\\n]*'
# Most result variables one grounding line may define, and most outputs of one action: the
# grammar is finite, so both are bounded (LUMOS lines hold a handful of single-output actions;
# the default cap on a whole run is 24 actions).
MAX_LINE_VARIABLES = 24
MAX_OUTPUTS = 6


def _lit(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


@lru_cache(maxsize=64)
def plan_grammar(mode: str, k: int = 1, max_subgoals: int | None = None) -> str:
    """Grammar of a planner output.

    Args:
        mode: ``"onepass"`` (all subgoals on one line) or ``"iterative"``.
        k: for iterative mode, the number of the subgoal this turn may propose; turn 1 must
            propose ``Subgoal 1``, later turns either stop or propose ``Subgoal k``.
        max_subgoals: for OnePass, the most subgoals a plan may have: the grammar then numbers
            them 1, 2, 3, ... and ends the line after the last one, so a plan that would loop
            past the cap (a small model repeats a subgoal a dozen times) stops at it instead.
    """
    sep = p.ITEM_SEP + "Subgoal "
    if mode == "onepass" and max_subgoals is not None:
        if max_subgoals < 1:
            raise ValueError(f"max_subgoals must be at least 1, not {max_subgoals}")
        rules = [f"root ::= {_lit(p.subgoal_text(1, ''))} text"
                 + (" s2?" if max_subgoals > 1 else "")]
        for n in range(2, max_subgoals + 1):
            tail = f" s{n + 1}?" if n < max_subgoals else ""
            rules.append(f"s{n} ::= {_lit(p.ITEM_SEP + p.subgoal_text(n, ''))} text{tail}")
        return "\n".join([*rules, _TEXT]) + "\n"
    if mode == "onepass":
        root = f'root ::= {_lit(p.subgoal_text(1, ""))} text ({_lit(sep)} [1-9] [0-9]* ": " text)*'
    elif k <= 1:
        root = f"root ::= {_lit(p.subgoal_text(1, ''))} text"
    else:
        head = p.CONTINUE_DECISION + p.subgoal_text(k, "")
        root = f"root ::= {_lit(p.STOP_DECISION)} | {_lit(head)} text"
    return f"{root}\n{_TEXT}\n"


@lru_cache(maxsize=64)
def ground_grammar(
    tools: tuple[str, ...], first_var: int = 1, defined: tuple[str, ...] | None = None
) -> str:
    """Grammar of a grounder output: ``R1 = Tool(args); R2, R3 = Tool(R1, args)``.

    Output variables are numbered on from ``first_var`` (``R{first_var}``, then the next
    number, ...), so numbering continues across iterative turns instead of overwriting ``R1``.
    An argument may name only a result variable that already exists when its action runs:
    one from an earlier turn, or an output of an earlier action on the same line (the LUMOS
    variables ``R1``..``Rk`` of the steps before). ``R9`` before anything defined it cannot be
    written, nor ``R10`` when only ``R1`` exists. A reference is ``R`` and digits on word
    boundaries, as :data:`~lumos_graph.agent.protocol.VARIABLE_RE` reads it, so words such as
    ``Rome``, ``R&B``, ``R2D2`` or ``AR15`` stay free text.

    Args:
        tools: the enabled action names; no other name can be emitted.
        first_var: the number of the line's first output variable.
        defined: the variables defined before this line; by default ``R1``..``R{first_var-1}``
            (the caller may pass fewer, e.g. leaving out the outputs of a failed action).
    """
    # the variables defined before the line, as one rule: R1..R{first_var-1} is written as a
    # number range (a few alternatives per digit), so a huge first_var costs nothing
    if defined is None:
        before = f'"R" ({_up_to(first_var - 1)})' if first_var > 1 else ""
    else:
        before = " | ".join(_lit(name) for name in defined)
    last = first_var - 1 + MAX_LINE_VARIABLES
    alternatives = " | ".join(_lit(name + "(") for name in tools)
    lines = [f"root ::= c{first_var - 1}", f"tool ::= {alternatives}", *_TEXT_CLASSES]
    if before:
        lines.append(f"before ::= {before}")
    for n in range(first_var - 1, last):  # a full line (state ``last``) has to end
        refs = (["before"] if before else []) + [_lit(f"R{k}") for k in range(first_var, n + 1)]
        lines += _state_rules(n, refs, last)
    return "\n".join(lines) + "\n"


# Argument text. A word is a run of [A-Za-z0-9_]; words are kept apart by other characters, so
# a word is always whole: a reference ``R<digits>`` can only be one of the state's references,
# and a digit can never follow it. ``(`` ``)`` ``[`` ``]`` nest; a top-level ``;`` separates
# actions, so only nested text may hold one.
_TEXT_CLASSES = [
    "wc ::= [A-Za-z0-9_]",
    "nw ::= [^A-Za-z0-9_()\\[\\];\\n]",
    "inw ::= [^A-Za-z0-9_()\\[\\]\\n]",
    'free ::= [A-QS-Za-z0-9_] wc* | "R" | "R" [A-Za-z_] wc* | "R" [0-9]+ [A-Za-z_] wc*',
]


def _up_to(n: int) -> str:
    """GBNF alternatives that match exactly the decimal numbers 1..``n`` (``n`` >= 1)."""
    digits = str(n)
    # every shorter number, then those of n's length that are below n, then n itself
    alternatives = [" ".join(["[1-9]"] + ["[0-9]"] * (k - 1)) for k in range(1, len(digits))]
    for i, digit in enumerate(digits):
        low, high = (1 if i == 0 else 0), int(digit) - 1
        if high >= low:
            head = [_lit(digits[:i])] if i else []
            alternatives.append(" ".join([*head, f"[{low}-{high}]",
                                          *["[0-9]"] * (len(digits) - i - 1)]))
    alternatives.append(_lit(digits))
    return " | ".join(alternatives)


def _state_rules(n: int, refs: list[str], last: int) -> list[str]:
    """The rules of state ``n``: the line has defined its variables up to ``R{n}`` and
    ``refs`` (grammar expressions) may be referenced."""
    word = " | ".join(["free", *refs])
    calls = []
    for j in range(1, min(MAX_OUTPUTS, last - n) + 1):
        outputs = _lit(", ".join(f"R{n + k}" for k in range(1, j + 1)) + " = ")
        tail = f" ({_lit(p.ITEM_SEP)} c{n + j})?" if n + j < last else ""
        calls.append(f"{outputs} tool a{n} \")\"{tail}")
    return [
        f"c{n} ::= {' | '.join(calls)}",
        f"w{n} ::= {word}",
        f"t{n} ::= nw+ (w{n} nw+)* w{n}? | w{n} (nw+ w{n})* nw*",
        f"it{n} ::= inw+ (w{n} inw+)* w{n}? | w{n} (inw+ w{n})* inw*",
        f'g{n} ::= "(" i{n} ")" | "[" i{n} "]"',
        f"i{n} ::= it{n}? (g{n} it{n}?)*",
        f"a{n} ::= t{n} (g{n} t{n}?)* | (g{n} t{n}?)+",
    ]


def program_grammar(prefix: str = "") -> str:
    """Grammar of a program grounder's reply: one fenced Python block and nothing else (no
    prose before or after it, which a small model otherwise adds at length). ``prefix``: the
    block's fixed first lines (the import line of the user's functions)."""
    return (f"root ::= {_lit(p.PROGRAM_FENCE + prefix)} line line* \"```\"\n"
            'line ::= [^`\\n]* "\\n"\n')


def sql_grammar() -> str:
    """Grammar of the SQL grounder's reply: one fenced SQL block and nothing else."""
    return (f"root ::= {_lit(p.SQL_FENCE)} line line* \"```\"\n"
            'line ::= [^`\\n]* "\\n"\n')
