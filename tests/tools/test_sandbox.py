"""The Code action: results of snippets, refused escapes, time, output and memory bounds."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lumos_graph.agent.actions import Action, Value, as_values
from lumos_graph.errors import ToolError
from lumos_graph.tools.sandbox import code_action

TIMEOUT = 2.0


@pytest.fixture(scope="module")
def code() -> Iterator[Action]:
    action = code_action(timeout=TIMEOUT)
    yield action
    action.executor.worker.close()


def run(action: Action, source: str) -> Value:
    [value] = as_values(action.executor(source))
    return value


def test_action_shape(code: Action) -> None:
    assert code.doc == (
        "Code(pseudo_code): Generate a Python function that corresponds to the pseudo code"
    )
    assert code.expression_args and not code.variadic


RESULTS = [
    ("sum(range(1, 11))", "55"),  # the last expression
    ("x = 5; y = x * 2; y + 1", "11"),
    ("result = 0.1 + 0.2", "0.3"),  # a variable named result, floats rounded sensibly
    ("answer = 10.0", "10"),
    ("print(6 * 7)", "42"),  # what it printed
    ("print(67.35 - 0.83 * 45)", "30"),  # a printed float as a result shows it
    ("print(0.1 + 0.2, 2.5)", "0.3 2.5"),
    ("print('hi'); print('there')", "hi\nthere"),
    ("def f():\n    return 42", "42"),  # the one function, called
    ("def f():\\n    return 42", "42"),  # one-line model output with escaped newlines
    ("def solution():\n    return 7\ndef helper(n):\n    return n", "7"),
    ("If 141 % 1 == 0, 1, 0", "1"),  # LUMOS pseudo code
    ("If (64) > 0, (64), -(64)", "64"),
    ("If -3 > 0 then 1 else 2", "2"),
    ("if 5 > 3:\n    result = 'yes'", "yes"),
    ("import math\nmath.sqrt(16)", "4"),  # math is the one importable module
    ("from math import factorial; factorial(5)", "120"),
    ("sqrt(2) ** 2", "2"),
    ("[x * x for x in range(4)]", "[0, 1, 4, 9]"),
    ("sorted({'b': 1, 'a': 2}.items())", "[('a', 2), ('b', 1)]"),
    ("'-'.join(['a', 'b'])", "a-b"),
    ("map(abs, [-1, -2])", "[1, 2]"),
    ("2 ** 100", "1267650600228229401496703205376"),
    ("1 / 3", "0.333333333333"),
    ("3 > 2", "True"),
    ("```python\n1 + 1\n```", "2"),
]


@pytest.mark.parametrize(("source", "text"), RESULTS)
def test_results(code: Action, source: str, text: str) -> None:
    assert run(code, source).text == text


ESCAPES = [
    ("import os", "may not import"),
    ("from os import system", "may not import"),
    ("import math.os", "may not import"),
    ("from tests import x", "may not import"),
    ("().__class__.__bases__[0].__subclasses__()", "may not use the attribute"),
    ("(1).__class__", "attribute .__class__"),
    ("open('/etc/passwd')", "may not use open"),
    ("__import__('os')", "may not use __import__"),
    ("__builtins__", "may not use __builtins__"),
    ("eval('1 + 1')", "may not use eval"),
    ("exec('x = 1')", "may not use exec"),
    ("compile('1', 'f', 'eval')", "may not use compile"),
    ("getattr(1, 'real')", "may not use getattr"),
    ("globals()", "may not use globals"),
    ("type(1)", "may not use type"),
    ("input()", "may not use input"),
    ("(x for x in []).gi_frame.f_back.f_globals", "may not use the attribute"),
    ("'{0.__class__}'.format(1)", "attribute .format"),
    ("'{0.real}'.format_map({})", "attribute .format_map"),
    ("f'{(1).__class__}'", "attribute .__class__"),
    ("def f(): pass\nf.__globals__", "attribute .__globals__"),
    ("class A: pass", "may not use ClassDef"),
    ("with x: pass", "may not use With"),
    ("match 1:\n    case int(real=r): r", "may not use Match"),
    ("x = [1]; x.append = 2", "attribute .append"),
    ("import math; math.sqrt = 1", "attribute .sqrt"),
    ("def f(__x): return 1", "may not use the name __x"),
]


@pytest.mark.parametrize(("source", "message"), ESCAPES)
def test_escapes_are_refused(code: Action, source: str, message: str) -> None:
    with pytest.raises(ToolError, match=re.escape(message)):
        run(code, source)


def test_names_outside_the_whitelist_do_not_exist(code: Action) -> None:
    with pytest.raises(ToolError, match="NameError: name 'bytes' is not defined"):
        run(code, "bytes(3)")
    with pytest.raises(ToolError, match="NameError: name 'bytearray' is not defined"):
        run(code, "bytearray(3)")


def test_a_snippet_ending_in_an_assignment_gives_the_assigned_value(code: Action) -> None:
    """Small models often stop at ``total = ...``: the name they computed is the result."""
    assert run(code, "total_cost = 4 * 12 + 5 * 73 + 9 * 119").text == "1484"
    assert run(code, "x = 3\nx += 4").text == "7"
    assert run(code, "x = 2\nresult = x * 5\ny = 0").text == "10"  # `result` still comes first


def test_errors_of_the_snippet_are_readable(code: Action) -> None:
    with pytest.raises(ToolError, match=r"ZeroDivisionError: division by zero \(line 2\)"):
        run(code, "x = 1\nx / 0")
    with pytest.raises(ToolError, match="invalid Python syntax"):
        run(code, "def (:")
    with pytest.raises(ToolError, match="no result"):
        run(code, "x = 1\nif x:\n    pass")
    with pytest.raises(ToolError, match=r"defines f\(n\) but never calls it"):
        run(code, "def f(n):\n    return n")
    with pytest.raises(ToolError, match="needs a Python snippet"):
        run(code, "   ")


def test_infinite_loop_is_killed_within_the_timeout(code: Action) -> None:
    pid = (run(code, "1"), code.executor.worker.pid)[1]
    start = time.monotonic()
    with pytest.raises(ToolError, match=r"^Code timed out after 2 s$"):
        run(code, "while True:\n    pass")
    assert time.monotonic() - start < TIMEOUT + 1.5
    assert code.executor.worker.pid is None  # killed and reaped
    assert run(code, "1 + 1").text == "2"
    assert code.executor.worker.pid != pid


def test_huge_output_is_truncated(code: Action) -> None:
    text = run(code, "for i in range(10**6):\n    print('x' * 100)").text
    assert len(text) < 5000
    assert text.endswith("... (output truncated)")


def test_huge_results_are_refused(code: Action) -> None:
    with pytest.raises(ToolError, match="too large"):
        run(code, "list(range(10**5))")
    with pytest.raises(ToolError, match="too large to print"):
        run(code, "10 ** 100000")


@pytest.mark.parametrize("bomb", ["x = [0] * (10**10)", "s = 'a' * (2**31)", "x = 10**(10**10)"])
def test_memory_bombs_fail_and_the_sandbox_recovers(code: Action, bomb: str) -> None:
    with pytest.raises(ToolError, match=r"out of memory|timed out"):
        run(code, bomb)
    assert run(code, "6 * 7").text == "42"


@given(st.one_of(st.text(max_size=60), st.from_regex(r"[a-z0-9 +*/().=\[\]_,:'\n-]{0,40}")))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_text_gives_a_value_or_a_tool_error(code: Action, source: str) -> None:
    try:
        value = run(code, source)
    except ToolError as exc:
        assert str(exc)
        return
    assert isinstance(value.text, str)
