"""Scripted chat models and a small action set for graph-logic tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage

from lumos_graph.agent.actions import Action, ActionSet, Value
from lumos_graph.errors import ToolError


class ScriptedChatModel(GenericFakeChatModel):
    """Replies with the scripted lines in order and records every prompt and call kwargs."""

    prompts: list[list[BaseMessage]] = []
    call_kwargs: list[dict[str, Any]] = []
    prompt_format: str = "chat_template"
    few_shot: bool = True
    module_system: bool = False

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> Any:
        self.prompts.append(list(messages))
        self.call_kwargs.append({"stop": stop, **kwargs})
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def scripted(lines: Iterable[str], prompt_format: str = "chat_template",
             few_shot: bool = True) -> ScriptedChatModel:
    """A fake model answering ``lines`` one call at a time."""
    return ScriptedChatModel(messages=iter([AIMessage(line) for line in lines]),
                             prompts=[], call_kwargs=[], prompt_format=prompt_format,
                             few_shot=few_shot)


def _add(a: str, b: str) -> Value:
    return Value(str(int(a) + int(b)))


def _double(x: str) -> str:
    if not x.strip().lstrip("-").isdigit():
        raise ToolError(f"Double needs an integer, not {x!r}")
    return str(2 * int(x))


def _split(n: str) -> list[str]:
    value = int(n)
    return [str(value // 2), str(value - value // 2)]


def _boom(x: str) -> str:
    raise ZeroDivisionError("division by zero")


def toy_actions() -> ActionSet:
    """Add(a, b), Double(x), Split(n) -> two values, Boom(x) crashes."""
    return ActionSet([
        Action("Add", "Add two integers", ("a", "b"), _add),
        Action("Double", "Double an integer", ("x",), _double),
        Action("Split", "Split an integer in two halves", ("n",), _split),
        Action("Boom", "Always crashes", ("x",), _boom),
    ])


class RuleChatModel(GenericFakeChatModel):
    """Answers by rule: the first ``(needle, reply)`` whose needle is in the prompt wins.

    Counts its calls in ``calls``; the reply is the same however often it is asked, so it
    serves many examples and agents in any order.
    """

    rules: list[tuple[str, str]] = []
    calls: list[int] = []
    prompt_format: str = "chat_template"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> Any:
        from langchain_core.outputs import ChatGeneration, ChatResult

        self.calls.append(1)
        last = messages[-1].text
        reply = next((r for needle, r in self.rules if needle in last), "I do not know.")
        return ChatResult(generations=[ChatGeneration(message=AIMessage(reply))])


def rule_model(rules: list[tuple[str, str]]) -> RuleChatModel:
    return RuleChatModel(messages=iter([]), rules=rules, calls=[])
