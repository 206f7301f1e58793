"""Golden tests of every LUMOS prompt and parse, with literal strings."""

from __future__ import annotations

import pytest

from lumos_graph.agent import protocol as p
from lumos_graph.agent.few_shot_examples import EXAMPLES
from tests.tools.test_maths_tools import LISTING

# the LUMOS maths action list, pinned byte for byte in test_maths_tools
MATHS_LISTING = LISTING


def test_plan_first_turn_is_byte_exact() -> None:
    assert p.plan_first("Leah had $32. How much is left?") == (
        "Please provide a reasonable subgoal-based plan to solve the given task.\n"
        "Task: Leah had $32. How much is left?; Initial Environment Description: None."
    )


def test_ground_first_turn_iterative_is_byte_exact() -> None:
    text = p.ground_first("What is 2+2?", MATHS_LISTING, "Subgoal 1: Add the numbers.")
    assert text == (
        "Please ground the given subgoal to corresponding executable actions for solving the "
        "given task. The grounded actions must be the one in available action list.\n\n"
        + MATHS_LISTING
        + "\n\nTask: What is 2+2? \nSubgoal to be grounded: Subgoal 1: Add the numbers."
    )


def test_ground_first_turn_onepass_joins_all_subgoals() -> None:
    text = p.ground_first_onepass("T", "LIST", ["Obtain a", "Determine b"])
    assert text.endswith("\n\nLIST\n\nTask: T \nSubgoals to be grounded: Subgoal 1: Obtain a; "
                         "Subgoal 2: Determine b")


def test_iterative_turns_after_the_first() -> None:
    assert p.feedback(1, "4") == "The executed result for Subgoal 1 is 4. Should we stop planning?"
    assert p.ground_next("Subgoal 2: Calculate the rest.") == (
        "Subgoal to be grounded: Subgoal 2: Calculate the rest."
    )
    assert p.ground_next("Subgoal 3: Compare.", ["3", "16"]) == (
        "Subgoal to be grounded: Subgoal 3: Compare. The grounding could be based on the "
        "following results: The execution result for Subgoal 1 is 3. The execution result for "
        "Subgoal 2 is 16."
    )


def test_planner_lines_render_as_lumos_wrote_them() -> None:
    assert p.render_plan(["Obtain a", "Obtain b"]) == "Subgoal 1: Obtain a; Subgoal 2: Obtain b"
    assert p.render_decision(1, "Calculate x.") == "Subgoal 1: Calculate x."
    assert p.render_decision(2, "Calculate y.") == (
        "No, I will keep planning. Subgoal 2: Calculate y."
    )
    assert p.render_decision(3, None) == "Yes, I will stop planning."


def test_parse_onepass_plan() -> None:
    plan = p.parse_plan("Subgoal 1: Obtain a; Subgoal 2: Obtain b; Subgoal 3: Determine c")
    assert [(s.index, s.text) for s in plan] == [(1, "Obtain a"), (2, "Obtain b"),
                                                 (3, "Determine c")]


def test_parse_plan_reads_only_the_first_line() -> None:
    plan = p.parse_plan("Subgoal 1: Add.\nSubgoal 2: chatter on the next line")
    assert [s.text for s in plan] == ["Add."]


@pytest.mark.parametrize(
    ("text", "stop", "subgoal"),
    [
        ("Subgoal 1: Calculate the amount Leah spent on milkshake.", False,
         (1, "Calculate the amount Leah spent on milkshake.")),
        ("No, I will keep planning. Subgoal 2: Calculate Leah's rest money.", False,
         (2, "Calculate Leah's rest money.")),
        ("Yes, I will stop planning.", True, None),
    ],
)
def test_parse_iterative_decisions(text: str, stop: bool, subgoal: tuple[int, str] | None) -> None:
    decision = p.parse_decision(text)
    assert decision.stop is stop
    assert (decision.subgoal and (decision.subgoal.index, decision.subgoal.text)) == subgoal


def test_parse_actions_reference_line() -> None:
    calls = p.parse_actions(
        "R1 = KnowledgeQuery(Julius Caesar); R2 = ParagraphRetrieve(R1, Query: How many kids did "
        "Julius Caesar have?); R3 = QA([R2], Question: How many kids did Julius Caesar have?); "
        "R7 = Calculator(R6 > R3)"
    )
    assert [(c.outputs, c.tool, c.args) for c in calls] == [
        (("R1",), "KnowledgeQuery", "Julius Caesar"),
        (("R2",), "ParagraphRetrieve", "R1, Query: How many kids did Julius Caesar have?"),
        (("R3",), "QA", "[R2], Question: How many kids did Julius Caesar have?"),
        (("R7",), "Calculator", "R6 > R3"),
    ]


def test_parse_multi_output_alias_and_bracket_lists() -> None:
    calls = p.parse_actions(
        "R5, R6 = SolveEquation(R2=xy, R3=x/y); Output = Calculator(R5 + R6); "
        "R8 = QA([R2, R3], Question: Which one; if any, is older?)"
    )
    assert calls[0].outputs == ("R5", "R6")
    assert calls[0].args == "R2=xy, R3=x/y"
    assert calls[1].outputs == ("Output",)
    assert calls[2].args == "[R2, R3], Question: Which one; if any, is older?"
    assert calls[0].render() == "R5, R6 = SolveEquation(R2=xy, R3=x/y)"


def test_bad_outputs_raise_parse_error_with_the_raw_text() -> None:
    with pytest.raises(p.ParseError) as info:
        p.parse_actions("I think the answer is 4")
    assert info.value.raw == "I think the answer is 4"
    with pytest.raises(p.ParseError):
        p.parse_plan("Let me think.")
    with pytest.raises(p.ParseError):
        p.parse_decision("Maybe.")


def test_split_args_keeps_commas_inside_brackets_and_the_last_argument() -> None:
    assert p.split_args("[R2, R3], Question: Who, if anyone, won?", 2) == [
        "[R2, R3]", "Question: Who, if anyone, won?"]
    assert p.split_args("max(3, 4) + 1", 1) == ["max(3, 4) + 1"]
    assert p.split_args("x + y = 10, x - y = 2", None) == ["x + y = 10", "x - y = 2"]


def test_substitution_respects_token_boundaries() -> None:
    values = {"R1": "7", "R10": "100"}
    assert p.substitute("R10 - R1", values, expression=True) == "100 - 7"
    assert p.substitute("R1x + xR1 + R1_2", values, expression=True) == "R1x + xR1 + R1_2"
    assert p.substitute("R3 + R1", values, expression=True) == "R3 + 7"


def test_substitution_parenthesizes_compound_values_in_expressions_only() -> None:
    values = {"R1": "1/3", "R2": "-2", "R3": "x + y = 10", "R4": "sqrt(2)"}
    assert p.substitute("2*R1 + R2", values, expression=True) == "2*(1/3) + (-2)"
    assert p.substitute("R3", values, expression=True) == "x + y = 10"
    assert p.substitute("R4^2", values, expression=True) == "sqrt(2)^2"
    assert p.substitute("Is R1 small?", values, expression=False) == "Is 1/3 small?"


def test_few_shot_iterative_planner_conversation() -> None:
    turns = p.few_shot("plan", "iterative", MATHS_LISTING, {"Calculator"}, examples=EXAMPLES)
    assert turns[0]["role"] == "system"
    assert [t["content"] for t in turns[1:4]] == [
        "Please provide a reasonable subgoal-based plan to solve the given task.\nTask: Leah had "
        "$32. She spent $4 on a milkshake and then half of the rest on a necklace. How much "
        "money does Leah have left?; Initial Environment Description: None.",
        "Subgoal 1: Calculate the money Leah had after buying the milkshake.",
        "The executed result for Subgoal 1 is 28. Should we stop planning?",
    ]
    assert turns[-1] == {"role": "assistant", "content": "Yes, I will stop planning."}
    # the equation example needs SetEquation/SolveEquation, which are not enabled here
    assert not any("sum of two numbers" in t["content"] for t in turns)


def test_only_the_onepass_planner_is_told_the_examples_show_the_format_not_the_steps() -> None:
    # the OnePass planner copied Leah's closing "money left" subgoal into unrelated plans
    def system(module: str, mode: str) -> str:
        turns = p.few_shot(module, mode, "L", {"Calculator"}, examples=EXAMPLES)  # type: ignore[arg-type]
        return turns[0]["content"]

    note = "the examples show the format, not the steps"
    assert note in system("plan", "onepass")
    assert note not in system("plan", "iterative")  # measured in OnePass only
    assert note not in system("ground", "onepass")
    assert system("plan", "onepass").startswith(system("plan", "iterative").split(" Reply")[0])


def test_few_shot_examples_parse_with_our_own_parser() -> None:
    tools = {"Calculator", "SetEquation", "SolveEquation"}
    for mode in ("onepass", "iterative"):
        for t in p.few_shot("ground", mode, "L", tools, examples=EXAMPLES):
            if t["role"] == "assistant":
                assert p.parse_actions(t["content"])
        for t in p.few_shot("plan", mode, "L", tools, examples=EXAMPLES):
            if t["role"] == "assistant" and mode == "onepass":
                assert len(p.parse_plan(t["content"])) >= 2


def test_split_args_keeps_thousands_separators() -> None:
    assert p.split_args("x + y = 1,000, x - y = 2", None) == ["x + y = 1,000", "x - y = 2"]
    assert p.split_args("3,4", None) == ["3", "4"]


def test_quotes_and_braces_do_not_hide_an_action_separator() -> None:
    # the grammar forbids a top-level ';' only outside () and []: the parser agrees
    calls = p.parse_actions("R1 = Double('a); R2 = Add(1, 2)")
    assert [c.tool for c in calls] == ["Double", "Add"]
    calls = p.parse_actions("R1 = Double({1); R2 = Add(1, 2)")
    assert [c.tool for c in calls] == ["Double", "Add"]


def test_direct_answers_are_read_as_maths_evaluations_read_them() -> None:
    from lumos_graph.agent.protocol import parse_direct_answer

    assert parse_direct_answer("6 - 4 = 2, so\nAnswer: 2") == "2"
    assert parse_direct_answer("The final answer is \\(\\boxed{75}\\).\nAnswer: 70") == "75"
    assert parse_direct_answer("14 + 2 = 16.\nTherefore, the total cost is £16.") == \
        "the total cost is £16"
    assert parse_direct_answer("So the answer is yes.") == "yes"
    assert parse_direct_answer("I am not sure what is asked.") is None


def test_direct_never_takes_template_text_and_reads_a_leading_yes_or_no() -> None:
    from lumos_graph.agent.protocol import parse_direct_answer

    assert parse_direct_answer("Answer: <a short answer: a number, yes or no>") is None
    assert parse_direct_answer("Answer: [your answer]") is None
    assert parse_direct_answer("No, goldfish need water to breathe.") == "no"
    assert parse_direct_answer("Yes. The tower is in Paris.\nAnswer: <yes or no>") == "yes"
    # the template filled in with a value is that value
    assert parse_direct_answer("So 9 - 5 = 4.\nThe final answer is: <a short answer: 4</a>") == "4"
    assert parse_direct_answer("Answer: <a short answer: Paris>") == "Paris"
    assert parse_direct_answer("Nothing here is known.") is None  # "No" must be a whole word


def test_a_program_loses_its_tools_import_line_however_the_model_wrote_it() -> None:
    body = "price = unit_price(6)\nprint(price)"
    names = ["apply_discount", "unit_price"]
    assert p.drop_import(p.program_import(names) + body, names) == body
    assert p.drop_import("from tools import unit_price\n" + body, names) == body  # a subset
    assert p.drop_import("from tools import (unit_price)\n" + body, names) == body
    assert p.drop_import("import math\n" + body, names) == "import math\n" + body
    assert p.drop_import("from tools import unit_price\n" + body, []) == (
        "from tools import unit_price\n" + body)  # no user tools: nothing to drop
