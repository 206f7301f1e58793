"""AgentTuning's safeguards as plain functions: repeat stop, duplicate calls, snapping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lumos_graph.agent import safeguards as guard
from lumos_graph.errors import ConfigError

MATHS_QA_SQL = ("Calculator", "SetEquation", "SolveEquation", "Count", "SolveInequality", "Code",
                "Define", "KnowledgeQuery", "ParagraphRetrieve", "QA", "SQLQuery", "ListTables",
                "DescribeTable", "Add", "Double", "Split", "Boom")


def test_three_identical_outputs_in_a_row_stop_two_do_not() -> None:
    assert not guard.repeated_output(["a", "a"])
    assert guard.repeated_output(["b", "a", "a", "a"])
    assert guard.repeated_output(["a\n", " a", "a"])  # surrounding whitespace is no change
    assert not guard.repeated_output(["a", "a", "b"])
    assert not guard.repeated_output(["a", "b", "a", "a"])
    assert guard.repeated_output(["x", "x"], times=2)


def test_repeat_reason_names_the_role_the_rule_and_the_output() -> None:
    reason = guard.repeat_reason("planner", "Compute 2 + 2.\nNext: caller.")
    assert reason.startswith("the planner produced the same output 3 times in a row")
    assert "Compute 2 + 2. Next: caller." in reason


def test_call_keys_ignore_whitespace_and_key_order_but_not_values() -> None:
    assert guard.call_key("QA", {"a": "x  y", "b": "1"}) == guard.call_key("QA", {"b": "1",
                                                                                "a": "x y"})
    assert guard.call_key("Calculator", ["3 + 4"]) == guard.call_key("Calculator", ["3 +  4 "])
    assert guard.call_key("Calculator", ["3 + 4"]) != guard.call_key("Calculator", ["3 + 5"])
    assert guard.call_key("Calculator", ["3"]) != guard.call_key("Define", ["3"])


def test_find_duplicate_returns_the_original_call_with_its_result() -> None:
    first = {"tool": "Calculator", "resolved_args": ["3*12"], "result": ["36"], "error": None}
    refused = {"tool": "Calculator", "resolved_args": ["3*12"], "result": ["36"], "error": None,
               "duplicate": True}
    other = {"tool": "Calculator", "resolved_args": ["36-10"], "result": ["26"], "error": None}
    key = guard.call_key("Calculator", ["3 * 12".replace(" ", "")])
    assert guard.find_duplicate([refused, other, first], key) is first
    assert guard.find_duplicate([other], key) is None
    assert "36" in guard.duplicate_feedback(first)
    assert "not run again" in guard.duplicate_feedback(first)
    failed = {"tool": "QA", "resolved_args": [], "result": None, "error": "no context"}
    assert "error: no context" in guard.duplicate_feedback(failed)


@pytest.mark.parametrize(("written", "expected"), [
    ("calculater", "Calculator"), ("calculator", "Calculator"), ("calculate", "Calculator"),
    ("solve_equation", "SolveEquation"), ("Solve Equation", "SolveEquation"),
    ("list_tables", "ListTables"), ("sqlquery", "SQLQuery"), ("Knowledge Query", "KnowledgeQuery"),
    ("Calculator(3 + 4)", "Calculator"), ("dubble", "Double"), ("Doubel", "Double"),
    ("splt", "Split"), ("coutn", "Count"), ("Defien", "Define"),
    ("paragraph_retreive", "ParagraphRetrieve"),
])
def test_typos_and_case_slips_snap_above_the_threshold(written: str, expected: str) -> None:
    found = guard.snap(written, MATHS_QA_SQL)
    assert found is not None and found.action == expected
    assert found.score >= guard.SNAP_THRESHOLD


@pytest.mark.parametrize("written", ["weather", "WebSearch", "math", "Python", "search", "sql",
                                     "translate", "Wikipedia", "Multiply", "email", ""])
def test_unrelated_names_stay_below_the_threshold(written: str) -> None:
    assert guard.snap(written, MATHS_QA_SQL) is None


def test_sentence_bleu_is_one_for_identical_and_zero_without_common_tokens() -> None:
    assert guard.sentence_bleu(list("calculator"), list("calculator")) == pytest.approx(1.0)
    assert guard.sentence_bleu(list("xyz"), list("calculator")) == 0.0
    assert guard.sentence_bleu([], list("a")) == 0.0


@given(st.text(max_size=40), st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=6))
def test_snap_never_raises_and_scores_stay_in_range(written: str, names: list[str]) -> None:
    found = guard.snap(written, names, threshold=0.0)
    if found is not None:
        assert 0.0 <= found.score <= 1.0 and found.action in names


def test_one_format_error_goes_back_then_none() -> None:
    assert guard.format_retry_left(0)
    assert not guard.format_retry_left(1)
    text = guard.format_feedback("unknown tool 'Weather'.", ["Calculator", "Count"])
    assert text == ("Format error: unknown tool 'Weather'. Write the action exactly in the "
                    "required format, with one of: Calculator, Count.")


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        guard.Safeguards(max_repeats=1)
    with pytest.raises(ConfigError):
        guard.Safeguards(snap_threshold=1.5)
    with pytest.raises(ConfigError):
        guard.Safeguards(format_retries=-1)
