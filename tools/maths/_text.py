"""Reading the loose maths text small models write, and the SetEquation text format.

:func:`clean` normalizes a formula (``×``, ``20%``, ``$5``, ``1,000``, ``3 x 4``, units); the
``split_*`` helpers cut text at top-level separators; :func:`applied` reads ``(n - 2)(64)`` as
an expression at values; :func:`relations` reads equations and inequalities, and
:func:`relation_text` writes them back in the canonical SetEquation form (``2*x + 3 = 10``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sympy as sp

from lumos_graph.errors import ToolError
from lumos_graph.tools.maths._formula import FUNCTIONS, MAX_CHARS, is_logic, parse

__all__ = [
    "Equation",
    "applied",
    "clean",
    "closes",
    "free_symbols",
    "relation_text",
    "relations",
    "split_eq",
    "split_top",
    "strip_parens",
]

_CHARS = str.maketrans(
    {"×": "*", "·": "*", "∙": "*", "÷": "/", "−": "-", "–": "-", "—": "-", "≤": "<=",
     "≥": ">=", "≠": "!=", "π": "pi", "²": "**2", "³": "**3", "$": "", "€": "", "£": "",
     "¥": "", "₹": "", "`": ""}
)  # fmt: skip
_UNITS = (
    r"dollars?|cents?|usd|euros?|pounds?|kgs?|kilograms?|grams?|km|kilometers?|kilometres?|"
    r"miles?|meters?|metres?|cm|mm|feet|foot|ft|inch(?:es)?|hours?|hrs?|minutes?|mins?|"
    r"seconds?|secs?|days?|weeks?|months?|years?|liters?|litres?|ml|gallons?|lbs?|ounces?|oz"
)
_THOUSANDS = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w.]|,\d)")


def clean(text: str, *, calculator: bool) -> str:
    if len(text) > 2 * MAX_CHARS:
        raise ToolError(f"the input is too long (over {2 * MAX_CHARS} characters)")
    text = text.strip().translate(_CHARS)
    text = re.sub(r"√\s*(\d+(?:\.\d+)?|[A-Za-z]\w*)", r"sqrt(\1)", text).replace("√", "sqrt")
    text = re.sub(r"\s*\bpercent\b", "%", text, flags=re.I)
    text = re.sub(r"%\s*of\b", "% *", text)
    text = re.sub(r"(?<![\w.])(\d+(?:\.\d*)?|\.\d+)\s*%(?!\s*[\d(.])", r"(\1/100)", text)
    text = re.sub(r"\)\s*%(?!\s*[\d(.])", ")/100", text)
    text = re.sub(rf"(?<=\d)\s*(?:{_UNITS})\b(?!\s*\()", "", text, flags=re.I)
    if calculator:  # "5 apples + 3 apples": a word after a number is a unit
        text = re.sub(
            r"(?<=\d)\s*([A-Za-z]{3,})\b(?!\s*\()",
            lambda m: m.group() if m.group(1) in FUNCTIONS else "",
            text,
        )
    text = re.sub(r"(?<=\d)\s*[xX]\s*(?=\d)", "*", text)  # 3 x 4
    return _drop_thousands(text).strip()


def _drop_thousands(text: str) -> str:
    """``1,000`` -> ``1000`` unless the comma sits inside a function call's parentheses."""
    in_call, stack = [], []
    for i, ch in enumerate(text):
        if ch == "(":
            stack.append(bool(re.search(r"[A-Za-z_]\w*\s*$", text[max(0, i - 40) : i])))
        elif ch == ")" and stack:
            stack.pop()
        in_call.append(any(stack))
    return _THOUSANDS.sub(
        lambda m: m.group() if in_call[m.start()] else m.group().replace(",", ""), text
    )


def split_top(text: str, seps: str, *, quotes: bool = False) -> list[str]:
    """Split at separators outside brackets (and quotes)."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif quotes and ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(depth - 1, 0)
        elif ch in seps and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def closes(text: str, start: int) -> bool:
    """Whether the bracket at ``start`` is closed by the last character."""
    depth = 0
    for i in range(start, len(text)):
        depth += (text[i] in "([{") - (text[i] in ")]}")
        if depth == 0:
            return i == len(text) - 1
    return False


def split_eq(text: str) -> list[str]:
    """Split at ``=``/``==`` (not ``<=``, ``>=``, ``!=``)."""
    return re.split(r"(?<![<>!=])==?(?!=)", text)


def strip_parens(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and closes(text, 0):
        text = text[1:-1].strip()
    return text


def applied(text: str) -> Any | None:
    """``(n - 2)(64)``, ``n(64)`` or ``(x - 7*y)(x=1, y=2)``: an expression at values."""
    text = text.strip()
    if text.startswith("("):
        depth, end = 0, -1
        for i, ch in enumerate(text):
            depth += (ch == "(") - (ch == ")")
            if depth == 0:
                end = i
                break
        head, rest = text[1:end], text[end + 1 :].strip()
    else:
        match = re.match(r"([^\W\d]\w*)\s*(?=\()", text)
        if not match or match.group(1) in FUNCTIONS:
            return None
        head, rest = match.group(1), text[match.end() :]
    if not (rest.startswith("(") and closes(rest, 0)) or not head.strip():
        return None
    expr = parse(head, True)
    symbols = sorted(getattr(expr, "free_symbols", ()), key=str)
    args = [a for a in split_top(rest[1:-1], ",") if a.strip()]
    if not symbols or not args:
        return None
    bindings: dict[Any, Any] = {}
    for position, arg in enumerate(args):
        sides = split_eq(arg)
        value = parse(sides[-1], True)
        if getattr(value, "free_symbols", None):
            return None  # (x + 1)(x - 1) is a product
        if len(sides) == 2:
            bindings[sp.Symbol(sides[0].strip())] = value
        elif position < len(symbols):
            bindings[symbols[position]] = value
        else:
            raise ToolError(f"too many values for the variables {', '.join(map(str, symbols))}")
    return expr.subs(bindings)


@dataclass(frozen=True)
class Equation:
    """``lhs = rhs``; ``written`` is False for a bare expression meaning ``= 0``."""

    lhs: Any
    rhs: Any
    written: bool


def free_symbols(rel: Any) -> set[Any]:
    if isinstance(rel, Equation):
        return {*getattr(rel.lhs, "free_symbols", ()), *getattr(rel.rhs, "free_symbols", ())}
    return set(rel.free_symbols)


def relations(texts: Iterable[str]) -> Iterator[Any]:
    """Equations (:class:`Equation`) and inequalities (sympy relationals) in the arguments."""
    for raw in texts:
        text = strip_parens(clean(raw, calculator=False))
        for part in split_top(text, ",;"):
            for piece in re.split(r"\band\b", part):
                if not piece.strip():
                    continue
                sides = [parse(strip_parens(s), False) for s in split_eq(piece)]
                if len(sides) > 1:
                    yield from (Equation(a, b, True) for a, b in itertools.pairwise(sides))
                elif isinstance(sides[0], sp.Equality):
                    yield Equation(sides[0].lhs, sides[0].rhs, True)
                elif isinstance(sides[0], sp.logic.boolalg.BooleanAtom):
                    raise ToolError(f"{piece.strip()!r} has no unknown (it is {sides[0]})")
                elif is_logic(sides[0]):
                    yield from sp.And.make_args(sides[0])
                else:
                    yield Equation(sides[0], sp.Integer(0), False)


def relation_text(rel: Any) -> str:
    if isinstance(rel, Equation):
        return f"{sp.sstr(rel.lhs)} = {sp.sstr(rel.rhs)}"
    if isinstance(rel, sp.Or):
        return " or ".join(relation_text(a) for a in rel.args)
    if isinstance(rel, sp.core.relational.Relational):
        op = "!=" if isinstance(rel, sp.Ne) else rel.rel_op
        return f"{sp.sstr(rel.lhs)} {op} {sp.sstr(rel.rhs)}"
    return str(sp.sstr(rel))
