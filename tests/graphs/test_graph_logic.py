"""Graph logic of both LUMOS formulations with scripted fake chat models."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from lumos_graph.agent.actions import Action, ActionSet
from lumos_graph.errors import ToolError
from lumos_graph.graphs.lumos import create_lumos_agent
from tests.fakes import scripted, toy_actions


def run(planner_lines: list[str], grounder_lines: list[str], **kwargs: Any) -> dict[str, Any]:
    agent = create_lumos_agent(planner=scripted(planner_lines), grounder=scripted(grounder_lines),
                               actions=toy_actions(), **kwargs)
    return agent.invoke({"task": "Compute something."})


def test_onepass_plans_grounds_executes_and_answers() -> None:
    out = run(["Subgoal 1: Add 2 and 3; Subgoal 2: Double it"],
              ["R1 = Add(2, 3); R2 = Double(R1)"], mode="onepass")
    assert out["status"] == "answered"
    assert out["answer"] == "10"
    assert out["subgoals"] == ["Add 2 and 3", "Double it"]
    assert [a["resolved_args"] for a in out["actions"]] == [["2", "3"], ["5"]]
    assert out["usage"]["model_calls"] == 2


def test_a_onepass_subgoal_written_twice_word_for_word_is_grounded_once() -> None:
    out = run(["Subgoal 1: Add 2 and 3; Subgoal 2: Double it; Subgoal 3: Double it"],
              ["R1 = Add(2, 3); R2 = Double(R1)"], mode="onepass")
    assert out["subgoals"] == ["Add 2 and 3", "Double it"]
    assert "Subgoal 3" not in out["ground_turns"][0]["content"]
    assert out["answer"] == "10"


def test_iterative_feeds_each_result_back_until_stop() -> None:
    out = run(["Subgoal 1: Add 2 and 3.", "No, I will keep planning. Subgoal 2: Double it.",
               "Yes, I will stop planning."],
              ["R1 = Add(2, 3)", "R2 = Double(R1)"], mode="iterative")
    assert out["status"] == "answered"
    assert out["answer"] == "10"
    assert [t["content"] for t in out["plan_turns"] if t["role"] == "user"][1:] == [
        "The executed result for Subgoal 1 is 5. Should we stop planning?",
        "The executed result for Subgoal 2 is 10. Should we stop planning?",
    ]
    assert out["ground_turns"][2]["content"] == "Subgoal to be grounded: Subgoal 2: Double it."
    assert [a["subgoal"] for a in out["actions"]] == [1, 2]
    assert out["usage"]["model_calls"] == 5


def test_a_planner_that_never_stops_ends_at_the_model_call_cap() -> None:
    planner = [f"No, I will keep planning. Subgoal {k}: Double again ({k})." for k in range(1, 40)]
    planner[0] = "Subgoal 1: Add."
    grounder = ["R1 = Add(1, 1)"] + [f"R{k} = Double(R{k - 1})" for k in range(2, 40)]
    out = run(planner, grounder, mode="iterative", max_model_calls=7, max_subgoals=100)
    assert out["status"] == "cap_reached"
    assert "model-call cap (7)" in out["reason"]
    assert out["usage"]["model_calls"] == 7
    assert out.get("answer") is None


def test_subgoal_cap_ends_the_iterative_loop() -> None:
    planner = ["Subgoal 1: Add."] + [
        f"No, I will keep planning. Subgoal {k}: Double." for k in range(2, 10)]
    grounder = ["R1 = Add(1, 1)"] + [f"R{k} = Double(R{k - 1})" for k in range(2, 10)]
    out = run(planner, grounder, mode="iterative", max_subgoals=3)
    assert out["status"] == "cap_reached"
    assert len(out["subgoals"]) == 3
    assert "subgoal cap (3)" in out["reason"]


def test_action_cap_stops_execution() -> None:
    out = run(["Subgoal 1: Many steps"],
              ["R1 = Add(1, 1); R2 = Double(R1); R3 = Double(R2); R4 = Double(R3)"],
              mode="onepass", max_actions=2)
    assert out["status"] == "cap_reached"
    assert len(out["actions"]) == 2


def test_tool_errors_become_observations_fed_back_to_the_planner() -> None:
    out = run(["Subgoal 1: Double a word.", "No, I will keep planning. Subgoal 2: Add.",
               "Yes, I will stop planning."],
              ["R1 = Double(abc)", "R2 = Add(2, 2)"], mode="iterative")
    assert out["actions"][0]["error"] == "Double needs an integer, not 'abc'"
    assert out["plan_turns"][2]["content"] == (
        "The executed result for Subgoal 1 is Error: Double needs an integer, not 'abc'. "
        "Should we stop planning?")
    assert out["status"] == "answered"
    assert out["answer"] == "4"


def test_unknown_action_crash_and_undefined_variable_are_observations() -> None:
    out = run(["Subgoal 1: Go"], ["R1 = Fly(home)"], mode="onepass")
    assert out["status"] == "failed"
    assert out["actions"][0]["error"].startswith("Unknown action 'Fly'. The available actions")
    out = run(["Subgoal 1: Go"], ["R1 = Boom(1)"], mode="onepass")
    assert out["actions"][0]["error"] == "ZeroDivisionError: division by zero"
    out = run(["Subgoal 1: Go"], ["R2 = Double(R1)"], mode="onepass")
    assert out["actions"][0]["error"] == "R1 is not defined yet."
    out = run(["Subgoal 1: Go"], ["R1 = Add(1)"], mode="onepass")
    assert out["actions"][0]["error"] == "Add expects 2 arguments: Add(a, b)."


def test_first_error_stops_the_rest_of_the_line() -> None:
    out = run(["Subgoal 1: Go"], ["R1 = Double(x); R2 = Add(1, 2)"], mode="onepass")
    assert [a["tool"] for a in out["actions"]] == ["Double"]
    assert out["status"] == "failed"


def test_unparseable_grounding_is_an_observation_and_planning_goes_on() -> None:
    out = run(["Subgoal 1: Go.", "No, I will keep planning. Subgoal 2: Add.",
               "Yes, I will stop planning."],
              ["I would add the numbers", "R1 = Add(2, 5)"], mode="iterative")
    assert out["actions"][0]["error"].startswith("Could not parse the grounded actions")
    assert out["answer"] == "7"


def test_unparseable_plan_fails_with_a_reason() -> None:
    out = run(["I don't know"], [], mode="onepass")
    assert out["status"] == "failed"
    assert "not a plan" in out["reason"]
    assert out["errors"]


def test_several_outputs_bind_in_order_and_numbers_continue() -> None:
    out = run(["Subgoal 1: Split 9.", "No, I will keep planning. Subgoal 2: Add the halves.",
               "Yes, I will stop planning."],
              ["R1, R2 = Split(9)", "R3 = Add(R1, R2)"], mode="iterative")
    assert out["variables"] == {"R1": "4", "R2": "5", "R3": "9"}
    assert out["plan_turns"][2]["content"] == (
        "The executed result for Subgoal 1 is 4, 5. Should we stop planning?")


def test_stop_before_any_subgoal_fails() -> None:
    out = run(["Yes, I will stop planning."], [], mode="iterative")
    assert out["status"] == "failed"
    assert out["reason"] == "the planner stopped before any subgoal"


def test_a_failing_model_ends_the_run_without_raising() -> None:
    out = run([], [], mode="onepass")  # the fake raises StopIteration on its first call
    assert out["status"] == "failed"
    assert out["reason"].startswith("the planner failed")


def test_instruct_models_get_few_shot_examples_and_stop_at_newline() -> None:
    planner = scripted(["Subgoal 1: Add"])
    agent = create_lumos_agent(planner=planner, grounder=scripted(["R1 = Add(1, 2)"]),
                               actions=toy_actions(), mode="onepass")
    agent.invoke({"task": "Add 1 and 2."})
    roles = [m.type for m in planner.prompts[0]]
    assert roles[0] == "system"
    assert planner.prompts[0][-1].content.endswith("Task: Add 1 and 2.; Initial Environment "
                                                   "Description: None.")
    assert planner.call_kwargs[0]["stop"] == ["\n"]
    assert "grammar" not in planner.call_kwargs[0]  # a generic model gets no GBNF


def test_lumos_format_models_get_the_bare_protocol() -> None:
    planner = scripted(["Subgoal 1: Add"], prompt_format="lumos")
    agent = create_lumos_agent(planner=planner, grounder=scripted(["R1 = Add(1, 2)"]),
                               actions=toy_actions(), mode="onepass")
    agent.invoke({"task": "Add 1 and 2."})
    assert [m.type for m in planner.prompts[0]] == ["human"]


def test_models_trained_on_the_protocol_get_no_few_shot_examples() -> None:
    grounder = scripted(["R1 = Add(1, 2)"], few_shot=False)
    agent = create_lumos_agent(planner=scripted(["Subgoal 1: Add"], few_shot=False),
                               grounder=grounder, actions=toy_actions(), mode="onepass")
    agent.invoke({"task": "Add 1 and 2."})
    assert [m.type for m in grounder.prompts[0]] == ["human"]
    assert grounder.prompts[0][0].content.startswith("Please ground the given subgoal")


def test_our_trained_modules_are_told_their_module_and_formulation() -> None:
    for mode, plan in (("onepass", ["Subgoal 1: Add"]),
                       ("iterative", ["Subgoal 1: Add", "Yes, I will stop planning."])):
        planner = scripted(plan, few_shot=False)
        planner.module_system = True
        grounder = scripted(["R1 = Add(1, 2)"], few_shot=False)
        grounder.module_system = True
        agent = create_lumos_agent(planner=planner, grounder=grounder, actions=toy_actions(),
                                   mode=mode)
        assert agent.invoke({"task": "Add 1 and 2."})["answer"] == "3"
        label = "OnePass" if mode == "onepass" else "Iterative"
        for model, module in ((planner, "planning"), (grounder, "grounding")):
            first = model.prompts[0]
            assert [m.type for m in first] == ["system", "human"]
            assert first[0].content.startswith(
                f"You are the {module} module of a LUMOS agent, {label} formulation")


def test_a_qa_planner_that_repeats_a_subgoal_stops_and_the_answer_reads_the_findings() -> None:
    # LUMOS QA (a QA action, so an answer step): three identical subgoals stop planning, as
    # above, but what the earlier subgoals found is still read and the reason says why
    qa = ActionSet([Action("QA", "Answer a question", ("question",), lambda q: "yes")])
    planner = ["Subgoal 1: Ask."] + [
        f"No, I will keep planning. Subgoal {k}: Ask." for k in range(2, 10)]
    grounder = ["R1 = QA(Is it?)", "R2 = QA(Is it?)", "Yes"]
    agent = create_lumos_agent(planner=scripted(planner), grounder=scripted(grounder),
                               actions=qa, mode="iterative")
    out = agent.invoke({"task": "Is it?"})
    assert (out["status"], out["answer"]) == ("answered", "Yes")
    assert out["reason"] == ("answered from the intermediate results (the planner repeated the "
                             "same subgoal 3 times; planning stopped there)")
    assert len(out["subgoals"]) == 2 and out["usage"]["model_calls"] == 6


def test_a_qa_planner_that_repeats_a_subgoal_before_finding_anything_fails() -> None:
    def unanswerable(question: str) -> str:
        raise ToolError("no passage answers it")

    qa = ActionSet([Action("QA", "Answer a question", ("question",), unanswerable)])
    planner = ["Subgoal 1: Ask."] + [
        f"No, I will keep planning. Subgoal {k}: Ask." for k in range(2, 10)]
    agent = create_lumos_agent(planner=scripted(planner),
                               grounder=scripted(["R1 = QA(Is it?)", "R2 = QA(Is it?)"]),
                               actions=qa, mode="iterative")
    out = agent.invoke({"task": "Is it?"})
    assert (out["status"], out["reason"]) == (
        "failed", "the planner repeated the same subgoal 3 times")


def test_checkpointer_threads_and_stream_updates() -> None:
    agent = create_lumos_agent(planner=scripted(["Subgoal 1: Add"]),
                               grounder=scripted(["R1 = Add(20, 22)"]), actions=toy_actions(),
                               mode="onepass", checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t1"}}
    nodes = [next(iter(u)) for u in agent.stream({"task": "x"}, config, stream_mode="updates")]
    assert nodes == ["plan", "ground", "execute", "answer"]
    assert agent.get_state(config).values["answer"] == "42"


def test_a_repeated_subgoal_ends_the_run_as_agenttuning_does() -> None:
    planner = ["Subgoal 1: Double."] + [
        f"No, I will keep planning. Subgoal {k}: Double." for k in range(2, 10)]
    grounder = ["R1 = Double(1)"] + [f"R{k} = Double(R{k - 1})" for k in range(2, 10)]
    out = run(planner, grounder, mode="iterative")
    assert out["status"] == "failed"
    assert out["reason"] == "the planner repeated the same subgoal 3 times"
    assert len(out["subgoals"]) == 2
    assert out["usage"]["model_calls"] == 5


def test_exactly_max_subgoals_then_stop_is_answered() -> None:
    out = run(["Subgoal 1: Add.", "No, I will keep planning. Subgoal 2: Double.",
               "Yes, I will stop planning."],
              ["R1 = Add(1, 2)", "R2 = Double(R1)"], mode="iterative", max_subgoals=2)
    assert out["status"] == "answered"
    assert out["answer"] == "6"


def test_every_final_state_has_an_answer_key() -> None:
    out = run(["no plan here"], [], mode="onepass")
    assert out["status"] == "failed"
    assert out["answer"] is None


def test_reusing_a_finished_thread_is_a_clear_usage_error() -> None:
    import pytest

    from lumos_graph.errors import ConfigError

    agent = create_lumos_agent(planner=scripted(["Subgoal 1: Add", "Subgoal 1: Add"]),
                               grounder=scripted(["R1 = Add(20, 22)"] * 2),
                               actions=toy_actions(), checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    assert agent.invoke({"task": "first"}, config)["answer"] == "42"
    with pytest.raises(ConfigError, match="new thread_id"):
        agent.invoke({"task": "second"}, config)


def test_graph_input_without_a_task_string_is_a_usage_error() -> None:
    import pytest

    from lumos_graph.errors import ConfigError

    agent = create_lumos_agent(planner=scripted([]), grounder=scripted([]),
                               actions=toy_actions())
    for bad in ({"task": 5}, {}, {"task": "  "}):
        with pytest.raises(ConfigError, match="'task'"):
            agent.invoke(bad)


def test_models_answering_in_content_blocks_are_read_as_text() -> None:
    from langchain_core.messages import AIMessage

    from tests.fakes import ScriptedChatModel

    planner = ScriptedChatModel(
        messages=iter([AIMessage([{"type": "text", "text": "Subgoal 1: Add"}])]),
        prompts=[], call_kwargs=[])
    agent = create_lumos_agent(planner=planner, grounder=scripted(["R1 = Add(1, 1)"]),
                               actions=toy_actions())
    out = agent.invoke({"task": "t"})
    assert out["subgoals"] == ["Add"]
    assert out["answer"] == "2"


def test_caps_end_the_run_even_under_a_small_recursion_limit() -> None:
    # some LangGraph 1.x releases default to 25 supersteps; the graph sets its own limit
    planner = ["Subgoal 1: Add."] + [
        f"No, I will keep planning. Subgoal {k}: Double ({k})." for k in range(2, 40)]
    grounder = ["R1 = Add(1, 1)"] + [f"R{k} = Double(R{k - 1})" for k in range(2, 40)]
    agent = create_lumos_agent(planner=scripted(planner), grounder=scripted(grounder),
                               actions=toy_actions(), mode="iterative", max_model_calls=30,
                               max_subgoals=30)
    out = agent.invoke({"task": "t"})
    assert out["status"] == "cap_reached"
    assert agent.config["recursion_limit"] > 3 * 30


def test_bad_caps_are_usage_errors() -> None:
    import pytest

    from lumos_graph.agent.nodes import Caps
    from lumos_graph.errors import ConfigError

    with pytest.raises(ConfigError):
        Caps(max_repeats=1)
    with pytest.raises(ConfigError):
        create_lumos_agent(planner=scripted([]), grounder=scripted([]), actions=toy_actions(),
                           max_model_calls=0)


def test_default_maths_agents_load_the_preset_their_grounding_needs(
    monkeypatch: Any,
) -> None:
    from lumos_graph.llm import models

    asked: list[str] = []

    def fake_create(spec: str = "default", **_: Any) -> Any:
        asked.append(spec)
        return scripted(["Subgoal 1: Add"])

    monkeypatch.setattr(models, "create_chat_model", fake_create)
    create_lumos_agent()
    create_lumos_agent("default", mode="iterative")
    create_lumos_agent(planner="default", grounder="qwen2.5-coder-0.5b")

    def twice(x: int) -> int:
        """Twice x."""
        return 2 * x

    create_lumos_agent(actions=["maths", twice])
    create_lumos_agent("smollm2-135m")
    trained, base = models.TRAINED_PRESET, models.DEFAULT_PRESET
    # the default OnePass agent grounds into programs, with user tools too (the program calls
    # them): the plain model plans and writes them; the grounder is created before the
    # planner when both are given
    assert asked == [base, trained, base, trained, base, "smollm2-135m"]


def test_a_repeated_call_is_not_run_again_and_the_planner_is_told() -> None:
    calls: list[tuple[str, str]] = []
    actions = toy_actions()
    add = actions.get("Add")
    assert add is not None
    original = add.executor

    def counting(a: str, b: str) -> Any:
        calls.append((a, b))
        return original(a, b)

    object.__setattr__(add, "executor", counting)
    agent = create_lumos_agent(
        planner=scripted(["Subgoal 1: Add 2 and 3.",
                          "No, I will keep planning. Subgoal 2: Add them again.",
                          "Yes, I will stop planning."]),
        grounder=scripted(["R1 = Add(2, 3)", "R2 = Add(2,  3)"]), actions=actions,
        mode="iterative")
    out = agent.invoke({"task": "Compute something."})
    assert calls == [("2", "3")]  # the second, identical call was not executed
    second = out["actions"][1]
    assert second["duplicate"] is True and second["error"] is None
    assert second["result"] == ["5"] and out["variables"]["R2"] == "5"
    feedback = [t["content"] for t in out["plan_turns"] if t["role"] == "user"][2]
    assert "You already called Add with these arguments; it was not run again" in feedback
    assert out["status"] == "answered" and out["answer"] == "5"
    assert out["usage"]["model_calls"] == 5  # the repeated turn still counts


def test_three_identical_grounder_outputs_end_the_run_as_agenttuning_does() -> None:
    out = run(["Subgoal 1: Double 1.", "No, I will keep planning. Subgoal 2: Double it.",
               "No, I will keep planning. Subgoal 3: Double it more."],
              ["R1 = Double(x)", "R1 = Double(x)", "R1 = Double(x)"], mode="iterative")
    assert out["status"] == "failed"
    assert "grounder" in out["reason"] and "3" in out["reason"]
