"""Self-consistency: K branches (greedy + sampled), executed, voted on."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from lumos_graph.agent.report import run_report
from lumos_graph.agent.state import LumosState
from lumos_graph.agent.voting import answer_key, vote
from lumos_graph.errors import ConfigError
from lumos_graph.graphs.lumos import create_lumos_agent
from tests.fakes import toy_actions


class SeededModel(BaseChatModel):
    """Plans one subgoal; grounds ``Add(2, b)`` where ``b`` depends on the call's seed."""

    grounding: dict[Any, str]
    logprobs: dict[Any, float] = {}
    calls: list[dict[str, Any]] = []
    lock: Any = threading.Lock()

    @property
    def _llm_type(self) -> str:
        return "seeded-fake"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        with self.lock:
            self.calls.append(dict(kwargs))
        seed = kwargs.get("seed")
        last = str(messages[-1].content)
        text = ("Subgoal 1: Add two numbers." if "subgoal-based plan" in last
                else self.grounding[seed])
        message = AIMessage(text, response_metadata={"logprob": self.logprobs.get(seed, -1.0)})
        return ChatResult(generations=[ChatGeneration(message=message)])


def agent(model: SeededModel, samples: int, **kwargs: Any) -> Any:
    return create_lumos_agent(model, actions=toy_actions(), mode="onepass", samples=samples,
                              **kwargs)


def test_the_answer_most_branches_agree_on_wins() -> None:
    model = SeededModel(grounding={None: "R1 = Add(2, 2)", 1: "R1 = Add(2, 3)",
                                   2: "R1 = Add(2, 3)", 3: "R1 = Add(2, 3)", 4: "R1 = Add(2, 9)"},
                        calls=[])
    out = agent(model, 5).invoke({"task": "Add two numbers."})
    assert out["status"] == "answered" and out["answer"] == "5"
    assert "3 of 5 samples agree" in out["reason"]
    assert [s["answer"] for s in out["samples"]] == ["4", "5", "5", "5", "11"]
    assert [s["chosen"] for s in out["samples"]] == [False, True, False, False, False]
    assert out["usage"]["model_calls"] == 10  # every branch's calls count
    assert out["actions"][0]["resolved_args"] == ["2", "3"]  # the chosen branch's trace
    # each branch keeps its grounding conversation (training data: data from-eval) ...
    assert [s["ground_turns"][-1]["content"] for s in out["samples"]] == [
        "R1 = Add(2, 2)", "R1 = Add(2, 3)", "R1 = Add(2, 3)", "R1 = Add(2, 3)", "R1 = Add(2, 9)"]
    # ... which the JSON report leaves out
    report = run_report(out, mode="onepass", seconds=1.0)
    assert [sorted(s) for s in report["samples"]] == [
        ["answer", "chosen", "logprob", "status", "votes"]] * 5


def test_branch_zero_is_greedy_and_the_others_sample_with_their_own_seeds() -> None:
    model = SeededModel(grounding={None: "R1 = Add(2, 2)", 8: "R1 = Add(2, 2)",
                                   9: "R1 = Add(2, 2)"}, calls=[])
    agent(model, 3, temperature=0.5, seed=7).invoke({"task": "Add."})
    sampled = sorted((c["seed"], c["temperature"]) for c in model.calls if "seed" in c)
    assert sampled == [(8, 0.5), (8, 0.5), (9, 0.5), (9, 0.5)]
    assert sum("seed" not in c and "temperature" not in c for c in model.calls) == 2


def test_a_tie_goes_to_the_greedy_branch_however_likely_the_others() -> None:
    model = SeededModel(grounding={None: "R1 = Add(2, 2)", 1: "R1 = Add(2, 3)"},
                        logprobs={None: -9.0, 1: -2.0}, calls=[])
    out = agent(model, 2).invoke({"task": "Add."})
    assert out["answer"] == "4"
    greedy, sampled = out["samples"]
    assert greedy["chosen"] and greedy["logprob"] < sampled["logprob"]


def test_with_negative_weight_a_negative_answer_counts_half_a_vote() -> None:
    def half(*answers: str) -> int:
        return vote([{"status": "answered", "answer": a} for a in answers],
                    negative_weight=0.5)[0]

    # three branches subtract the wrong way round, two get the count: the count wins
    assert half("12", "-24", "-24", "-24", "12", "-6") == 0
    # a negative answer most branches agree on still wins
    assert half("7", "-7", "-7", "-7") == 1
    # four halves tie two whole votes: the tie goes to the earliest of the tied
    assert half("-7", "-7", "-7", "-7", "7", "7") == 0
    assert half("7", "7", "-7", "-7", "-7", "-7") == 0
    # by default (every agent but the program-grounded one) every answer counts whole
    three: list[LumosState] = [{"status": "answered", "answer": a} for a in ("5", "-3", "-3")]
    chosen, summary = vote(three)
    assert chosen == 1 and [s["votes"] for s in summary] == [1, 2, 2]  # votes stay whole


def test_without_any_answer_the_greedy_branch_says_why() -> None:
    model = SeededModel(grounding={None: "R1 = Boom(1)", 1: "R1 = Boom(2)"}, calls=[])
    out = agent(model, 2).invoke({"task": "Add."})
    assert out["status"] == "failed" and out["answer"] is None
    assert "division by zero" in out["reason"]
    assert [s["votes"] for s in out["samples"]] == [0, 0]


def test_bad_input_and_settings_are_usage_errors() -> None:
    model = SeededModel(grounding={}, calls=[])
    with pytest.raises(ConfigError, match="non-empty string"):
        agent(model, 3).invoke({"task": "  "})
    assert model.calls == []
    with pytest.raises(ConfigError, match="samples"):
        agent(model, 0)
    with pytest.raises(ConfigError, match="temperature"):
        agent(model, 3, temperature=0.0)


def test_answers_agree_by_value() -> None:
    assert answer_key("1,484") == answer_key("1484.0") == answer_key("$1484") == "1484"
    assert answer_key("3/4") == answer_key("0.75")
    assert answer_key(" Paris. ") == answer_key("paris")
    chosen, summary = vote([{"status": "answered", "answer": "7", "logprob": -1.0},
                            {"status": "answered", "answer": "7.0", "logprob": -3.0},
                            {"status": "cap_reached", "answer": None}])
    assert chosen == 0 and [s["votes"] for s in summary] == [2, 2, 0]


class ProgramModel(SeededModel):
    """Plans once; writes a program whose answer depends on the call's seed."""

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        with self.lock:
            self.calls.append({"plan": "subgoal-based plan" in str(messages[-1].content),
                               **kwargs})
        if "subgoal-based plan" in str(messages[-1].content):
            text = "Subgoal 1: Add the apples; Subgoal 2: Add the pears."
        else:
            text = f"```python\nanswer = {self.grounding[kwargs.get('seed')]}\n```"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])


def test_program_branches_share_one_greedy_plan_and_vote_on_the_programs_results() -> None:
    from lumos_graph.agent.actions import ActionSet
    from lumos_graph.tools.sandbox import code_action

    model = ProgramModel(grounding={None: "2 + 2", 1: "2 + 3", 2: "1 + 4"}, calls=[])
    graph = create_lumos_agent(model, actions=ActionSet([code_action()]), grounding="program",
                               samples=3)
    out = graph.invoke({"task": "Add two numbers."})
    assert out["status"] == "answered" and out["answer"] == "5"
    assert "2 of 3 samples agree" in out["reason"]
    plans = [c for c in model.calls if c["plan"]]
    assert len(plans) == 1 and "seed" not in plans[0]  # one plan, greedy
    assert out["subgoals"] == ["Add the apples", "Add the pears."]  # once, not per branch
    assert len(out["plan_turns"]) == 2
    assert out["usage"]["model_calls"] == 4  # the plan and three programs
    assert [s["answer"] for s in out["samples"]] == ["4", "5", "5"]


def test_a_failed_shared_plan_ends_the_run_without_branches() -> None:
    from lumos_graph.agent.actions import ActionSet
    from lumos_graph.tools.sandbox import code_action

    model = ProgramModel(grounding={}, calls=[])
    graph = create_lumos_agent(model, actions=ActionSet([code_action()]), grounding="program",
                               samples=3, max_subgoals=1, use_grammar=False)
    out = graph.invoke({"task": "Add two numbers."})
    assert out["status"] == "cap_reached" and "over the cap" in out["reason"]
    assert len(model.calls) == 1


def test_the_shared_plan_counts_against_every_branch_s_model_call_cap() -> None:
    from lumos_graph.agent.actions import ActionSet
    from lumos_graph.tools.sandbox import code_action

    model = ProgramModel(grounding={None: "2 + 2", 1: "2 + 3"}, calls=[])
    graph = create_lumos_agent(model, actions=ActionSet([code_action()]), grounding="program",
                               samples=2, max_model_calls=1)
    out = graph.invoke({"task": "Add two numbers."})
    assert out["status"] == "cap_reached" and "model-call cap (1)" in out["reason"]
    assert len(model.calls) == 1 and out["usage"]["model_calls"] == 1
