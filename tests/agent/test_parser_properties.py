"""Arbitrary model text never crashes the parser or the graph: it parses or becomes an error."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lumos_graph.agent import protocol as p
from lumos_graph.graphs.lumos import create_lumos_agent
from tests.fakes import scripted, toy_actions

# Text biased towards protocol fragments, so the interesting near-misses are generated often.
fragments = st.sampled_from([
    "Subgoal 1: ", "Subgoal ", "; ", "R1 = ", "R2, R3 = ", "Output = ", "Add(", "Double(", ")",
    "(", "[", "]", ", ", "Yes, I will stop planning.", "No, I will keep planning. ", "\n", "=",
    "R10", "'", '"', "2", "x",
])
model_text = st.one_of(st.text(max_size=80),
                       st.lists(st.one_of(fragments, st.text(max_size=5)), max_size=12).map("".join))


@given(model_text)
@settings(max_examples=300, deadline=None)
def test_parsers_return_or_raise_parse_error(text: str) -> None:
    for parse in (p.parse_plan, p.parse_decision, p.parse_actions):
        try:
            result = parse(text)
        except p.ParseError as exc:
            assert exc.raw in text  # the error carries the raw model text
            continue
        if parse is p.parse_actions:  # execute re-parses each rendered call: it must round-trip
            assert all(p.parse_actions(c.render()) == [c] for c in result)
        elif parse is p.parse_plan:
            assert result and all(s.text for s in result)


@given(model_text, st.dictionaries(st.from_regex(r"R[1-9][0-9]?", fullmatch=True),
                                   st.text(max_size=10), max_size=4))
@settings(max_examples=200, deadline=None)
def test_substitution_and_splitting_are_total(text: str, values: dict[str, str]) -> None:
    out = p.substitute(text, values, expression=True)
    assert isinstance(out, str)
    assert all(isinstance(a, str) for a in p.split_args(text, None))
    assert len(p.split_args(text, 2)) <= 2


@given(model_text, model_text)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_graph_never_raises_on_garbage(plan_text: str, ground_text: str) -> None:
    for mode in ("onepass", "iterative"):
        agent = create_lumos_agent(planner=scripted([plan_text] * 20),
                                   grounder=scripted([ground_text] * 20),
                                   actions=toy_actions(), mode=mode, max_model_calls=6)
        out = agent.invoke({"task": "t"})
        assert out["status"] in ("answered", "failed", "cap_reached")
        if out["status"] != "answered":
            assert out["reason"]
