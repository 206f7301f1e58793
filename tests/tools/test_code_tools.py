"""The user's tools inside ``Code``: called as functions, run in the host, bounded by the same
time limit, and the sandbox's refusals unchanged."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator

import pytest
from langchain_core.tools import tool

from lumos_graph.agent.actions import Action, ActionSet, Value, as_values
from lumos_graph.errors import ToolError
from lumos_graph.graphs.lumos import create_lumos_agent
from lumos_graph.tools._worker import _answer_call
from lumos_graph.tools.sandbox import code_action, code_with_tools
from lumos_graph.tools.toolsets import create_actions
from tests.fakes import scripted

PRICES = {"apple": 0.5, "bread": 2.25}
RELEASE = threading.Event()  # holds the blocking tool until the test module ends


def unit_price(item: str) -> float:
    """Look up the price of one unit of an item."""
    if item not in PRICES:
        raise ValueError(f"no price for {item!r}")
    return PRICES[item]


@tool
def apply_discount(amount: float, percent: float) -> float:
    """Apply a percentage discount to an amount."""
    return round(amount * (1 - percent / 100), 2)


def host_pid(label: str) -> int:
    """The process id of whoever runs this tool."""
    return os.getpid()


def wait_forever(label: str) -> str:
    """A tool that does not return before the test releases it."""
    RELEASE.wait()
    return label


def photo_size(label: str) -> int:
    """Needs the run's images."""
    return 0


@pytest.fixture(scope="module")
def actions() -> Iterator[ActionSet]:
    built = create_actions(
        ["maths", unit_price, apply_discount, host_pid, wait_forever,
         Action("photo_size", "Needs images", ("label",), photo_size, needs_images=True)],
        timeout=1.0,
    )
    yield built
    RELEASE.set()
    for action in built:
        worker = getattr(action.executor, "worker", None)
        if worker is not None:
            worker.close()


def run(actions: ActionSet, source: str) -> str:
    [value] = as_values(actions.get("Code").executor(source))
    return value.text


def number(text: str) -> float:
    return float(text)


def test_a_user_tool_is_its_own_action_and_a_function_inside_code(actions: ActionSet) -> None:
    assert actions.get("unit_price").executor("apple") == 0.5
    assert number(run(actions, 'unit_price("apple") * 6')) == 6 * PRICES["apple"]
    expected = round(6 * PRICES["apple"] * (1 - 10 / 100), 2)
    assert number(run(actions, 'apply_discount(unit_price("apple") * 6, 10)')) == expected
    assert number(run(actions, "apply_discount(amount=3, percent=10)")) == round(3 * 0.9, 2)


def test_a_bare_word_given_to_a_tool_is_its_text_as_on_an_action_line(
    actions: ActionSet,
) -> None:
    assert number(run(actions, "unit_price(apple) * 6")) == 6 * PRICES["apple"]
    assert number(run(actions, "unit_price(item=bread)")) == PRICES["bread"]
    # a name the snippet defines keeps its value; other names stay Python names
    assert number(run(actions, "apple = 'bread'\nunit_price(apple)")) == PRICES["bread"]
    with pytest.raises(ToolError, match="NameError: name 'apple' is not defined"):
        run(actions, "apple * 2")
    with pytest.raises(ToolError, match="may not use eval"):
        run(actions, "unit_price(eval)")


def test_the_tool_runs_in_the_host_process_not_in_the_sandbox(actions: ActionSet) -> None:
    assert run(actions, 'host_pid("x")') == str(os.getpid())
    assert actions.get("Code").executor.worker.pid != os.getpid()


def test_a_tool_error_raises_in_the_snippet_and_is_the_observation(actions: ActionSet) -> None:
    with pytest.raises(ToolError, match=r"unit_price failed: ValueError: no price for 'pear' "
                                        r"\(line 2\)"):
        run(actions, 'x = 1\nunit_price("pear")')
    # the snippet may catch it like any exception
    assert run(actions, 'try:\n    r = unit_price("pear")\nexcept Exception:\n    r = 0\nr') == "0"
    with pytest.raises(ToolError, match=re.escape("unit_price(item) takes 1 argument, not 2")):
        run(actions, 'unit_price("apple", "bread")')
    with pytest.raises(ToolError, match="has no parameter 'rate'"):
        run(actions, "apply_discount(3, rate=10)")


def test_tool_calls_count_against_the_time_limit(actions: ActionSet) -> None:
    with pytest.raises(ToolError, match=r"^Code timed out after 1 s$"):
        run(actions, 'wait_forever("a")')
    assert number(run(actions, 'unit_price("bread") * 2')) == PRICES["bread"] * 2  # recovered


def test_tools_that_need_images_are_not_functions_inside_code(actions: ActionSet) -> None:
    with pytest.raises(ToolError, match="NameError: name 'photo_size' is not defined"):
        run(actions, 'photo_size("a")')


@pytest.mark.parametrize("source", [
    "unit_price.__globals__", "unit_price.__closure__", "unit_price.__code__",
    "apply_discount.__self__", "getattr(unit_price, 'x')", "import os",
])
def test_the_sandbox_refusals_still_hold_with_tools(actions: ActionSet, source: str) -> None:
    with pytest.raises(ToolError, match="may not"):
        run(actions, source)


def test_the_host_answers_only_registered_tools_with_text_arguments() -> None:
    calls: list[tuple[str, ...]] = []

    def echo(*args: str) -> str:
        calls.append(args)
        return "ok"

    host = {"echo": echo}
    far = time.monotonic() + 60
    assert _answer_call(host, {"call": "echo", "args": ["1"]}, far) == {"return": "ok"}
    assert "is not a tool" in _answer_call(host, {"call": "os.system", "args": ["ls"]}, far)["raise"]
    assert "is not a tool" in _answer_call(host, {"call": ["echo"], "args": []}, far)["raise"]
    assert "must be text" in _answer_call(host, {"call": "echo", "args": [1]}, far)["raise"]
    assert "must be text" in _answer_call(host, {"call": "echo", "args": "1"}, far)["raise"]
    assert calls == [("1",)]


def test_without_user_tools_code_is_unchanged() -> None:
    code = create_actions("maths").get("Code")
    assert code.executor.host == {}
    plain = code_action(timeout=1.0)
    try:
        assert code_with_tools(plain, [Action.from_function(unit_price)]).executor.host.keys() \
            == {"unit_price"}
        assert plain.executor.host == {}  # the original action is not changed
    finally:
        plain.executor.worker.close()


def test_the_graph_executes_code_that_calls_a_user_tool(actions: ActionSet) -> None:
    agent = create_lumos_agent(
        planner=scripted(["Subgoal 1: Compute the price of 6 apples."]),
        grounder=scripted(['R1 = Code(unit_price("apple") * 6)']),
        actions=actions, mode="onepass",
    )
    final = agent.invoke({"task": "What do 6 apples cost?"})
    assert final["status"] == "answered"
    assert number(final["answer"]) == 6 * PRICES["apple"]
    assert final["actions"][0]["tool"] == "Code"


def test_values_of_action_style_tools_arrive_as_numbers() -> None:
    def halves(n: str) -> list[Value]:
        return [Value(str(int(n) // 2)), Value(str(int(n) - int(n) // 2))]

    code = code_with_tools(code_action(timeout=2.0),
                           [Action("Halves", "Split in two", ("n",), halves)])
    try:
        [value] = as_values(code.executor("a, b = Halves(7)\na * 10 + b"))
        assert value.text == "34"
    finally:
        code.executor.worker.close()
