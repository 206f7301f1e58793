"""The LUMOS maths actions, computed exactly with sympy in a time-limited worker process.

``math_actions()`` returns Calculator, SetEquation, SolveEquation, Count, SolveInequality, Code
and Define, listed exactly as the LUMOS maths checkpoints were trained. Each call runs in a warm
child process (:mod:`lumos_graph.tools._worker`) that is killed when it exceeds ``timeout``.

Input is read forgivingly, because small models write maths loosely: ``^`` is a power, ``×``/``÷``
work, ``20%`` is ``20/100`` (``%`` between two numbers is modulo), ``$5`` and ``5 dollars`` are 5,
``1,000`` is a thousand where a comma cannot separate arguments, ``2x`` is ``2*x``, ``3 x 4`` is
12, and decimals are exact (``0.1 + 0.2`` is ``3/10``). Text is parsed with sympy's
``parse_expr`` machinery, but the generated code is checked node by node before it is evaluated
(numbers, known functions, symbols and operators only), so input can never reach Python.

Results are :class:`~lumos_graph.agent.actions.Value` s whose ``text`` is exact and parseable again:
``10``, ``0.75`` (terminating decimals), ``1/3`` (shown as ``1/3 ≈ 0.333333``), ``sqrt(2)``
(shown as ``sqrt(2) ≈ 1.414214``), ``True``, or an expression in variables (``2*p/5``). In
Calculator, single letters are variables (LUMOS data computes ``Calculator(40% * p)`` after
``Define(p)``), ``e`` is Euler's number, and ``(n - 2)(64)`` or ``(x - 7*y)(-9/8, -3/5)``
evaluates the expression at those values (sorted variable order, or ``(x=1, y=2)``); any other
unknown name is an error. In the equation actions every name is a variable.

**SetEquation text format:** equations as ``lhs = rhs`` in sympy's spelling (``2*x + 3 = 10``),
inequalities as ``3*x > 6``, several joined by ``", "``. SolveEquation and SolveInequality read
it back (whole, parenthesized, or split at its commas).

This module holds the public factory; the worker process imports it for ``worker_ops``. The
computations live in private modules: ``_maths_ops`` (one function per action), ``_maths_text``
(reading text, the SetEquation format), ``_maths_formula`` (evaluating a formula behind its AST
guard), ``_maths_solve`` (equations and inequalities) and ``_maths_results`` (result text).
"""

from __future__ import annotations

from lumos_graph.agent.actions import Action, ActionSet
from lumos_graph.errors import ConfigError
from lumos_graph.tools._worker import RemoteOp, Worker
from lumos_graph.tools.sandbox import code_action

__all__ = ["math_actions"]

_MEMORY_MB = 2048


def math_actions(*, timeout: float = 5.0) -> ActionSet:
    """The seven LUMOS maths actions, in the order of the trained action list.

    Args:
        timeout: seconds one action may compute before its worker process is killed and the
            action fails with a :class:`~lumos_graph.errors.ToolError` the model can read.
    """
    if not timeout > 0:
        raise ConfigError(f"timeout must be positive, got {timeout!r}")
    worker = Worker("lumos_graph.tools.maths._ops", memory_mb=_MEMORY_MB)

    def remote(name: str, description: str, param: str, *, variadic: bool = False) -> Action:
        return Action(
            name=name,
            description=description,
            params=(param,),
            executor=RemoteOp(worker, name, timeout=timeout),
            variadic=variadic,
            expression_args=True,
        )

    return ActionSet(
        [
            remote("Calculator", "Calculate the input formula", "formula"),
            remote("SetEquation", "Set up an equation to be solved", "equation"),
            remote("SolveEquation", "Solve the previous set equation", "equation", variadic=True),
            remote("Count", "Count the number of elements in the given list", "list"),
            remote("SolveInequality", "Solve the previous set inequality", "inequality"),
            code_action(timeout=timeout),
            remote("Define", "Define a variable or a number for latter usage", "variable/number"),
        ]
    )
