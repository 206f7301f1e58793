"""The ReAct baseline (LangChain's ``create_agent`` over our actions): graph logic with a scripted
tool-calling fake model, then one run on the real default model (``@pytest.mark.model``)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from lumos_graph.agent.actions import Action, ActionSet
from lumos_graph.errors import ConfigError
from lumos_graph.graphs.react import (
    LIMIT_REASON,
    action_tool,
    create_react_agent,
    react_answer,
    react_status,
)
from tests.fakes import toy_actions


class ToolCallingFake(GenericFakeChatModel):
    """Replies with scripted AI messages; records the tools bound and every prompt."""

    bound: list[Any] = Field(default_factory=list)
    prompts: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ToolCallingFake:
        self.bound.append([convert_to_openai_tool(t) for t in tools])
        return self

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> Any:
        self.prompts.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def fake(replies: Iterable[AIMessage]) -> ToolCallingFake:
    return ToolCallingFake(messages=iter(replies))


def call(name: str, **args: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"id-{name}",
                                      "type": "tool_call"}])


def run(model: ToolCallingFake, actions: ActionSet | None = None, **kwargs: Any) -> dict[str, Any]:
    agent = create_react_agent(model, actions or toy_actions(), **kwargs)
    return agent.invoke({"messages": [HumanMessage("Compute something.")]})


def tool_messages(state: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in state["messages"] if isinstance(m, ToolMessage)]


def test_tools_run_and_the_final_text_is_the_answer() -> None:
    model = fake([call("Add", a="2", b="3"), call("Double", x="5"), AIMessage("Final answer: 10")])
    out = run(model)
    assert [m.content for m in tool_messages(out)] == ["5", "10"]
    assert react_answer(out) == "10" and react_status(out) == "answered"
    assert len(model.prompts) == 3
    assert model.prompts[0][0].type == "system"  # the system prompt leads every call


def test_every_action_becomes_a_string_argument_tool() -> None:
    model = fake([AIMessage("4")])
    run(model)
    (tools,) = model.bound
    assert [t["function"]["name"] for t in tools] == ["Add", "Double", "Split", "Boom"]
    add = tools[0]["function"]
    assert add["description"] == "Add two integers"
    assert add["parameters"] == {"type": "object", "required": ["a", "b"], "properties": {
        "a": {"type": "string"}, "b": {"type": "string"}}}


def test_tool_failures_come_back_to_the_model_as_error_messages() -> None:
    model = fake([call("Double", x="abc"), call("Boom", x="1"), call("Nope", x="1"),
                  call("Add", a="1"), AIMessage("Answer: unknown")])
    out = run(model)
    results = tool_messages(out)
    assert [m.status for m in results] == ["error"] * 4
    assert results[0].content == "Double needs an integer, not 'abc'"  # a ToolError, verbatim
    assert results[1].content == "ZeroDivisionError: division by zero"  # a crash, one line
    assert "Nope is not a valid tool" in results[2].content
    assert results[3].content == "Add expects a, b; missing b."
    assert react_answer(out) == "unknown"


def test_a_multi_value_action_returns_all_values() -> None:
    out = run(fake([call("Split", n="9"), AIMessage("done")]))
    assert tool_messages(out)[0].content == "4, 5"


def test_the_model_call_limit_ends_the_run_without_an_answer() -> None:
    model = fake(call("Add", a="1", b=str(k)) for k in itertools.count())
    out = run(model, max_model_calls=3)  # never raises GraphRecursionError
    assert len(model.prompts) == 3
    assert len(tool_messages(out)) == 3
    assert out["messages"][-1].response_metadata["finish_reason"] == LIMIT_REASON
    assert react_answer(out) is None and react_status(out) == "cap_reached"


@pytest.mark.parametrize("limit", [1, 16])
def test_the_recursion_limit_never_ends_a_run_first(limit: int) -> None:
    model = fake(call("Add", a="1", b=str(k)) for k in itertools.count())
    assert react_status(run(model, max_model_calls=limit)) == "cap_reached"
    assert len(model.prompts) == limit


def test_a_run_ending_on_a_broken_call_has_no_answer() -> None:
    broken = AIMessage("", invalid_tool_calls=[{"type": "invalid_tool_call", "name": "Add",
                                                "args": '{"a": "1', "id": "x", "error": "cut"}])
    cut = AIMessage("", invalid_tool_calls=[{"type": "invalid_tool_call", "name": "Add",
                                             "args": '{"a": "2', "id": "y", "error": "cut"}])
    model = fake([broken, cut])
    out = run(model)  # a model without a grammar gets one format error back, then fails
    assert len(model.prompts) == 2
    assert model.prompts[1][-1].text.startswith("Format error: the call of 'Add' is not valid")
    assert react_answer(out) is None and react_status(out) == "failed"
    assert "malformed again" in out["reason"]


@pytest.mark.parametrize(
    ("text", "answer"),
    [("Final answer: 42", "42"), ("answer:  Paris ", "Paris"), ("FINAL ANSWER:7", "7"),
     ("The answer: 3", "The answer: 3"), ("", None), ("  ", None)],
)
def test_answer_prefixes_are_stripped(text: str, answer: str | None) -> None:
    assert react_answer({"messages": [HumanMessage("q"), AIMessage(text)]}) == answer


def test_no_messages_means_no_answer() -> None:
    assert react_answer({"messages": []}) is None
    assert react_status({}) == "failed"


def test_a_variadic_argument_is_split_and_images_reach_vision_actions() -> None:
    seen: list[Any] = []

    def solve(*args: str) -> str:
        seen.append(args)
        return "ok"

    def look(image: str, *, images: Sequence[str]) -> str:
        seen.append((image, list(images)))
        return "a cat"

    actions = ActionSet([
        Action("Solve", "Solve equations", ("equation",), solve, variadic=True),
        Action("Look", "Look at an image", ("image",), look, needs_images=True),
    ])
    out = run(fake([call("Solve", equation="x = 1, f(a, b) = 2"), call("Look", image="1"),
                    AIMessage("cat")]), actions, images=["cat.png"])
    assert seen == [("x = 1", "f(a, b) = 2"), ("1", ["cat.png"])]
    assert react_answer(out) == "cat"
    schema = convert_to_openai_tool(action_tool(actions[0]))["function"]["parameters"]
    assert "separated by commas" in schema["properties"]["equation"]["description"]


def test_notes_of_the_action_set_reach_the_system_prompt() -> None:
    model = fake([AIMessage("ok")])
    actions = ActionSet(toy_actions(), notes="Table t(a, b).")
    run(model, actions)
    assert model.prompts[0][0].content.endswith("\n\nTable t(a, b).")


def test_a_limit_below_one_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_model_calls"):
        create_react_agent(fake([]), toy_actions(), max_model_calls=0)


# =========================================================================== real model


@pytest.mark.model
def test_react_on_the_real_model_finishes_with_a_structured_result(default_gguf: Path) -> None:
    from lumos_graph.llm.models import create_chat_model
    from lumos_graph.tools.maths.actions import math_actions

    model = create_chat_model("default", max_tokens=96)
    agent = create_react_agent(model, math_actions(), max_model_calls=3)
    out = agent.invoke({"messages": [HumanMessage("What is 17 * 23 + 4?")]})
    answer, status = react_answer(out), react_status(out)
    assert answer is None or isinstance(answer, str)
    assert status in ("answered", "cap_reached", "failed")
    assert (answer is not None) == (status == "answered")
    replies = [m for m in out["messages"] if isinstance(m, AIMessage) and m.usage_metadata]
    assert 1 <= len(replies) <= 3
    names = set(math_actions().names)
    assert all(c["name"] in names for m in replies for c in m.tool_calls)
