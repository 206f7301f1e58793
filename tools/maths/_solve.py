"""Solving equations and inequalities, and choosing the solution a maths answer means.

Equations prefer the one all-positive real solution, else the first real one, and mention the
others; inequalities are solved over the reals for exactly one unknown and written as
``x > 3``, ``-2 < x < 2`` or ``x < -2 or x > 2``.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from lumos_graph.errors import ToolError
from lumos_graph.tools._worker import Pair
from lumos_graph.tools.maths._results import format_value
from lumos_graph.tools.maths._text import Equation

__all__ = ["pick_solution", "solve_inequalities", "split_glued_names"]


def split_glued_names(exprs: list[Any]) -> list[Any]:
    """``xy`` means ``x*y`` when ``x`` and ``y`` are unknowns of the same system."""
    symbols = set().union(*(x.free_symbols for x in exprs))
    letters = {s.name for s in symbols if len(s.name) == 1}
    glued = {
        s: sp.Mul(*(sp.Symbol(c) for c in s.name))
        for s in symbols
        if 1 < len(s.name) <= 4 and all(c in letters for c in s.name)
    }
    return [x.subs(glued) for x in exprs] if glued else exprs


def pick_solution(
    exprs: list[Any], unknowns: list[Any], outputs: list[Any], *, parametric: bool = False
) -> list[Pair]:
    """Solve for ``unknowns``; values of ``outputs`` from the preferred real solution."""
    try:
        solutions = sp.solve(exprs, unknowns, dict=True)
    except NotImplementedError:  # sympy has no symbolic method for this system: go numeric
        solutions = _numeric_solution(exprs, unknowns)
    names = ", ".join(map(str, unknowns))
    if not solutions:
        raise ToolError(f"the equations have no solution for {names}")
    complete = [
        s
        for s in solutions
        if all(u in s for u in unknowns)
        and (parametric or not any(s[u].free_symbols for u in unknowns))
    ]
    if not complete:
        shown = "; ".join(f"{k} = {sp.sstr(v)}" for k, v in solutions[0].items())
        raise ToolError(f"infinitely many solutions ({shown}); give one more equation")
    real = [s for s in complete if all(_is_real(s[u]) for u in unknowns)]
    if not real:
        shown = "; ".join(", ".join(f"{u} = {sp.sstr(s[u])}" for u in unknowns) for s in complete)
        raise ToolError(f"no real solution (complex solutions: {shown})")
    positive = [s for s in real if all(s[u].is_positive for u in unknowns)]
    best = positive[0] if len(positive) == 1 else real[0]
    others = [
        ", ".join(f"{u} = {format_value(s[u])[0]}" for u in outputs) for s in real if s is not best
    ]
    note = f" (other solution{'s' if len(others) > 1 else ''}: {'; '.join(others)})"
    values = [format_value(best[u]) for u in outputs]
    return [(text, display + note if others else display) for text, display in values]


def _numeric_solution(exprs: list[Any], unknowns: list[Any]) -> list[dict[Any, Any]]:
    if len(exprs) != 1 or len(unknowns) != 1:
        raise ToolError("cannot solve these equations exactly")
    for start in (1, 0.5, 10, -1, 100, -10):
        try:
            return [{unknowns[0]: sp.nsolve(exprs[0], unknowns[0], start)}]
        except (ValueError, ArithmeticError, TypeError):  # mpmath found no root from here
            continue
    raise ToolError("cannot solve this equation, exactly or numerically")


def _is_real(value: Any) -> bool:
    if value.is_real is not None:
        return bool(value.is_real)
    re_part, im_part = sp.N(value, 30).as_real_imag()
    return bool(abs(im_part) <= 1e-20 * max(1, abs(re_part)))


def solve_inequalities(rels: list[Any]) -> Pair:
    conditions = [sp.Eq(r.lhs, r.rhs) if isinstance(r, Equation) else r for r in rels]
    symbols = set().union(*(c.free_symbols for c in conditions))
    if len(symbols) != 1:
        found = ", ".join(sorted(map(str, symbols))) or "none"
        raise ToolError(f"SolveInequality needs exactly one unknown (found: {found})")
    (x,) = symbols
    solution = sp.S.Reals
    for condition in conditions:
        solution = solution.intersect(_solve_condition(condition, x))
    text = _set_text(solution, x)
    return text, text


def _solve_condition(condition: Any, x: Any) -> Any:
    if isinstance(condition, sp.And):
        return sp.Intersection(*(_solve_condition(c, x) for c in condition.args))
    if isinstance(condition, sp.Or):
        return sp.Union(*(_solve_condition(c, x) for c in condition.args))
    return sp.solveset(condition, x, sp.S.Reals)


def _set_text(s: Any, x: Any) -> str:
    if s == sp.S.EmptySet:
        raise ToolError(f"no real {x} satisfies the inequality")
    if s == sp.S.Reals:
        return f"{x} is any real number"
    if isinstance(s, sp.Interval):
        a, b = sp.sstr(s.start), sp.sstr(s.end)
        lo, hi = ("<" if s.left_open else "<="), ("<" if s.right_open else "<=")
        if s.start == -sp.oo:
            return f"{x} {hi} {b}"
        if s.end == sp.oo:
            return f"{x} {'>' if s.left_open else '>='} {a}"
        return f"{a} {lo} {x} {hi} {b}"
    if isinstance(s, sp.FiniteSet):
        return " or ".join(f"{x} = {sp.sstr(v)}" for v in s.args)
    if isinstance(s, sp.Union):
        return " or ".join(_set_text(part, x) for part in s.args)
    if isinstance(s, sp.Complement) and isinstance(s.args[1], sp.FiniteSet):
        excluded = " and ".join(f"{x} != {sp.sstr(v)}" for v in s.args[1].args)
        return excluded if s.args[0] == sp.S.Reals else f"{_set_text(s.args[0], x)} and {excluded}"
    raise ToolError(f"cannot solve this inequality in closed form ({sp.sstr(s)})")
