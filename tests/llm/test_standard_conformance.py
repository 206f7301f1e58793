"""ChatLlamaCpp against langchain-tests' standard suites: ``ChatModelUnitTests`` (no model runs)
and ``ChatModelIntegrationTests`` (the real default GGUF; marked ``model``: run under the model
lock). Cases the standard suites skip or this model cannot meet are listed with reasons below.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.needs import need

need("langchain_tests")

from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from lumos_graph.errors import ModelNotFoundError
from lumos_graph.llm.llama import ChatLlamaCpp
from lumos_graph.llm.models import DEFAULT_PRESET, resolve_model


def _default_path() -> str:
    try:
        return str(resolve_model(DEFAULT_PRESET).path)
    except ModelNotFoundError as error:
        pytest.skip(f"default model unavailable: {error}")


class _Settings:
    @property
    def chat_model_class(self) -> type[ChatLlamaCpp]:
        return ChatLlamaCpp

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model_path": _default_path(), "n_ctx": 4096}

    @property
    def has_tool_calling(self) -> bool:
        return True  # bind_tools: JSON tool calls under a grammar

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return False  # with_structured_output(method="json_mode") is not offered

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False  # one GGUF per instance; a per-call model= cannot switch it


class TestChatLlamaCppUnit(_Settings, ChatModelUnitTests):
    """The standard unit suite (construction, parameters, tool binding, serialization)."""


@pytest.mark.model
class TestChatLlamaCppIntegration(_Settings, ChatModelIntegrationTests):
    """The standard integration suite on the real default model (its async cases run through
    pytest-asyncio, ``asyncio_mode = "auto"`` in pyproject.toml)."""


def test_tool_calls_in_list_content_render_once_from_tool_calls() -> None:
    """Anthropic-style histories (the standard suite's list-content case): a ``tool_use``
    block is not text; the call is rendered from ``tool_calls``, once."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    from lumos_graph.llm.llama import chat_turns

    call = {"id": "c1", "name": "add", "args": {"a": "1", "b": "2"}}
    history = [
        HumanMessage("What is 1 + 2"),
        AIMessage(content=[{"type": "text", "text": "let me add"},
                           {"type": "tool_use", "id": "c1", "name": "add", "input": call["args"]}],
                  tool_calls=[{"type": "tool_call", **call}]),
        ToolMessage('{"result": 3}', tool_call_id="c1"),
    ]
    assert chat_turns(history) == [
        {"role": "user", "content": "What is 1 + 2"},
        {"role": "assistant", "content": 'let me add\n<tool_call>\n{"name": "add", "arguments": '
                                         '{"a": "1", "b": "2"}}\n</tool_call>'},
        {"role": "user", "content": '<tool_response>\n{"result": 3}\n</tool_response>'},
    ]
