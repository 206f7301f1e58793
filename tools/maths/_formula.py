"""Evaluating one maths formula with sympy, checked node by node before it runs.

:func:`parse` reads a formula with sympy's ``parse_expr`` machinery (its tokenizer transforms:
implicit multiplication, ``^`` as power, exact decimals), then :class:`_Guard` rewrites and
checks the generated Python tree: numbers, known functions, symbols and operators only, so input
can never reach Python. Powers, factorials and numbers are refused before they are computed when
they would run past :data:`_MAX_DIGITS` digits.
"""

from __future__ import annotations

import ast
import math
import re
from decimal import Decimal
from typing import Any

import sympy as sp
from sympy.parsing.sympy_parser import (
    auto_number,
    auto_symbol,
    convert_xor,
    factorial_notation,
    implicit_multiplication,
    repeated_decimals,
    stringify_expr,
)

from lumos_graph.errors import ToolError

__all__ = ["FUNCTIONS", "MAX_CHARS", "compare", "is_logic", "parse"]

MAX_CHARS = 2000
_MAX_DIGITS = 20_000  # refuse powers and factorials beyond this many digits, before computing
_TRANSFORMS = (
    auto_symbol,
    repeated_decimals,
    auto_number,
    factorial_notation,
    implicit_multiplication,
    convert_xor,
)


def _real_root(x: Any, n: Any) -> Any:
    return sp.real_root(x, n)


def _round(x: Any, digits: Any = 0) -> Any:
    x, digits = sp.sympify(x, strict=True), sp.sympify(digits, strict=True)
    if not (x.is_number and digits.is_Integer):
        raise ToolError("round needs a number and a whole number of digits")
    scale = sp.Integer(10) ** digits
    return sp.sign(x) * sp.floor(abs(x) * scale + sp.Rational(1, 2)) / scale  # half away from 0


def _pow(base: Any, exp: Any) -> Any:
    base, exp = sp.sympify(base, strict=True), sp.sympify(exp, strict=True)
    if base.is_number and exp.is_number and exp.is_real and base != 0:
        # digits of the result, estimated before computing it: 9**9**9 fails fast
        try:
            digits = float(abs(exp)) * abs(float(sp.log(sp.Abs(base), 10).evalf(15)))
        except (OverflowError, TypeError):
            digits = math.inf
        if digits > _MAX_DIGITS:
            raise ToolError(f"the number is too large (about {digits:.3g} digits)")
    return base**exp


def _factorial(n: Any) -> Any:
    if getattr(n, "is_number", False) and n > 5000:
        raise ToolError("the factorial is too large")
    return sp.factorial(n)


def _exact(text: Any) -> sp.Rational:
    if abs(Decimal(str(text)).adjusted()) > _MAX_DIGITS:
        raise ToolError(f"the number {text} is too large")
    return sp.Rational(str(text))  # "0.1" is exactly 1/10, not the nearest float


FUNCTIONS: dict[str, Any] = {
    "sqrt": sp.sqrt, "cbrt": lambda x: _real_root(x, 3), "root": _real_root, "abs": sp.Abs,
    "Abs": sp.Abs, "round": _round, "floor": sp.floor, "ceil": sp.ceiling, "ceiling": sp.ceiling,
    "min": sp.Min, "Min": sp.Min, "max": sp.Max, "Max": sp.Max, "log": sp.log, "ln": sp.log,
    "log10": lambda x: sp.log(x, 10), "log2": lambda x: sp.log(x, 2), "exp": sp.exp,
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "asin": sp.asin, "acos": sp.acos,
    "atan": sp.atan, "factorial": _factorial, "gcd": sp.gcd, "lcm": sp.lcm, "mod": sp.Mod,
    "Mod": sp.Mod, "int": lambda x: sp.sign(x) * sp.floor(sp.Abs(x)), "float": lambda x: x,
    "sum": lambda *a: sp.Add(*a), "mean": lambda *a: sp.Add(*a) / len(a),
    "average": lambda *a: sp.Add(*a) / len(a), "comb": sp.binomial, "binomial": sp.binomial,
    "perm": lambda n, k: _factorial(n) / _factorial(n - k), "sign": sp.sign, "pow": _pow,
    "Eq": lambda a, b: compare(("Eq",), a, b),
}  # fmt: skip
_CONSTANTS: dict[str, Any] = {"pi": sp.pi, "E": sp.E, "True": sp.true, "False": sp.false}
_CMP = {ast.Lt: "Lt", ast.LtE: "Le", ast.Gt: "Gt", ast.GtE: "Ge", ast.Eq: "Eq", ast.NotEq: "Ne"}
_SYNTAX_NAMES = {
    "Tuple": "an unexpected comma", "Attribute": "attribute access (.)", "List": "brackets []",
    "Subscript": "brackets []", "Lambda": "lambda", "IfExp": "if/else", "Dict": "braces {}",
    "Set": "braces {}", "Starred": "*",
}  # fmt: skip


def parse(text: str, letters_only: bool) -> Any:
    """Evaluate one formula; ``letters_only``: Calculator rules for names (see module doc)."""
    text = text.strip()
    if not text:
        raise ToolError("an empty formula")
    if len(text) > MAX_CHARS:
        raise ToolError(f"the formula is too long (over {MAX_CHARS} characters)")
    private = re.search(r"(?<![\w.])_\w*", text)
    if private:  # no name of ours or Python's starts with "_": say so before sympy reads it
        raise ToolError(f"unknown name {private.group()}")
    names = {**FUNCTIONS, **_CONSTANTS, **({"e": sp.E} if letters_only else {})}
    try:
        # sympy's transforms must see its number and symbol constructors as functions
        code = stringify_expr(text, {}, {**names, **_CONSTRUCTORS}, _TRANSFORMS)
        tree = ast.parse(code, mode="eval")
    except Exception:  # noqa: BLE001 - tokenizer and parser errors of every kind
        raise ToolError(f"cannot read the formula {text!r}") from None
    tree = ast.fix_missing_locations(_Guard(names, letters_only).visit(tree))
    scope = {"__builtins__": {}, **names, **_INTERNALS}
    try:
        return eval(compile(tree, "<formula>", "eval"), scope)  # checked by _Guard
    except (ToolError, MemoryError, RecursionError):
        raise
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except Exception as exc:  # noqa: BLE001 - sympy raises many types; the model reads them
        raise ToolError(f"cannot compute {text!r}: {type(exc).__name__}: {exc}") from None


class _Guard(ast.NodeTransformer):
    """Allow only numbers, symbols, known functions and operators in generated code."""

    def __init__(self, names: dict[str, Any], letters_only: bool) -> None:
        self.names = names
        self.letters_only = letters_only

    def generic_visit(self, node: ast.AST) -> ast.AST:
        what = _SYNTAX_NAMES.get(type(node).__name__, type(node).__name__)
        raise ToolError(f"the formula uses {what}, which is not supported")

    def visit_Expression(self, node: ast.Expression) -> ast.AST:
        node.body = self.visit(node.body)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.op, ast.Pow):
            return _call("_pow", left, right)
        if isinstance(node.op, ast.FloorDiv):
            return _call("_floordiv", left, right)
        if not isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div | ast.Mod):
            raise ToolError(f"the operator {type(node.op).__name__} is not supported")
        node.left, node.right = left, right
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return _call("_not", operand)
        if not isinstance(node.op, ast.USub | ast.UAdd):
            raise ToolError("the operator ~ is not supported")
        node.operand = operand
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        name = "_and" if isinstance(node.op, ast.And) else "_or"
        return _call(name, *(self.visit(v) for v in node.values))

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        ops = tuple(_CMP[type(op)] for op in node.ops if type(op) in _CMP)
        if len(ops) != len(node.ops):
            raise ToolError("only <, <=, >, >=, = and != comparisons are supported")
        operands = [self.visit(node.left), *(self.visit(c) for c in node.comparators)]
        return _call("_cmp", ast.Constant(ops), *operands)  # type: ignore[arg-type]

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if not isinstance(node.func, ast.Name):
            raise ToolError("the formula calls something that is not a function")
        name = node.func.id
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise ToolError(f"{name}() takes plain arguments")
        consts = [a.value for a in node.args if isinstance(a, ast.Constant)]
        if name in ("Integer", "Float", "Symbol") and len(consts) == len(node.args) == 1:
            if name == "Symbol":
                self._check_symbol(str(consts[0]))
            return node  # numbers and symbols made by sympy's tokenizer transforms
        if name != "Rational" and name not in self.names:
            raise ToolError(f"unknown function {name}")
        node.args = [self.visit(a) for a in node.args]
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in _CONSTANTS or (node.id in self.names and node.id not in FUNCTIONS):
            return node
        if node.id in FUNCTIONS:
            raise ToolError(f"{node.id} needs parentheses, e.g. {node.id}(2)")
        if node.id == "Function":  # sympy's spelling of a call of an unknown name
            raise ToolError("the formula calls an unknown function")
        raise ToolError(f"unknown name {node.id}")

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, bool):  # sympy's truth values, which And/Or accept
            return ast.Name(id="_true" if node.value else "_false", ctx=ast.Load())
        if isinstance(node.value, int | float):
            return node
        raise ToolError(f"the formula contains {node.value!r}, which is not a number")

    def _check_symbol(self, name: str) -> None:
        if name.startswith("_"):
            raise ToolError(f"unknown name {name}")
        if self.letters_only and not re.fullmatch(r"(?!R\d)[^\W\d_](?:_?\d+)?", name):
            raise ToolError(
                f"unknown name {name} (Calculator knows numbers, single-letter variables, "
                "pi, e and functions such as sqrt, round, min, max, log)"
            )


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=list(args), keywords=[])


def _relation(op: str, a: Any, b: Any) -> Any:
    a, b = sp.sympify(a, strict=True), sp.sympify(b, strict=True)
    if is_logic(a) or is_logic(b):
        if op not in ("Eq", "Ne"):
            raise ToolError("cannot order truth values")
        return sp.true if (a == b) == (op == "Eq") else sp.false
    diff = sp.simplify(a - b) if a.free_symbols or b.free_symbols else a - b
    if diff.free_symbols:
        return getattr(sp, op)(a, b)
    if diff.has(sp.zoo, sp.nan):
        raise ToolError("cannot compare an undefined value (division by zero?)")
    sign = diff.is_positive, diff.is_zero, diff.is_negative
    if None in sign:
        n = sp.N(diff, 50)
        sign = n > 0, n == 0, n < 0
    pos, zero, neg = (bool(s) for s in sign)
    truths = {"Lt": neg, "Le": neg or zero, "Gt": pos, "Ge": pos or zero, "Eq": zero}
    truth = truths.get(op, not zero)  # Ne
    return sp.true if truth else sp.false


def is_logic(value: Any) -> bool:
    """A truth value or condition (sympy symbols are Boolean too, but also Expr)."""
    return isinstance(value, bool | sp.logic.boolalg.Boolean) and not isinstance(value, sp.Expr)


def compare(ops: tuple[str, ...], *values: Any) -> Any:
    parts = [_relation(op, a, b) for op, a, b in zip(ops, values, values[1:], strict=False)]
    return sp.And(*parts)


_CONSTRUCTORS: dict[str, Any] = {
    "Integer": sp.Integer, "Float": _exact, "Rational": sp.Rational, "Symbol": sp.Symbol,
}  # fmt: skip
_INTERNALS: dict[str, Any] = {
    **_CONSTRUCTORS, "_pow": _pow, "_floordiv": lambda a, b: sp.floor(a / b), "_cmp": compare,
    "_true": sp.true, "_false": sp.false, "_and": lambda *v: sp.And(*v),
    "_or": lambda *v: sp.Or(*v), "_not": lambda v: sp.Not(v),
}  # fmt: skip
