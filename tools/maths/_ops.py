"""The maths operations served by the worker process, one function per LUMOS action.

Each takes the action's arguments as strings and returns ``(text, display)`` pairs, or raises
:class:`~lumos_graph.errors.ToolError` with a message for the model. :mod:`lumos_graph.tools.maths.actions`
documents what they accept and return.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import sympy as sp

from lumos_graph.errors import ToolError
from lumos_graph.tools._worker import Pair
from lumos_graph.tools.maths._formula import compare, parse
from lumos_graph.tools.maths._results import format_value
from lumos_graph.tools.maths._solve import pick_solution, solve_inequalities, split_glued_names
from lumos_graph.tools.maths._text import (
    Equation,
    applied,
    clean,
    closes,
    free_symbols,
    relation_text,
    relations,
    split_eq,
    split_top,
)

__all__ = [
    "calculator",
    "count",
    "define",
    "set_equation",
    "solve_equation",
    "solve_inequality",
    "worker_ops",
]


def worker_ops() -> dict[str, Callable[..., list[Pair]]]:
    """Operations served by the maths worker process (also callable in-process, for tests)."""
    return {
        "Calculator": calculator,
        "SetEquation": set_equation,
        "SolveEquation": solve_equation,
        "Count": count,
        "SolveInequality": solve_inequality,
        "Define": define,
    }


def calculator(*args: str) -> list[Pair]:
    """A number, a truth value, or an expanded expression in single-letter variables."""
    text = clean(", ".join(args), calculator=True)
    if not text:
        raise ToolError("Calculator needs a formula")
    if len(split_top(text, ",;")) > 1:
        raise ToolError("Calculator takes one formula, not a comma-separated list")
    expr = applied(text)
    if expr is None:
        sides = split_eq(text)
        if len(sides) == 2 and re.fullmatch(r"\s*[A-Za-z_]\w*\s*", sides[0]):
            sides = sides[1:]  # "total = 3 * 4" computes the right side
        if len(sides) > 1:
            parsed = [parse(s, True) for s in sides]
            return [format_value(compare(("Eq",) * (len(sides) - 1), *parsed))]
        expr = parse(sides[0], True)
    if isinstance(expr, sp.Expr) and expr.free_symbols:
        expr = sp.expand(expr)
    return [format_value(expr)]


def set_equation(*args: str) -> list[Pair]:
    """The equations (or inequalities) in canonical text; see the module docstring."""
    rels = list(relations(args))
    if not rels:
        raise ToolError("SetEquation needs an equation such as x + 3 = 10")
    if not any(free_symbols(r) for r in rels):
        # Like the reference's WolframAlpha, a bare arithmetic expression is computed: small
        # models often "set up" 15 + 4. A written relation without unknowns stays an error.
        if all(isinstance(r, Equation) and not r.written for r in rels):
            return [format_value(r.lhs) for r in rels]
        raise ToolError("the equation has no unknown; use Calculator to compute numbers")
    text = ", ".join(relation_text(r) for r in rels)
    return [(text, text)]


def solve_equation(*args: str) -> list[Pair]:
    """One value per unknown, in sorted name order (or the order of unknowns listed)."""
    rels = list(relations(args))
    if not rels:
        raise ToolError("SolveEquation needs an equation such as x + 3 = 10")
    if all(isinstance(r, sp.Basic) for r in rels):
        return [solve_inequalities(rels)]
    if any(isinstance(r, sp.Basic) for r in rels):
        raise ToolError("cannot mix equations and inequalities; use SolveInequality")
    eqs = [r for r in rels if isinstance(r, Equation)]
    # "SolveEquation(x + y = 10, x - y = 2, x)": a bare unknown names what to solve for
    wanted = [
        e.lhs
        for e in eqs
        if not e.written
        and isinstance(e.lhs, sp.Symbol)
        and any(e.lhs in free_symbols(o) for o in eqs if o is not e)
    ]
    eqs = [e for e in eqs if e.written or e.lhs not in wanted]
    exprs = split_glued_names([e.lhs - e.rhs for e in eqs])
    unknowns = sorted(set().union(*(x.free_symbols for x in exprs)), key=str)
    if not unknowns:
        if not any(e.written for e in eqs):  # "SolveEquation(R2 + R4)": just a value
            return [format_value(x) for x in exprs]
        truth = "always holds" if all(sp.simplify(x) == 0 for x in exprs) else "is never true"
        raise ToolError(f"there is no unknown to solve for (the equation {truth})")
    if not wanted:
        return pick_solution(exprs, unknowns, unknowns)
    try:
        return pick_solution(exprs, unknowns, wanted)
    except ToolError:  # too few equations for all unknowns: the wanted ones may do
        return pick_solution(exprs, wanted, wanted, parametric=True)


def count(*args: str) -> list[Pair]:
    """Number of items of ``[a, b]``, ``a, b and c``, lines, or ``1, 2, ..., 10``."""
    text = ", ".join(args).strip()
    if not text:
        raise ToolError("Count needs a list such as [1, 2, 3]")
    while len(text) >= 2 and text[0] + text[-1] in ("()", "[]", "{}") and closes(text, 0):
        text = text[1:-1].strip()
    items = [i.strip() for i in split_top(text, ",;\n", quotes=True) if i.strip()]
    if len(items) == 1 and re.search(r"\band\b", items[0]):
        items = [i.strip() for i in re.split(r"\band\b", items[0]) if i.strip()]
    elif len(items) > 1:
        items[0] = re.sub(r"^and\s+", "", items[0])
        items[-1:] = [i for i in re.split(r"^and\s+|\s+and\s+", items[-1]) if i]
    if any(i in ("...", "..", "…") for i in items):
        return [format_value(_progression_length(items))]
    return [(str(len(items)), str(len(items)))]


def solve_inequality(*args: str) -> list[Pair]:
    """The solution set of one unknown, as ``x > 3``, ``-2 < x < 2``, ``x < -2 or x > 2``."""
    rels = list(relations(args))
    if not rels:
        raise ToolError("SolveInequality needs an inequality such as 2*x > 6")
    return [solve_inequalities(rels)]


def define(*args: str) -> list[Pair]:
    """A number, a variable name, or an expression in variables (``Define(n - 2)``)."""
    text = clean(", ".join(args), calculator=False)
    sides = split_eq(text)
    if len(sides) > 2 or not text:
        raise ToolError("Define needs a variable name, a number, or name = value")
    phrase = r"[A-Za-z][A-Za-z ]*[A-Za-z]"
    if len(sides) == 2:
        name, text = sides[0].strip(), sides[1].strip()
        if re.fullmatch(phrase, text) and " " in text and re.fullmatch(r"[A-Za-z]\w*", name):
            return [(name, name)]  # "x = number of apples" defines x
    if re.fullmatch(phrase, text) and " " in text:
        name = "_".join(text.split())  # "number of apples" becomes one variable
        return [(name, name)]
    return [format_value(parse(text, False))]


def _progression_length(items: list[str]) -> Any:
    """``1, 3, ..., 99``: the length of the arithmetic progression."""
    ellipses = ("...", "..", "…")
    dots = next(i for i, item in enumerate(items) if item in ellipses)
    numbers = [parse(clean(i, calculator=True), True) for i in items if i not in ellipses]
    if dots in (0, len(items) - 1) or any(getattr(n, "free_symbols", True) for n in numbers):
        raise ToolError("Count with '...' needs numbers before and after it, e.g. 1, 2, ..., 10")
    first, last = numbers[0], numbers[-1]
    step = numbers[1] - first if dots >= 2 else sp.Integer(1 if last >= first else -1)
    length = (last - first) / step + 1 if step != 0 else sp.nan
    if not (length.is_Integer and length > 0):
        raise ToolError("the items around '...' do not form an arithmetic progression")
    return length
