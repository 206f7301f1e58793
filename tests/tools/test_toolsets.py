"""Tool-set selection, user tools, and the QA/VQA wiring of the graph, with scripted models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import StructuredTool, tool

from lumos_graph.agent.actions import Action, ActionSet, Value
from lumos_graph.agent.grammar import ground_grammar
from lumos_graph.errors import ConfigError, ToolError
from lumos_graph.graphs.lumos import create_lumos_agent
from lumos_graph.tools.qa.actions import qa_action
from lumos_graph.tools.toolsets import create_actions, parse_tool_names
from tests.fakes import scripted


def test_tool_set_names_are_checked() -> None:
    assert parse_tool_names(" maths, QA ,maths") == ["maths", "qa"]
    with pytest.raises(ConfigError, match="unknown tool set 'web'.*maths, qa, sql, vqa"):
        parse_tool_names("maths,web")
    with pytest.raises(ConfigError, match="no tool set"):
        parse_tool_names(" , ")


def test_sets_that_need_a_database_or_a_model_say_so_before_any_model_runs() -> None:
    with pytest.raises(ConfigError, match="--db"):
        create_actions("sql")
    with pytest.raises(ConfigError, match="chat model"):
        create_actions("vqa")


def test_user_tools_join_a_named_set_and_reach_prompt_and_grammar() -> None:
    @tool
    def convert_currency(amount: float, currency: str) -> str:
        """Convert an amount of euros into another currency."""
        return f"{amount * 2} {currency}"

    def word_count(text: str) -> int:
        """Count the words of a text."""
        return len(text.split())

    actions = create_actions(["maths", convert_currency, word_count])
    assert actions.names[-2:] == ("convert_currency", "word_count")
    listing = actions.listing()
    assert "convert_currency(amount, currency): Convert an amount of euros into another currency" \
        in listing
    assert "word_count(text): Count the words of a text" in listing
    grammar = ground_grammar(actions.names)
    assert '"convert_currency("' in grammar and '"word_count("' in grammar
    assert actions.get("convert_currency").executor("3", "USD") == "6.0 USD"
    assert actions.get("word_count").executor("a b c") == 3


def test_a_user_tool_error_is_an_observation_the_model_reads() -> None:
    def divide(a: int, b: int) -> float:
        """Divide a by b."""
        return a / b

    failing = StructuredTool.from_function(
        func=lambda city: (_ for _ in ()).throw(ValueError(f"no weather for {city}")),
        name="Weather", description="Today's weather in a city.")
    agent = create_lumos_agent(
        planner=scripted(["Subgoal 1: Divide; Subgoal 2: Weather"]),
        grounder=scripted(["R1 = divide(1, 0); R2 = Weather(Paris)"]),
        actions=[divide, failing])
    out = agent.invoke({"task": "Divide one by zero."})
    assert out["status"] == "failed"
    assert out["actions"][0]["error"] == "ZeroDivisionError: division by zero"


def test_the_same_action_of_two_sets_is_listed_once_but_a_clash_is_an_error() -> None:
    one = Action("Calculator", "Calculate the input formula", ("formula",), str)
    both = ActionSet([one]) + ActionSet([Action("Calculator", "Calculate the input formula",
                                                ("formula",), repr)])
    assert both.names == ("Calculator",)
    with pytest.raises(ConfigError, match="duplicate action names: Calculator"):
        _ = ActionSet([one]) + ActionSet([Action("Calculator", "Other", ("x",), str)])


def test_notes_follow_the_listing_in_the_grounding_prompt() -> None:
    actions = ActionSet([Action("SQLQuery", "Run an SQL query on the database", ("query",), str)],
                        notes="Database schema: tracks(TrackId, Name, Milliseconds)")
    assert actions.listing() == (
        "The available action list is 'SQLQuery'.\n"
        "SQLQuery(query): Run an SQL query on the database.\n"
        "Database schema: tracks(TrackId, Name, Milliseconds)"
    )


# ---- complex QA in the graph ---------------------------------------------------------------
def _qa_toys(answers: dict[str, str]) -> ActionSet:
    def knowledge(query: str) -> Value:
        return Value(f"Passage about {query}.")

    def qa(context: str, question: str) -> str:
        return answers[question.removeprefix("Question:").strip()]

    return ActionSet([
        Action("KnowledgeQuery", "Capture the relevant webpages according to the query",
               ("query",), knowledge),
        Action("QA", "Given context, answer the given query", ("context", "query"), qa),
    ])


def test_iterative_qa_grounding_lists_earlier_results_and_a_model_forms_the_answer() -> None:
    grounder = scripted([
        "R1 = KnowledgeQuery(Nile); R2 = QA([R1], Question: How long is the Nile?)",
        "R3 = KnowledgeQuery(Amazon); R4 = QA([R3], Question: How long is the Amazon?)",
        "Answer: yes.",  # the answer step, on the grounder's model
    ])
    agent = create_lumos_agent(
        planner=scripted(["Subgoal 1: Find the length of the Nile.",
                          "No, I will keep planning. Subgoal 2: Find the length of the Amazon.",
                          "Yes, I will stop planning."]),
        grounder=grounder,
        actions=_qa_toys({"How long is the Nile?": "6,650 km",
                          "How long is the Amazon?": "6,400 km"}),
        mode="iterative")
    out = agent.invoke({"task": "Is the Nile longer than the Amazon?"})
    assert out["status"] == "answered", out["reason"]
    assert out["answer"] == "yes"
    assert out["ground_turns"][2]["content"] == (
        "Subgoal to be grounded: Subgoal 2: Find the length of the Amazon. The grounding could "
        "be based on the following results: The execution result for Subgoal 1 is 6,650 km.")
    final_prompt = grounder.prompts[-1][-1].content
    assert "Task: Is the Nile longer than the Amazon?" in final_prompt
    assert "- How long is the Nile?: 6,650 km" in final_prompt
    assert "- How long is the Amazon?: 6,400 km" in final_prompt
    assert "Passage about" not in final_prompt  # retrieval results are not findings
    assert "grammar" not in grounder.call_kwargs[-1]
    assert out["usage"]["model_calls"] == 6


def test_qa_answer_step_without_an_answer_fails_with_a_reason() -> None:
    agent = create_lumos_agent(
        planner=scripted(["Subgoal 1: Find the length of the Nile."]),
        grounder=scripted(["R1 = QA([Nile], Question: How long is the Nile?)", "No answer"]),
        actions=_qa_toys({"How long is the Nile?": "6,650 km"}))
    out = agent.invoke({"task": "How long is the Nile?"})
    assert out["status"] == "failed"
    assert out["answer"] is None
    assert "do not answer" in out["reason"]


def test_the_qa_action_retries_without_context_when_the_context_has_no_answer() -> None:
    model = scripted(["no answer", "Answer: Paris."])
    action = qa_action(model)
    assert action.executor("[The Seine is a river.]", "Question: What is the capital of France?") \
        == "Paris"
    with_context, without = (p[-1].content for p in model.prompts)
    assert "Context:\nThe Seine is a river." in with_context
    assert "Context" not in without and "What is the capital of France?" in without
    assert model.call_kwargs[0]["stop"] == ["\n"]
    with pytest.raises(ToolError, match="No answer found"):
        qa_action(scripted(["no answer", "unknown"])).executor("[x]", "Question: y?")


def test_images_of_the_run_reach_only_the_actions_that_look_at_images(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def look(ref: str, question: str, *, images: list[Any]) -> str:
        seen["images"] = images
        return f"{len(images)} image(s)"

    actions = ActionSet([
        Action("VQA", "Answer a question about the given image", ("image", "question"), look,
               needs_images=True),
        Action("Echo", "Echo the text", ("text",), lambda text: text),
    ])
    agent = create_lumos_agent(planner=scripted(["Subgoal 1: Look; Subgoal 2: Echo"]),
                               grounder=scripted(["R1 = VQA([IMG], Question: What?); "
                                                  "R2 = Echo(R1)"]),
                               actions=actions)
    image = tmp_path / "a.png"
    out = agent.invoke({"task": "Look at it.", "images": [str(image), b"raw"]})
    assert seen["images"] == [str(image), b"raw"]
    assert out["answer"] == "2 image(s)"


def test_maths_only_is_the_maths_set_alone() -> None:
    from lumos_graph.tools.maths.actions import math_actions
    from lumos_graph.tools.toolsets import is_maths_only

    def twice(x: int) -> int:
        """Twice x."""
        return 2 * x

    assert is_maths_only(None) and is_maths_only("maths") and is_maths_only(" Maths ")
    assert is_maths_only(["maths"]) and is_maths_only(math_actions())
    assert not is_maths_only("maths,qa") and not is_maths_only(["maths", twice])
    assert not is_maths_only(create_actions(["maths", twice]))
    assert not is_maths_only(create_actions("qa", model=scripted([])))
