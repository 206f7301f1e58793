"""Results as exact, parseable ``(text, display)`` pairs.

``10``, ``0.75`` (terminating decimals), ``1/3`` (shown as ``1/3 ≈ 0.333333``), ``sqrt(2)``
(shown as ``sqrt(2) ≈ 1.414214``), ``True``, a condition, or an expression in variables
(``2*p/5``); infinite, undefined, complex and overlong results are errors for the model.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sympy as sp

from lumos_graph.errors import ToolError
from lumos_graph.tools._worker import Pair
from lumos_graph.tools.maths._formula import MAX_CHARS, is_logic
from lumos_graph.tools.maths._text import relation_text

__all__ = ["format_value"]


def format_value(expr: Any) -> Pair:
    """``(text, display)`` of a result; see the module docstring for the forms."""
    if isinstance(expr, bool) or expr in (sp.true, sp.false):
        truth = "True" if bool(expr) else "False"
        return truth, truth
    if is_logic(expr):
        text = " and ".join(relation_text(r) for r in sp.And.make_args(expr))
        return text, text
    if not isinstance(expr, sp.Expr):
        raise ToolError(f"the result is not a number: {expr}")
    if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise ToolError("the result is infinite or undefined (division by zero?)")
    if expr.free_symbols:
        text = sp.sstr(expr)
        if len(text) > MAX_CHARS:
            raise ToolError(f"the resulting expression is too long ({len(text)} characters)")
        return text, text
    if expr.is_Rational:
        return _rational(expr)
    if expr.is_Float:
        text = _significant(expr, 12)
        return text, text
    re_part, im_part = sp.N(expr, 30).as_real_imag()
    if not (re_part.is_Number and im_part.is_Number):
        raise ToolError(f"the result is not a number: {sp.sstr(expr)}")
    if abs(im_part) > 1e-20 * max(1, abs(re_part)):
        raise ToolError(f"the result is not a real number: {sp.sstr(expr)}")
    text = sp.sstr(expr)
    if len(text) > 300 or expr.has(sp.I):
        text = _significant(re_part, 15)
    return text, f"{text} ≈ {_approx(re_part)}"


def _rational(r: sp.Rational) -> Pair:
    p, q = int(r.p), int(r.q)
    if q == 1:
        if abs(p).bit_length() < 3300:  # about 1000 digits
            return str(p), str(p)
        digits = int(abs(p).bit_length() * math.log10(2)) + 1
        text = _significant(r, 15)
        return text, f"{text} (an integer of about {digits} digits)"
    twos, fives, rest = 0, 0, q
    while rest % 2 == 0:
        rest, twos = rest // 2, twos + 1
    while rest % 5 == 0:
        rest, fives = rest // 5, fives + 1
    places = max(twos, fives)
    if rest == 1 and places <= 12 and abs(p).bit_length() < 200:
        shifted = str(abs(p) * 10**places // q).rjust(places + 1, "0")
        text = f"{'-' if p < 0 else ''}{shifted[:-places]}.{shifted[-places:]}".rstrip("0")
        return text, text
    text = f"{p}/{q}" if p.bit_length() + q.bit_length() < 900 else _significant(r, 15)
    return text, f"{text} ≈ {_approx(r)}"


def _decimal(x: Any) -> Decimal:
    return Decimal(str(sp.Float(x, 30)))


def _approx(x: Any) -> str:
    d = _decimal(x)
    if d == 0:
        return "0"
    if Decimal("1e-4") <= abs(d) < Decimal("1e15"):
        text = format(d.quantize(Decimal("1e-6"), rounding=ROUND_HALF_UP), "f")
        return text.rstrip("0").rstrip(".")
    return format(d, ".6e")


def _significant(x: Any, digits: int) -> str:
    return format(_decimal(x), f".{digits}g")
