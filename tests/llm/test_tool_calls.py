"""Tool calling in ChatLlamaCpp: the tool prompt, the schema grammar, the parser; then the real
default model (``@pytest.mark.model``) compiling the grammars, checking what they accept, and
calling tools under them."""

from __future__ import annotations

import ctypes
import math
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field

from lumos_graph.errors import ConfigError
from lumos_graph.llm.llama import ChatLlamaCpp, chat_turns
from lumos_graph.llm.tool_calls import (
    parse_tool_output,
    resolve_tool_choice,
    schema_to_gbnf,
    tool_call_grammar,
    tools_system_text,
)


class Calculator(BaseModel):
    """Calculate an arithmetic formula."""

    formula: str = Field(description="the formula, e.g. 2*(3+4)")


class Inner(BaseModel):
    x: int


class Rich(BaseModel):
    """A tool whose arguments use every construct the grammar covers."""

    text: str
    count: int
    ratio: float | None = None
    mode: Literal["exact", "approx"] = "exact"
    tags: list[str] = []
    inner: Inner
    flag: bool = False


def weather(city: str, days: int = 1) -> str:
    """Forecast the weather of a city.

    Args:
        city: the city name
        days: how many days ahead
    """
    return "sunny"


CALC = convert_to_openai_tool(Calculator)
TOOLS = [CALC, convert_to_openai_tool(weather)]


# --------------------------------------------------------------------------- rendering


def test_tool_listing_is_the_qwen_system_text() -> None:
    assert tools_system_text([CALC]) == (
        "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        '{"type": "function", "function": {"name": "Calculator", "description": "Calculate an '
        'arithmetic formula.", "parameters": {"properties": {"formula": {"description": "the '
        'formula, e.g. 2*(3+4)", "type": "string"}}, "required": ["formula"], "type": "object"}}}'
        "\n</tools>\n\nFor each function call, return a json object with function name and "
        "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )


def _call(name: str, call_id: str = "c1", **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def test_calls_and_results_render_as_blocks_golden() -> None:
    turns = chat_turns(
        [
            SystemMessage("Be brief."),
            HumanMessage("Weather in Paris and 2+2?"),
            AIMessage("Checking.", tool_calls=[_call("weather", "a", city="Paris"),
                                                _call("Calculator", "b", formula="2+2")]),
            ToolMessage("sunny", tool_call_id="a"),
            ToolMessage("4", tool_call_id="b"),
            AIMessage("Sunny; 4."),
        ],
        [CALC],
    )
    assert turns[0] == {"role": "system", "content": "Be brief." + tools_system_text([CALC])}
    assert turns[1:] == [
        {"role": "user", "content": "Weather in Paris and 2+2?"},
        {"role": "assistant", "content": (
            "Checking.\n"
            '<tool_call>\n{"name": "weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
            '<tool_call>\n{"name": "Calculator", "arguments": {"formula": "2+2"}}\n</tool_call>'
        )},
        {"role": "user", "content": "<tool_response>\nsunny\n</tool_response>\n"
                                    "<tool_response>\n4\n</tool_response>"},
        {"role": "assistant", "content": "Sunny; 4."},
    ]


def test_tools_add_a_system_message_when_there_is_none() -> None:
    turns = chat_turns([HumanMessage("hi")], [CALC])
    assert turns[0]["role"] == "system"
    assert turns[0]["content"].startswith("You are a helpful assistant.\n\n# Tools")
    assert chat_turns([HumanMessage("hi")]) == [{"role": "user", "content": "hi"}]


# --------------------------------------------------------------------------- grammar text


def test_object_schema_golden() -> None:
    schema = {
        "type": "object",
        "properties": {"b": {"type": "integer"}, "a": {"type": "string"},
                       "c": {"enum": ["x", "y"]}},
        "required": ["a"],
    }
    assert schema_to_gbnf(schema) == (
        '("{" "\\"a\\": " string (", " "\\"b\\": " integer)? '
        '(", " "\\"c\\": " ("\\"x\\"" | "\\"y\\""))? "}")'
    )


def test_object_without_required_properties_needs_no_leading_comma() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "null"}, "b": {"type": "null"}}}
    assert schema_to_gbnf(schema) == (
        '("{" ("\\"a\\": " null (", " "\\"b\\": " null)? | "\\"b\\": " null)? "}")'
    )


def test_a_tool_without_arguments_takes_the_empty_object_only() -> None:
    assert schema_to_gbnf({"type": "object", "properties": {}}) == '"{}"'
    # an object that names no properties, or allows others, still takes any object
    assert schema_to_gbnf({"type": "object"}) == "object"
    assert schema_to_gbnf({"type": "object", "properties": {},
                           "additionalProperties": True}) == "object"


@pytest.mark.parametrize(
    ("choice", "root"),
    [("auto", "prose calls? | single"), ("none", "text"), ("any", "calls | single"),
     ("weather", "calls | single")],
)
def test_tool_choice_picks_the_root(choice: str, root: str) -> None:
    grammar = tool_call_grammar(TOOLS, choice)
    assert grammar.startswith(f"root ::= {root}\n")
    assert ("Calculator" in grammar) == (choice in ("auto", "any"))
    assert ("weather" in grammar) == (choice != "none")


@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, "auto"), ("auto", "auto"), ("none", "none"), (False, "none"), ("any", "any"),
     ("required", "any"), (True, "any"), ("weather", "weather"),
     ({"type": "function", "function": {"name": "weather"}}, "weather")],
)
def test_tool_choice_spellings(given: Any, expected: str) -> None:
    assert resolve_tool_choice(given, ["Calculator", "weather"]) == expected


def test_a_tool_choice_naming_no_tool_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="tool_choice"):
        resolve_tool_choice("search", ["Calculator"])


# --------------------------------------------------------------------------- parsing


def test_plain_text_is_content() -> None:
    parsed = parse_tool_output("  The answer is 4.\n")
    assert (parsed.content, parsed.tool_calls, parsed.invalid_tool_calls) == ("The answer is 4.",
                                                                              [], [])


def test_tagged_calls_after_text() -> None:
    parsed = parse_tool_output(
        'Let me see.\n<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n'
        '<tool_call>\n{"name": "b", "arguments": {}}\n</tool_call>'
    )
    assert parsed.content == "Let me see."
    assert [(c["name"], c["args"]) for c in parsed.tool_calls] == [("a", {"x": 1}), ("b", {})]
    assert len({c["id"] for c in parsed.tool_calls}) == 2


@pytest.mark.parametrize(
    "text",
    ['{"name": "a", "arguments": {"x": 1}}', '```json\n{"name": "a", "arguments": {"x": 1}}\n```',
     '<tool_call>\n{"name": "a", "arguments": "{\\"x\\": 1}"}\n</tool_call>',
     '<tool_call>\n{"name": "a", "arguments": {"x": 1}}'],
)
def test_bare_fenced_stringified_and_unclosed_calls(text: str) -> None:
    parsed = parse_tool_output(text)
    assert parsed.content == "" and not parsed.invalid_tool_calls
    assert [(c["name"], c["args"]) for c in parsed.tool_calls] == [("a", {"x": 1})]


def test_a_call_cut_off_is_invalid_with_its_name_and_raw_arguments() -> None:
    parsed = parse_tool_output('<tool_call>\n{"name": "Calculator", "arguments": {"formula": "2+')
    assert parsed.tool_calls == []
    (invalid,) = parsed.invalid_tool_calls
    assert (invalid["name"], invalid["args"]) == ("Calculator", '{"formula": "2+')
    assert invalid["error"]


def test_with_choice_none_json_is_just_text() -> None:
    assert parse_tool_output('{"a": 1}', "none").content == '{"a": 1}'


fragments = st.sampled_from(["<tool_call>", "</tool_call>", "\n", '{"name": ', '"a"', "{", "}",
                             ', "arguments": ', "```json\n", "\n```", '"', "1", "[", "]"])


@given(st.lists(st.one_of(fragments, st.text(max_size=4)), max_size=14).map("".join))
@settings(max_examples=300, deadline=None)
def test_parsing_garbage_never_raises(text: str) -> None:
    parsed = parse_tool_output(text)
    assert isinstance(parsed.content, str)
    assert all(isinstance(c["name"], str) and isinstance(c["args"], dict)
               for c in parsed.tool_calls)
    assert all(isinstance(c["args"], str) for c in parsed.invalid_tool_calls)


# --------------------------------------------------------------------------- chat model checks


@pytest.fixture
def fake_path(tmp_path: Path) -> str:
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 64)
    return str(path)


def test_the_lumos_format_cannot_bind_tools(fake_path: str) -> None:
    model = ChatLlamaCpp(model_path=fake_path, prompt_format="lumos")
    with pytest.raises(ConfigError, match="chat_template"):
        model.bind_tools([Calculator])


def test_bad_tool_options_fail_before_loading(fake_path: str) -> None:
    model = ChatLlamaCpp(model_path=fake_path)
    with pytest.raises(ConfigError, match="tool_choice"):
        model.bind_tools([Calculator], tool_choice="weather")
    with pytest.raises(ConfigError, match="not both"):
        model.bind_tools([Calculator]).invoke("hi", grammar='root ::= "x"')


# =========================================================================== real model


@pytest.fixture(scope="module")
def model(default_gguf: Path) -> ChatLlamaCpp:
    from lumos_graph.llm.models import create_chat_model

    return create_chat_model("default", max_tokens=96)


@pytest.mark.model
def test_rendering_equals_the_native_chat_template_with_tools(model: ChatLlamaCpp) -> None:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llm = model.pooled().llm
    native = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"], eos_token="",
                                 bos_token="")
    messages = [
        SystemMessage("Be brief."),
        HumanMessage("2+2?"),
        AIMessage("", tool_calls=[_call("Calculator", formula="2+2")]),
        ToolMessage("4", tool_call_id="c1"),
    ]
    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "Calculator",
                                              "arguments": {"formula": "2+2"}}}]},
        {"role": "tool", "content": "4"},
    ]
    expected = native(messages=turns, tools=[CALC]).prompt
    assert model.render_prompt(messages, tools=[Calculator]) == expected


SCHEMA_TOOLS = [
    Calculator, Rich, weather,
    {"type": "function", "function": {"name": "free", "description": "Any arguments.",
                                      "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "mixed", "description": "Unions and consts.",
                                      "parameters": {"type": "object", "properties": {
                                          "v": {"type": ["string", "integer"]},
                                          "k": {"const": "fixed"},
                                          "n": {"anyOf": [{"type": "number"}, {"type": "null"}]},
                                          "m": {"type": "array", "items": {"type": "object"}},
                                          "o": {"type": "object", "properties": {
                                              "deep": {"type": "array"}}}}}}},
]


@pytest.mark.model
@pytest.mark.parametrize("choice", ["auto", "none", "any", "free"])
def test_grammars_of_tool_schemas_compile_in_llama_cpp(model: ChatLlamaCpp, choice: str) -> None:
    tools = [convert_to_openai_tool(t) for t in SCHEMA_TOOLS]
    for parallel in (True, False):
        model.pooled().compiled_grammar(tool_call_grammar(tools, choice, parallel=parallel))


def _accepts(model: ChatLlamaCpp, grammar: str, text: str) -> bool:
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


def _block(name: str, args: str) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {args}}}\n</tool_call>'


WEATHER = _block("weather", '{"city": "Oslo"}')
RICH = '{"text": "a", "count": -3, "inner": {"x": 0}, "mode": "approx", "tags": ["p", "q"]}'


@pytest.mark.model
@pytest.mark.parametrize(
    ("choice", "text", "accepted"),
    [
        ("auto", "It is 4.", True),
        ("auto", "", True),
        ("auto", "x < y and <tool_cal", True),
        ("auto", f"Let me check.\n{WEATHER}", True),
        ("auto", f"{WEATHER}\n{WEATHER}", True),
        ("auto", '{"name": "weather", "arguments": {"city": "Oslo", "days": 2}}', True),
        ("auto", '```json\n{"name": "weather", "arguments": {"city": "Oslo"}}\n```', True),
        ("auto", _block("Rich", RICH), True),
        ("auto", '{"answer": 4}', False),  # text may not open like a call
        ("auto", "`4`", False),
        ("auto", "Sure: <tool_call> done", False),  # an opened block must be a call
        ("auto", _block("search", '{"q": "x"}'), False),  # no such tool
        ("auto", _block("weather", '{"days": 2}'), False),  # a required argument missing
        ("auto", _block("weather", '{"city": "Oslo", "days": "2"}'), False),  # wrong type
        ("auto", _block("weather", '{"city":"Oslo"}'), False),  # json.dumps spacing only
        ("auto", _block("Rich", RICH.replace("approx", "rough")), False),  # not in the enum
        ("any", "It is 4.", False),
        ("any", WEATHER, True),
        ("Calculator", WEATHER, False),
        ("none", '{"answer": 4}', True),
        ("none", WEATHER, False),
    ],
)
def test_what_the_grammar_accepts(
    model: ChatLlamaCpp, choice: str, text: str, accepted: bool
) -> None:
    tools = [convert_to_openai_tool(t) for t in (Calculator, Rich, weather)]
    assert _accepts(model, tool_call_grammar(tools, choice), text) is accepted


@pytest.mark.model
def test_one_call_only_without_parallel_calls(model: ChatLlamaCpp) -> None:
    grammar = tool_call_grammar(TOOLS, "any", parallel=False)
    assert _accepts(model, grammar, WEATHER)
    assert not _accepts(model, grammar, f"{WEATHER}\n{WEATHER}")


@pytest.mark.model
@pytest.mark.parametrize("question", ["What is 23*19?", "Say hello.", "Compute (1234 - 5) / 7."])
def test_a_forced_call_has_schema_valid_arguments(model: ChatLlamaCpp, question: str) -> None:
    reply = model.bind_tools([Calculator, weather], tool_choice="any").invoke(question)
    assert reply.tool_calls and not reply.invalid_tool_calls
    for call in reply.tool_calls:
        assert call["name"] in ("Calculator", "weather")
        if call["name"] == "Calculator":
            Calculator.model_validate(call["args"])
        else:
            assert isinstance(call["args"]["city"], str)


@pytest.mark.model
def test_a_named_choice_calls_that_tool(model: ChatLlamaCpp) -> None:
    reply = model.bind_tools([Calculator, Rich], tool_choice="Rich").invoke("Make up an example.")
    assert [c["name"] for c in reply.tool_calls] == ["Rich"]
    Rich.model_validate(reply.tool_calls[0]["args"])


@pytest.mark.model
@pytest.mark.parametrize("question", ["What is 17*23?", "What is the capital of France?"])
def test_auto_choice_answers_in_text_or_calls_validly(model: ChatLlamaCpp, question: str) -> None:
    reply = model.bind_tools([Calculator]).invoke(question)
    assert isinstance(reply.content, str)
    assert reply.content or reply.tool_calls
    for call in reply.tool_calls:
        Calculator.model_validate(call["args"])
    assert reply.response_metadata["finish_reason"] == "stop"


@pytest.mark.model
def test_a_conversation_with_tool_results_continues(model: ChatLlamaCpp) -> None:
    reply = model.bind_tools([Calculator]).invoke([
        HumanMessage("What is 23*19?"),
        AIMessage("", tool_calls=[_call("Calculator", formula="23*19")]),
        ToolMessage("437", tool_call_id="c1"),
    ])
    assert isinstance(reply, AIMessage) and reply.usage_metadata
    assert reply.content or reply.tool_calls or reply.invalid_tool_calls


@pytest.mark.model
def test_streaming_with_tools_yields_the_whole_message(model: ChatLlamaCpp) -> None:
    bound = model.bind_tools([Calculator], tool_choice="any")
    chunks = list(bound.stream("What is 2+2?"))
    assert len(chunks) == 1
    (chunk,) = chunks
    assert [c["name"] for c in chunk.tool_calls] == ["Calculator"]
    assert chunk.usage_metadata and chunk.response_metadata["finish_reason"] == "stop"


@pytest.mark.model
def test_a_call_cut_off_by_max_tokens_is_invalid(model: ChatLlamaCpp) -> None:
    reply = model.bind_tools([Calculator], tool_choice="any").invoke("What is 2+2?", max_tokens=6)
    assert reply.response_metadata["finish_reason"] == "length"
    assert reply.tool_calls == [] and len(reply.invalid_tool_calls) == 1


@pytest.mark.model
def test_structured_output_comes_for_free(model: ChatLlamaCpp) -> None:
    result = model.with_structured_output(Inner).invoke("Give me x = 7.")
    assert isinstance(result, Inner)


@pytest.mark.model
def test_langchain_tools_bind_and_their_calls_run(model: ChatLlamaCpp) -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    reply = model.bind_tools([add], tool_choice="any").invoke("Add 2 and 40.")
    results = [add.invoke(call) for call in reply.tool_calls]
    assert results and all(isinstance(message, ToolMessage) for message in results)
