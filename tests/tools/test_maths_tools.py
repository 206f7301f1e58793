"""The LUMOS maths actions: listing, golden results, errors, time limits, worker lifecycle."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lumos_graph.agent.actions import ActionSet, Value, as_values
from lumos_graph.errors import ConfigError, ToolError
from lumos_graph.tools.maths.actions import math_actions

LISTING = (
    "The available action list is 'Calculator', 'SetEquation', 'SolveEquation', 'Count', "
    "'SolveInequality', 'Code', and 'Define'.\n"
    "Calculator(formula): Calculate the input formula; SetEquation(equation): Set up an equation "
    "to be solved; SolveEquation(equation): Solve the previous set equation; Count(list): Count "
    "the number of elements in the given list; SolveInequality(inequality): Solve the previous "
    "set inequality; Code(pseudo_code): Generate a Python function that corresponds to the "
    "pseudo code; Define(variable/number): Define a variable or a number for latter usage."
)


def _close(actions: ActionSet) -> None:
    for action in actions:
        action.executor.worker.close()


def _gone(pid: int) -> bool:
    """The process no longer exists (a zombie still has a /proc entry, in state Z)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().split(") ", 1)[1][0]
    except FileNotFoundError:
        return True
    return state in "ZX"  # orphaned zombies wait for init, which may be slow to reap them


def _wait_gone(pids: set[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return all(_gone(p) for p in pids)


@pytest.fixture(scope="module")
def maths() -> Iterator[ActionSet]:
    actions = math_actions(timeout=10)
    yield actions
    _close(actions)


def run(actions: ActionSet, name: str, *args: str) -> list[Value]:
    action = actions.get(name)
    assert action is not None
    return as_values(action.executor(*args))


def test_listing_is_the_trained_text_byte_for_byte(maths: ActionSet) -> None:
    assert maths.listing() == LISTING


def test_action_shapes(maths: ActionSet) -> None:
    assert [a.params for a in maths] == [
        ("formula",), ("equation",), ("equation",), ("list",), ("inequality",),
        ("pseudo_code",), ("variable/number",),
    ]  # fmt: skip
    assert [a.name for a in maths if a.variadic] == ["SolveEquation"]
    assert all(a.expression_args for a in maths)


def test_constructing_the_set_starts_no_process() -> None:
    actions = math_actions()
    assert all(a.executor.worker.pid is None for a in actions)


def test_bad_timeout_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        math_actions(timeout=0)


GOLDEN = [
    # Calculator: exact arithmetic and the normalization rules
    ("Calculator", ["0.1+0.2"], "0.3", "0.3"),
    ("Calculator", ["10.0"], "10", "10"),
    ("Calculator", ["1/3"], "1/3", "1/3 ≈ 0.333333"),
    ("Calculator", ["(1/3) * 3"], "1", "1"),
    ("Calculator", ["4 * 3"], "12", "12"),
    ("Calculator", ["-7/4"], "-1.75", "-1.75"),
    ("Calculator", ["sqrt(2)"], "sqrt(2)", "sqrt(2) ≈ 1.414214"),
    ("Calculator", ["2**0.5"], "sqrt(2)", "sqrt(2) ≈ 1.414214"),
    ("Calculator", ["2^10"], "1024", "1024"),
    ("Calculator", ["3 × 4 ÷ 2"], "6", "6"),
    ("Calculator", ["20% * 50"], "10", "10"),
    ("Calculator", ["15 / 25%"], "60", "60"),
    ("Calculator", ["1 - 25%"], "0.75", "0.75"),
    ("Calculator", ["10 % 3"], "1", "1"),
    ("Calculator", ["1,000 + 2,500"], "3500", "3500"),
    ("Calculator", ["max(1,000, 5)"], "5", "5"),
    ("Calculator", ["$5 + $3.50"], "8.5", "8.5"),
    ("Calculator", ["5 apples + 3 apples"], "8", "8"),
    ("Calculator", ["3 x 100"], "300", "300"),
    ("Calculator", ["(6) > (3)"], "True", "True"),
    ("Calculator", ["7 < 3"], "False", "False"),
    ("Calculator", ["3 + 4 = 7"], "True", "True"),
    ("Calculator", ["total = 3 * 4"], "12", "12"),
    ("Calculator", ["12345678901234567890 * 98765432109876543210"],
     "1219326311370217952237463801111263526900", "1219326311370217952237463801111263526900"),
    ("Calculator", ["round(2.5)"], "3", "3"),
    ("Calculator", ["round(2/3, 2)"], "0.67", "0.67"),
    ("Calculator", ["floor(7/2) + ceil(7/2)"], "7", "7"),
    ("Calculator", ["min(3, 4, 2) + max(1, 2) + abs(-1)"], "5", "5"),
    ("Calculator", ["log(100, 10)"], "2", "2"),
    ("Calculator", ["5!"], "120", "120"),
    ("Calculator", ["pi"], "pi", "pi ≈ 3.141593"),
    ("Calculator", ["exp(0) + cos(0) + sin(0)"], "2", "2"),
    ("Calculator", ["e"], "E", "E ≈ 2.718282"),
    # LUMOS data: symbolic Calculator after Define, and "expression at values"
    ("Calculator", ["40% * p"], "2*p/5", "2*p/5"),
    ("Calculator", ["(n - 2)^2"], "n**2 - 4*n + 4", "n**2 - 4*n + 4"),
    ("Calculator", ["(n - 2)(64)"], "62", "62"),
    ("Calculator", ["(x - 7*y)((-1.125), (-0.6))"], "3.075", "3.075"),
    ("Calculator", ["(x - 7*y)(x=1, y=2)"], "-13", "-13"),
    ("Calculator", ["(x + 1)(x - 1)"], "x**2 - 1", "x**2 - 1"),
    # SetEquation: canonical "lhs = rhs" text
    ("SetEquation", ["x + 3 = 10"], "x + 3 = 10", "x + 3 = 10"),
    ("SetEquation", ["2x = 10"], "2*x = 10", "2*x = 10"),
    ("SetEquation", ["Eq(x + 3, 10)"], "x + 3 = 10", "x + 3 = 10"),
    ("SetEquation", ["x + y = 10, x - y = 2"], "x + y = 10, x - y = 2", "x + y = 10, x - y = 2"),
    ("SetEquation", ["x + y = 10 and x - y = 2"], "x + y = 10, x - y = 2", "x + y = 10, x - y = 2"),
    ("SetEquation", ["3x > 6"], "3*x > 6", "3*x > 6"),
    # SolveEquation
    ("SolveEquation", ["x + 3 = 10"], "7", "7"),
    ("SolveEquation", ["x + 3 = 10, x - 1 = 6"], "7", "7"),
    ("SolveEquation", ["2*p/5 = p/4 + 150"], "1000", "1000"),
    ("SolveEquation", ["x^2 = 4"], "2", "2 (other solution: x = -2)"),
    ("SolveEquation", ["x**2 - 2"], "sqrt(2)",
     "sqrt(2) ≈ 1.414214 (other solution: x = -sqrt(2))"),
    ("SolveEquation", ["x^2 - 5x + 6 = 0"], "2", "2 (other solution: x = 3)"),
    ("SolveEquation", ["(n - 2)**2 + n**2 + (n + 2)**2 = 12296"], "64",
     "64 (other solution: n = -64)"),
    ("SolveEquation", ["60 + 50"], "110", "110"),
    ("SolveEquation", ["x + sin(x) = 2"], "1.10606015771", "1.10606015771"),
    # Count
    ("Count", ["[1, 2, 3]"], "3", "3"),
    ("Count", ["a, b, c"], "3", "3"),
    ("Count", ["2^0, 2^1, 2^2, 2^3"], "4", "4"),
    ("Count", ["['a, b', 'c']"], "2", "2"),
    ("Count", ["apples; pears; plums"], "3", "3"),
    ("Count", ["1\n2\n3\n4"], "4", "4"),
    ("Count", ["apples, pears and plums"], "3", "3"),
    ("Count", ["[]"], "0", "0"),
    ("Count", ["1, 2, ..., 100"], "100", "100"),
    ("Count", ["3, 6, ..., 99"], "33", "33"),
    # SolveInequality
    ("SolveInequality", ["x + 3 > 6"], "x > 3", "x > 3"),
    ("SolveInequality", ["2x >= 3"], "x >= 3/2", "x >= 3/2"),
    ("SolveInequality", ["x^2 < 4"], "-2 < x < 2", "-2 < x < 2"),
    ("SolveInequality", ["-2 < x < 2"], "-2 < x < 2", "-2 < x < 2"),
    ("SolveInequality", ["x^2 > 4"], "x < -2 or x > 2", "x < -2 or x > 2"),
    ("SolveInequality", ["x > 1 and x < 5"], "1 < x < 5", "1 < x < 5"),
    ("SolveInequality", ["x^2 <= 0"], "x = 0", "x = 0"),
    ("SolveInequality", ["x + 3 = 10"], "x = 7", "x = 7"),
    # Define
    ("Define", ["5"], "5", "5"),
    ("Define", ["10.0"], "10", "10"),
    ("Define", ["1/3"], "1/3", "1/3 ≈ 0.333333"),
    ("Define", ["x"], "x", "x"),
    ("Define", ["x = 5"], "5", "5"),
    ("Define", ["n-2"], "n - 2", "n - 2"),
    ("Define", ["x = number of apples"], "x", "x"),
    ("Define", ["number of apples"], "number_of_apples", "number_of_apples"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "args", "text", "display"), GOLDEN)
def test_golden_results(
    maths: ActionSet, name: str, args: list[str], text: str, display: str
) -> None:
    [value] = run(maths, name, *args)
    assert (value.text, value.shown()) == (text, display)


def test_solve_equation_gives_one_value_per_unknown_in_sorted_order(maths: ActionSet) -> None:
    # R3, R4 = SolveEquation(x + y = 10, x - y = 2): the caller splits top-level commas
    assert [v.text for v in run(maths, "SolveEquation", "x + y = 10", "x - y = 2")] == ["6", "4"]
    assert [v.text for v in run(maths, "SolveEquation", "y - x = 2", "x + y = 10")] == ["4", "6"]


def test_solve_equation_reads_the_set_equation_text_back(maths: ActionSet) -> None:
    [system] = run(maths, "SetEquation", "x + y = 10, x - y = 2")
    for form in (system.text, f"({system.text})"):
        assert [v.text for v in run(maths, "SolveEquation", form)] == ["6", "4"]


def test_solve_equation_lumos_example_with_glued_product(maths: ActionSet) -> None:
    # R5, R6 = SolveEquation(R2=xy, R3=x/y) with R2 = x - 3*y, R3 = x - 5*y
    values = run(maths, "SolveEquation", "(x - 3*y)=xy", "(x - 5*y)=x/y")
    assert [v.text for v in values] == ["-1.125", "-0.6"]


def test_solve_equation_for_a_named_unknown(maths: ActionSet) -> None:
    assert [v.text for v in run(maths, "SolveEquation", "x + y = 10", "x - y = 2", "y")] == ["4"]


ERRORS = [
    ("Calculator", "apples + 1", "unknown name apples"),
    ("Calculator", "R9 + 1", "unknown name R9"),
    ("Calculator", "1/0", "division by zero"),
    ("Calculator", "sqrt(-4)", "not a real number"),
    ("Calculator", "3, 4", "one formula"),
    ("Calculator", "", "needs a formula"),
    ("Calculator", "9**9**9**9", "too large"),
    ("Calculator", "2 +", "cannot read"),
    ("Calculator", "sqrt", "needs parentheses"),
    ("Calculator", "foo(3)", "unknown name foo"),
    ("Calculator", "().__class__", "attribute access"),
    ("Calculator", "(1).__class__.__bases__", "attribute access"),
    ("Calculator", "__import__('os').system('true')", "unknown name __import__"),
    ("Calculator", "lambda: 1", "lambda"),
    ("Calculator", "[1, 2][0]", "brackets"),
    ("Calculator", "'a' + 'b'", "not a number"),
    ("SetEquation", "3 = 3", "no unknown"),
    ("SetEquation", "", "needs an equation"),
    ("SolveEquation", "x + y = 10", "infinitely many solutions"),
    ("SolveEquation", "x^2 = -4", "no real solution"),
    ("SolveEquation", "x = x + 1", "no unknown to solve for"),
    ("SolveEquation", "x + 1 = 2, x > 3", "cannot mix"),
    ("SolveInequality", "x^2 < 0", "no real x"),
    ("SolveInequality", "x + y > 0", "exactly one unknown"),
    ("Count", "", "needs a list"),
    ("Count", "1, 2, ..., 2.5", "arithmetic progression"),
    ("Define", "", "Define needs"),
    ("Define", "a = b = c", "Define needs"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "arg", "message"), ERRORS)
def test_errors_are_tool_errors_with_readable_messages(
    maths: ActionSet, name: str, arg: str, message: str
) -> None:
    with pytest.raises(ToolError, match=message):
        run(maths, name, arg)


def test_a_warm_call_costs_milliseconds(maths: ActionSet) -> None:
    run(maths, "Count", "a")  # warm up
    start = time.perf_counter()
    for _ in range(20):
        run(maths, "Count", "a, b")
    assert (time.perf_counter() - start) / 20 < 0.05


def test_timeout_kills_and_reaps_the_worker_then_recovers() -> None:
    actions = math_actions(timeout=1)
    try:
        assert [v.text for v in run(actions, "Calculator", "1 + 1")] == ["2"]
        worker = actions[0].executor.worker
        pid = worker.pid
        assert pid is not None
        start = time.monotonic()
        with pytest.raises(ToolError, match=r"^Calculator timed out after 1 s$"):
            run(actions, "Calculator", "(x + y + z + w)**90")  # expanding takes minutes
        assert time.monotonic() - start < 3
        assert worker.pid is None and _gone(pid)
        with pytest.raises(ToolError, match=r"^SolveEquation timed out after 1 s$"):
            run(actions, "SolveEquation", "(x + y + z + w)**90 = 1")
        assert [v.text for v in run(actions, "Calculator", "2 + 2")] == ["4"]
    finally:
        _close(actions)


def test_worker_is_killed_when_the_action_set_is_collected() -> None:
    actions = math_actions()
    run(actions, "Count", "a")
    pid = actions[0].executor.worker.pid
    assert pid is not None and not _gone(pid)
    del actions
    gc.collect()
    assert _gone(pid)


def test_no_worker_outlives_the_interpreter() -> None:
    script = textwrap.dedent(
        """
        from lumos_graph.tools.maths.actions import math_actions
        actions = math_actions()
        actions.get("Calculator").executor("1 + 1")
        actions.get("Code").executor("1 + 1")
        print(*(a.executor.worker.pid for a in actions if a.executor.worker.pid))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    pids = {int(p) for p in out.stdout.split()}
    assert len(pids) == 2  # one maths worker, one sandbox worker
    assert _wait_gone(pids, 5)


def test_busy_worker_exits_when_its_parent_is_killed() -> None:
    script = textwrap.dedent(
        """
        import os, signal, threading, time
        from lumos_graph.tools.sandbox import code_action
        action = code_action(timeout=60)
        action.executor("1")
        print(action.executor.worker.pid, flush=True)
        threading.Thread(target=action.executor, args=("while True: pass",), daemon=True).start()
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)  # no finalizers, no atexit
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert _wait_gone({int(out.stdout)}, 5)


# Text biased towards maths fragments, so near-misses are generated often.
_fragments = st.sampled_from(
    ["x", "y", "=", "+", "-", "*", "/", "^", "**", "(", ")", ",", "%", "$", "1,000", "0.5", "2",
     "sqrt(", "R1", "<", ">=", " and ", "...", "[", "]", "'", "__", ".", "!", "e", "pi", "\n"]
)  # fmt: skip
_garbage = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(_fragments, st.text(max_size=3)), max_size=10).map("".join),
)


@pytest.fixture(scope="module")
def quick_maths() -> Iterator[ActionSet]:
    actions = math_actions(timeout=2)
    yield actions
    _close(actions)


@given(name=st.sampled_from(["Calculator", "SetEquation", "SolveEquation", "Count",
                             "SolveInequality", "Code", "Define"]),
       args=st.lists(_garbage, min_size=1, max_size=2))  # fmt: skip
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_text_gives_values_or_a_tool_error(
    quick_maths: ActionSet, name: str, args: list[str]
) -> None:
    try:
        values = run(quick_maths, name, *args)
    except ToolError as exc:
        assert str(exc)
        return
    assert values and all(isinstance(v, Value) and isinstance(v.text, str) for v in values)


def test_set_equation_of_bare_arithmetic_computes_it_as_the_reference_did() -> None:
    # WolframAlpha, the reference's executor, answers "15 + 4" with 19; small models write it.
    set_equation = math_actions().get("SetEquation")
    assert set_equation is not None
    assert set_equation.executor("15 + 4 + 46 / 2").text == "42"
