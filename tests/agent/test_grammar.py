"""The grounding grammar admits only references to results that already exist.

The unit tests read the grammar with :mod:`tests.agent.gbnf`; the ``model`` tests check that
llama.cpp compiles it and that its own sampler agrees on the same texts.
"""

from __future__ import annotations

import ctypes
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumos_graph.agent import protocol as p
from lumos_graph.agent.grammar import MAX_LINE_VARIABLES, ground_grammar, plan_grammar
from lumos_graph.llm.llama import ChatLlamaCpp
from tests.agent.gbnf import accepts

TOOLS = ("Calculator", "KnowledgeQuery", "ParagraphRetrieve", "QA", "SolveEquation")
ONEPASS = ground_grammar(TOOLS)  # the first line of a run: nothing is defined yet
LATER = ground_grammar(TOOLS, 4)  # an iterative turn after R1..R3

CASES = [
    # (grammar, text, admitted)
    (ONEPASS, "R1 = Calculator(32 - 4)", True),
    (ONEPASS, "R1 = Calculator(32 - 4); R2 = Calculator(R1 / 2); R3 = Calculator(R1 - R2)", True),
    (ONEPASS, ("R1 = KnowledgeQuery(Nile); R2 = ParagraphRetrieve(R1, Query: How long?); "
               "R3 = QA([R2], Question: How long is the Nile?)"), True),
    (ONEPASS, "R1, R2 = SolveEquation(x + y = 3, x - y = 1); R3 = Calculator(R1 * R2)", True),
    (ONEPASS, "R1 = QA([R1], Question: x)", False),  # its own output: not yet
    (ONEPASS, "R1 = Calculator(R9 + 1)", False),  # "R9 is not defined yet" can't be written
    (ONEPASS, "R1 = Calculator(2); R2 = Calculator(R10 * 2)", False),  # R1 exists, R10 not
    (ONEPASS, "R1 = Calculator(2); R2 = Calculator(R01)", False),
    (ONEPASS, "R1 = Calculator(2); R2 = Calculator(R0)", False),
    (ONEPASS, "R1 = QA([R2], Question: x); R2 = KnowledgeQuery(y)", False),  # used before made
    (ONEPASS, "R1 = Calculator(2); R2 = QA([R1, R3], Question: x)", False),
    (ONEPASS, "R1 = Calculator(2); R3 = Calculator(R1)", False),  # outputs are numbered on
    (ONEPASS, "R2 = Calculator(2)", False),
    # words that merely start with R, or hold R and digits inside, are text, as the parser reads
    (ONEPASS, "R1 = KnowledgeQuery(Rome, R&B and R2D2 in AR15 or xR9 and R_3 or R)", True),
    (ONEPASS, "R1 = Calculator(f(a; b)); R2 = QA([R1], Question: (R1)?)", True),  # nesting
    (ONEPASS, "R1 = Calculator(a; b)", False),  # a top-level ';' separates actions
    (ONEPASS, "R1 = Calculator()", False),
    (ONEPASS, "R1 = Search(x)", False),  # not an enabled action
    (LATER, "R4 = Calculator(R3 + R1)", True),
    (LATER, "R4 = Calculator(R3); R5 = Calculator(R4 + R2)", True),
    (LATER, "R4 = Calculator(R4)", False),
    (LATER, "R4 = Calculator(R5)", False),
    (LATER, "R1 = Calculator(2)", False),  # numbering continues across turns
]


@pytest.mark.parametrize(("grammar", "text", "admitted"), CASES)
def test_what_the_grounding_grammar_admits(grammar: str, text: str, admitted: bool) -> None:
    assert accepts(grammar, text) is admitted


def test_the_caller_may_name_exactly_which_variables_exist() -> None:
    # R3's action failed in an earlier turn: the node can leave it out
    grammar = ground_grammar(("Calculator",), 4, ("R1", "R2"))
    assert accepts(grammar, "R4 = Calculator(R2); R5 = Calculator(R4)")
    assert not accepts(grammar, "R4 = Calculator(R3)")


def test_a_line_holds_a_bounded_number_of_variables() -> None:
    calls = [f"R{k} = Calculator(R{k - 1} + 1)" for k in range(2, MAX_LINE_VARIABLES + 2)]
    line = "; ".join(["R1 = Calculator(1)", *calls])
    grammar = ground_grammar(("Calculator",))
    cut = line.rsplit("; ", 1)[0]
    assert accepts(grammar, cut)
    assert not accepts(grammar, line)


def test_the_plan_grammar_reads_as_before() -> None:
    assert accepts(plan_grammar("onepass"), "Subgoal 1: Add; Subgoal 2: Halve R1")
    assert accepts(plan_grammar("iterative", 2), "Yes, I will stop planning.")
    assert not accepts(plan_grammar("iterative", 2), "Subgoal 2: x")


# ---- the grammar and the protocol's reading of references agree ------------------------------
_ARG_PIECES = st.sampled_from(
    ["R1", "R2", "R3", "R4", "R10", "R0", "Rome", "R2D2", "AR1", "(R1)", "[R2]", " + ", ", ",
     "x", "2", "Question: ", "R", "_R1"])
_CALL = st.tuples(st.integers(1, 2), st.sampled_from(["Calculator", "QA"]),
                  st.lists(_ARG_PIECES, min_size=1, max_size=4).map("".join))


@given(st.integers(1, 3), st.lists(_CALL, min_size=1, max_size=4), st.booleans())
@settings(max_examples=250, deadline=None)
def test_admitted_exactly_when_every_reference_exists(
    first: int, calls: list[tuple[int, str, str]], skip: bool
) -> None:
    """A generated line is admitted iff its outputs number on from ``first`` and every
    variable its arguments reference (as :func:`protocol.references` reads them) exists."""
    n, parts = first - 1, []
    for k, (outputs, tool, args) in enumerate(calls):
        start = n + 1 + (1 if skip and k == len(calls) - 1 else 0)  # maybe skip a number
        names = [f"R{start + j}" for j in range(outputs)]
        parts.append(f"{', '.join(names)} = {tool}({args})")
        n = start + outputs - 1
    line = "; ".join(parts)
    expected, defined, n = True, {f"R{k}" for k in range(1, first)}, first - 1
    for call in p.parse_actions(line):
        numbered = list(call.outputs) == [f"R{n + j}" for j in range(1, len(call.outputs) + 1)]
        known = all(r in defined for r in p.references(call.args))
        expected = expected and numbered and known
        defined |= set(call.outputs)
        n += len(call.outputs)
    assert accepts(ground_grammar(("Calculator", "QA"), first), line) is expected


# ---- llama.cpp agrees ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(default_gguf: Path) -> ChatLlamaCpp:
    return ChatLlamaCpp(model_path=str(default_gguf), max_tokens=16)


def _llama_accepts(model: ChatLlamaCpp, grammar: str, text: str) -> bool:
    """Whether llama.cpp's grammar sampler lets a model write exactly ``text`` and stop."""
    import llama_cpp

    pooled = model.pooled()
    sampler = llama_cpp.llama_sampler_clone(pooled.compiled_grammar(grammar))
    tokens = pooled.llm.tokenize(text.encode(), add_bos=False, special=True)
    try:
        for token in [*tokens, pooled.llm.token_eos()]:
            single = llama_cpp.llama_token_data(token, 1.0, 0.0)
            one = llama_cpp.llama_token_data_array(ctypes.pointer(single), 1, -1, False)
            llama_cpp.llama_sampler_apply(sampler, ctypes.byref(one))
            if single.logit == -math.inf:
                return False
            if token != pooled.llm.token_eos():
                llama_cpp.llama_sampler_accept(sampler, token)
        return True
    finally:
        llama_cpp.llama_sampler_free(sampler)


@pytest.mark.model
def test_llama_cpp_compiles_the_grammar_and_agrees(model: ChatLlamaCpp) -> None:
    for grammar, text, admitted in CASES:
        assert _llama_accepts(model, grammar, text) is admitted, text


def test_a_huge_variable_number_costs_a_few_rules_not_a_list() -> None:
    grammar = ground_grammar(("Calculator",), 100_000_000_001)
    assert len(grammar) < 50_000
    assert accepts(grammar, "R100000000001 = Calculator(R99999999999 + R7)")
    assert not accepts(grammar, "R100000000001 = Calculator(R100000000001)")
    assert not accepts(grammar, "R100000000001 = Calculator(R0100)")


def test_a_onepass_plan_grammar_with_a_cap_numbers_the_subgoals_and_ends_at_the_cap() -> None:
    capped = plan_grammar("onepass", max_subgoals=3)
    assert accepts(capped, "Subgoal 1: Add")
    assert accepts(capped, "Subgoal 1: Add; Subgoal 2: Halve R1; Subgoal 3: Sum")
    assert not accepts(capped, "Subgoal 1: Add; Subgoal 3: Halve R1")  # numbered in order
    assert not accepts(capped, "Subgoal 1: a; Subgoal 2: b; Subgoal 3: c; Subgoal 4: d")
    assert accepts(plan_grammar("onepass", max_subgoals=1), "Subgoal 1: Add")
    assert not accepts(plan_grammar("onepass", max_subgoals=1), "Subgoal 1: a; Subgoal 2: b")
