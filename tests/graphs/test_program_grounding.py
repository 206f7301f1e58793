"""Program grounding: the OnePass plan grounded as one Python program that Code runs once."""

from __future__ import annotations

import pytest

from lumos_graph.agent import protocol
from lumos_graph.agent.actions import ActionSet
from lumos_graph.agent.grammar import program_grammar
from lumos_graph.errors import ConfigError
from lumos_graph.graphs.lumos import create_lumos_agent
from lumos_graph.tools.sandbox import code_action
from tests.agent.gbnf import accepts
from tests.fakes import scripted, toy_actions

PLAN = "Subgoal 1: Count the pencils in the boxes; Subgoal 2: Take away the ones given"
PROGRAM = (
    "```python\n"
    "# Subgoal 1: Count the pencils in the boxes\n"
    "pencils = 3 * 12\n"
    "# Subgoal 2: Take away the ones given\n"
    "answer = pencils - 10\n"
    "```"
)


def agent(grounder_lines: list[str], **kwargs: object):
    kwargs.setdefault("grounding", "program")
    return create_lumos_agent(planner=scripted([PLAN]), grounder=scripted(grounder_lines),
                              actions=ActionSet([code_action()]), **kwargs)


def test_the_plan_becomes_one_program_run_once_by_code() -> None:
    grounder = scripted([PROGRAM])
    graph = create_lumos_agent(planner=scripted([PLAN]), grounder=grounder,
                               actions=ActionSet([code_action()]), grounding="program")
    out = graph.invoke({"task": "Tom has 3 boxes of 12 pencils and gives away 10. How many?"})
    assert out["status"] == "answered", out["reason"]
    assert out["answer"] == "26"
    assert [a["tool"] for a in out["actions"]] == ["Code"]
    assert out["actions"][0]["outputs"] == ["R1"]
    assert "pencils = 3 * 12" in out["actions"][0]["args"]
    # the grounder saw the task and the numbered plan, and wrote under the program grammar
    prompt = grounder.prompts[0][-1].content
    assert prompt.startswith("Problem: Tom has 3 boxes")
    assert "1. Count the pencils in the boxes\n2. Take away the ones given" in prompt
    assert grounder.call_kwargs[0]["stop"] is None
    assert out["usage"]["model_calls"] == 2


def test_a_program_error_is_a_failed_run_with_the_error() -> None:
    out = agent(["```python\nanswer = pencils * 2\n```"]).invoke({"task": "How many?"})
    assert out["status"] == "failed"
    assert "NameError" in out["reason"]


def test_a_reply_without_code_is_recorded_not_raised() -> None:
    out = agent(["   "]).invoke({"task": "How many?"})
    assert out["status"] == "failed"
    assert out["errors"] and "no Python code" in out["errors"][0]


def test_program_grounding_needs_onepass_and_the_code_action() -> None:
    with pytest.raises(ConfigError, match="onepass"):
        agent([PROGRAM], mode="iterative")
    with pytest.raises(ConfigError, match="Code action"):
        create_lumos_agent(planner=scripted([PLAN]), grounder=scripted([PROGRAM]),
                           actions=toy_actions(), grounding="program")
    with pytest.raises(ConfigError, match="grounding must be"):
        agent([PROGRAM], grounding="python")  # type: ignore[arg-type]


def test_parse_program_reads_the_first_fenced_block_or_bare_code() -> None:
    assert protocol.parse_program(PROGRAM + "\nThis program counts.") == (
        "# Subgoal 1: Count the pencils in the boxes\npencils = 3 * 12\n"
        "# Subgoal 2: Take away the ones given\nanswer = pencils - 10")
    assert protocol.parse_program("x = 2\nanswer = x + 1") == "x = 2\nanswer = x + 1"
    assert protocol.parse_program("```python\nanswer = 1") == "answer = 1"  # cut by max_tokens
    with pytest.raises(protocol.ParseError):
        protocol.parse_program("```python\n```")


def test_a_multi_line_call_round_trips_through_its_rendering() -> None:
    call = protocol.ActionCall(("R1",), "Code", "a = 1\nb = (a, 2)\nanswer = a + b[1]")
    assert protocol.parse_call(call.render()) == call


def test_the_program_grammar_admits_one_fenced_block_only() -> None:
    grammar = program_grammar()
    assert grammar.startswith('root ::= "```python\\n" line line* "```"')
    assert 'line ::= [^`\\n]* "\\n"' in grammar


def test_the_default_model_grounds_maths_onepass_into_programs_and_nothing_else_does() -> None:
    from lumos_graph.graphs.lumos import default_grounding

    assert default_grounding(None, "onepass", None) == "program"
    assert default_grounding("default", "onepass", "maths") == "program"
    assert default_grounding("default", "iterative", "maths") == "actions"
    assert default_grounding("default", "onepass", "maths,qa") == "actions"
    assert default_grounding("lumos-maths-ground-onetime", "onepass", "maths") == "actions"
    assert default_grounding(scripted([]), "onepass", "maths") == "actions"


def unit_price(item: str) -> float:
    """Look up the price in dollars of one unit of a grocery item."""
    return {"apple": 0.5}[item.strip().lower().rstrip("s")]


def test_user_tools_keep_the_default_on_programs_and_the_program_may_call_them() -> None:
    from lumos_graph.graphs.lumos import default_grounding
    from lumos_graph.tools.toolsets import create_actions

    actions = create_actions(["maths", unit_price])
    assert default_grounding(None, "onepass", actions) == "program"
    assert default_grounding(None, "onepass", ["maths", unit_price]) == "program"
    assert default_grounding(None, "onepass", ["maths", "sql", unit_price]) == "actions"
    assert default_grounding(None, "onepass", [unit_price]) == "actions"  # no Code without maths

    grounder = scripted([('```python\nfrom tools import unit_price\n\n'
                          'answer = unit_price("apple") * 6\n```')])
    out = create_lumos_agent(planner=scripted([PLAN]), grounder=grounder, actions=actions,
                             grounding="program").invoke({"task": "What do 6 apples cost?"})
    assert out["status"] == "answered", out["reason"]
    assert float(out["answer"]) == 3.0
    # the import line is the grammar's, not run: the functions are defined in the sandbox
    assert out["actions"][0]["args"] == 'answer = unit_price("apple") * 6'
    prompt = grounder.prompts[0][-1].content  # the functions are listed after the plan
    assert prompt.endswith("These functions are already defined: call them, do not define "
                           "them again (pass text arguments as strings):\n- unit_price(item): "
                           "Look up the price in dollars of one unit of a grocery item")
    grammar = program_grammar(protocol.program_import(["unit_price"]))
    assert accepts(grammar, '```python\nfrom tools import unit_price\n\nx = 1\n```')
    assert not accepts(grammar, "```python\ndef unit_price(item):\n    return 1\n```")


def test_the_maths_only_program_prompt_lists_no_functions() -> None:
    grounder = scripted([PROGRAM])
    agent_ = create_lumos_agent(planner=scripted([PLAN]), grounder=grounder,
                                actions=ActionSet([code_action()]), grounding="program")
    agent_.invoke({"task": "Tom has 3 boxes of 12 pencils and gives away 10. How many?"})
    assert "functions" not in grounder.prompts[0][-1].content
