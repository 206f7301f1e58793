"""Tool calling for local models: the tool prompt, the GBNF grammar of calls, and their parser.

The format is the Hermes/Qwen2.5 one, which many small instruct models were trained on::

    <tool_call>
    {"name": "Calculator", "arguments": {"formula": "2+2"}}
    </tool_call>

An assistant turn is optional text followed by zero or more such blocks, one per line; tool
results come back in a user turn as ``<tool_response>\\n...\\n</tool_response>`` blocks. The
tool list is appended to the system message. For Qwen2.5 this is byte for byte what its chat
template renders when given ``tools=``; for other templates it is plain text, so any chat
template works.

Small models often drop the tags and answer with the bare call JSON, or with it in a
```` ```json ```` fence (Qwen2.5-Coder-0.5B does, every time); llama.cpp's own Hermes parser
accepts these too. So a whole reply may also be one call in either form. To keep such replies
calls, free text may not start with ``{`` or a backtick, nor contain ``<tool_call>``.

The grammar (:func:`tool_call_grammar`) makes every call valid JSON whose name is a bound tool
and whose arguments follow that tool's JSON schema, spaced exactly as ``json.dumps`` spaces
them, so a call re-renders on later turns as the model wrote it. Delimiters are defined once
below; the renderers, the grammar and the parser are all built from them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from string import Template
from typing import Any

from langchain_core.messages import InvalidToolCall, ToolCall

from lumos_graph.errors import ConfigError

__all__ = [
    "CALL_CLOSE",
    "CALL_OPEN",
    "DEFAULT_SYSTEM",
    "ParsedOutput",
    "ToolChoice",
    "format_assistant",
    "format_call",
    "format_tool_responses",
    "parse_tool_output",
    "resolve_tool_choice",
    "schema_to_gbnf",
    "tool_call_grammar",
    "tools_system_text",
]

ToolChoice = str  # "auto", "none", "any" or a tool name, after resolve_tool_choice

# ---- delimiters (shared by the renderers, the grammar and the parser) ------------------------
CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
RESPONSE_OPEN = "<tool_response>"
RESPONSE_CLOSE = "</tool_response>"
CALL_JSON_HEAD = '{"name": '  # then the JSON name, ARGS_KEY, the arguments object, "}"
ARGS_KEY = ', "arguments": '
FENCE_OPEN = "```json\n"  # a whole reply may be one call in a fence, or bare
FENCE_CLOSE = "\n```"

DEFAULT_SYSTEM = "You are a helpful assistant."
TOOLS_SYSTEM = Template(
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
    "$tools\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# --------------------------------------------------------------------------- rendering


def tools_system_text(tools: Sequence[Mapping[str, Any]]) -> str:
    """The text appended to the system message to list ``tools`` (OpenAI tool dicts)."""
    return TOOLS_SYSTEM.substitute(tools="".join("\n" + _json(tool) for tool in tools))


def format_call(name: str, args: Mapping[str, Any]) -> str:
    """One tool call block, exactly as the grammar lets a model write it."""
    return f"{CALL_OPEN}\n{CALL_JSON_HEAD}{_json(name)}{ARGS_KEY}{_json(args)}}}\n{CALL_CLOSE}"


def format_assistant(content: str, calls: Iterable[Mapping[str, Any]]) -> str:
    """An assistant turn's text: its content, then one block per call (``name``, ``args``)."""
    blocks = [format_call(call["name"], call["args"]) for call in calls]
    return "\n".join([content, *blocks] if content else blocks)


def format_tool_responses(results: Iterable[str]) -> str:
    """The user turn carrying the results of consecutive tool messages."""
    return "\n".join(f"{RESPONSE_OPEN}\n{result}\n{RESPONSE_CLOSE}" for result in results)


# --------------------------------------------------------------------------- tool choice


def resolve_tool_choice(choice: Any, names: Sequence[str]) -> ToolChoice:
    """Normalize LangChain's ``tool_choice`` to ``"auto"``, ``"none"``, ``"any"`` or a name.

    Accepts ``None``/``"auto"``, ``"none"``/``False``, ``"any"``/``"required"``/``True``, a
    tool name, or ``{"type": "function", "function": {"name": ...}}``.

    Raises:
        ConfigError: an unknown tool name or an unsupported value.
    """
    if choice is None or choice == "auto":
        return "auto"
    if choice is False or choice == "none":
        return "none"
    if choice is True or choice in ("any", "required"):
        return "any"
    if isinstance(choice, Mapping):
        choice = choice.get("function", {}).get("name") or choice.get("name")
    if isinstance(choice, str) and choice in names:
        return choice
    raise ConfigError(f"tool_choice {choice!r} is not 'auto', 'none', 'any' or one of {names}")


# --------------------------------------------------------------------------- grammar

# JSON building blocks, spaced like json.dumps (", " and ": ").
_JSON_RULES = r"""
string ::= "\"" char* "\""
char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
integer ::= "-"? ("0" | [1-9] [0-9]{0,15})
number ::= integer ("." [0-9]{1,15})? ([eE] [-+]? [0-9]{1,3})?
boolean ::= "true" | "false"
null ::= "null"
value ::= object | array | string | number | boolean | null
object ::= "{" (string ": " value (", " string ": " value)*)? "}"
array ::= "[" (value (", " value)*)? "]"
""".strip()

_TYPE_RULES = {"string": "string", "integer": "integer", "number": "number",
               "boolean": "boolean", "null": "null"}


def _lit(text: str) -> str:
    """A GBNF string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def schema_to_gbnf(schema: Mapping[str, Any]) -> str:
    """A GBNF expression for JSON values that follow ``schema``.

    Covers what tool schemas use: ``type`` (one or a list), ``enum``, ``const``, ``anyOf`` /
    ``oneOf``, objects with ``properties`` and ``required`` (properties in schema order, the
    optional ones omissible), arrays with ``items``; an object with empty ``properties`` (a
    tool without arguments) is ``{}``. Anything else (a schema without a type, an object that
    names no properties) accepts any JSON value of that kind. The expression refers to
    the rules of ``_JSON_RULES``, which :func:`tool_call_grammar` includes.
    """
    if "const" in schema:
        return _lit(_json(schema["const"]))
    if "enum" in schema:
        return "(" + " | ".join(_lit(_json(v)) for v in schema["enum"]) + ")"
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives:
        return "(" + " | ".join(schema_to_gbnf(s) for s in alternatives) + ")"
    kind = schema.get("type")
    if isinstance(kind, list):
        return "(" + " | ".join(schema_to_gbnf({**schema, "type": k}) for k in kind) + ")"
    if kind == "object" and schema.get("properties"):
        return _object_expr(schema["properties"], schema.get("required", ()))
    if kind == "object" and "properties" in schema and not schema.get("additionalProperties"):
        return '"{}"'  # a tool without arguments: its empty properties say there are none
    if kind == "array":
        item = schema_to_gbnf(schema.get("items") or {})
        return f'("[" ({item} (", " {item})*)? "]")'
    return _TYPE_RULES.get(str(kind), "object" if kind == "object" else "value")


def _object_expr(properties: Mapping[str, Any], required: Iterable[str]) -> str:
    needed = set(required)
    pairs = [
        (name in needed, _lit(_json(name) + ": ") + " " + schema_to_gbnf(sub))
        for name, sub in properties.items()
    ]
    # Required properties first (small models fill them before wandering off), then optional.
    pairs.sort(key=lambda pair: not pair[0])
    mandatory = [expr for is_required, expr in pairs if is_required]
    optional = [expr for is_required, expr in pairs if not is_required]
    if mandatory:
        body = ' ", " '.join(mandatory) + "".join(f' (", " {expr})?' for expr in optional)
    else:  # the first present property has no leading comma
        starts = [
            expr + "".join(f' (", " {later})?' for later in optional[i + 1 :])
            for i, expr in enumerate(optional)
        ]
        body = "(" + " | ".join(starts) + ")?"
    return f'("{{" {body} "}}")'


def _text_rules(word: str) -> list[str]:
    """Rules ``text`` (start) and ``text-k``: any text that does not contain ``word``.

    A right-linear grammar of the automaton that tracks how much of ``word`` the text ends
    with; ``word``'s first character must not recur in it, so a mismatch restarts at 0 or 1.
    """
    first = word[0]
    assert first not in word[1:], word

    def cls(*chars: str) -> str:
        return "[^" + "".join("\\" + c if c in "]^-\\" else c for c in chars) + "]"

    def state(k: int) -> str:
        return "text" if k == 0 else f"text-{k}"

    # Every state may end the text: "(...)?" (llama.cpp's parser has no empty alternative).
    rules = [f"text ::= ({cls(first)} text | {_lit(first)} text-1)?"]
    for k in range(1, len(word)):
        advance = f"{_lit(word[k])} {state(k + 1)} | " if k + 1 < len(word) else ""
        rules.append(
            f"{state(k)} ::= ({advance}{_lit(first)} text-1 | {cls(word[k], first)} text)?"
        )
    return rules


@lru_cache(maxsize=64)
def _grammar(tools_json: str, choice: ToolChoice, parallel: bool) -> str:
    if choice == "none":
        return "\n".join(["root ::= text", *_text_rules(CALL_OPEN)]) + "\n"
    tools = json.loads(tools_json)
    functions = [t["function"] for t in tools if choice in ("auto", "any", t["function"]["name"])]
    rules = [
        f"root ::= {'prose calls? | single' if choice == 'auto' else 'calls | single'}",
        # free text that cannot be taken for a call: no "{" or "`" first, no CALL_OPEN at all
        f"prose ::= ([^{CALL_OPEN[0]}{{`] text | {_lit(CALL_OPEN[0])} text-1)?",
        f"single ::= call | {_lit(FENCE_OPEN)} call {_lit(FENCE_CLOSE)}",
        'calls ::= tagged ("\\n" tagged)*' if parallel else "calls ::= tagged",
        f"tagged ::= {_lit(CALL_OPEN + chr(10))} call {_lit(chr(10) + CALL_CLOSE)}",
        "call ::= " + " | ".join(f"call-{i}" for i in range(len(functions))),
    ]
    for i, function in enumerate(functions):
        head = f"{CALL_JSON_HEAD}{_json(function['name'])}{ARGS_KEY}"
        args = schema_to_gbnf(function.get("parameters") or {"type": "object"})
        rules.append(f'call-{i} ::= {_lit(head)} {args} "}}"')
    return "\n".join([*rules, *_text_rules(CALL_OPEN), _JSON_RULES]) + "\n"


def tool_call_grammar(
    tools: Sequence[Mapping[str, Any]], choice: ToolChoice = "auto", *, parallel: bool = True
) -> str:
    """The GBNF grammar of an assistant turn with ``tools`` bound.

    Args:
        tools: OpenAI-format tool dicts (``{"type": "function", "function": {...}}``).
        choice: ``"auto"`` (text, then optionally calls; or one bare or fenced call),
            ``"none"`` (text only), ``"any"`` (one or more calls, no text) or a tool name
            (calls of that tool only).
        parallel: allow several calls in one turn.
    """
    return _grammar(_json(list(tools)), choice, parallel)


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class ParsedOutput:
    """An assistant output split into its text and its tool calls."""

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    invalid_tool_calls: list[InvalidToolCall] = field(default_factory=list)


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def parse_tool_output(text: str, choice: ToolChoice = "auto") -> ParsedOutput:
    """Split a model output into its text and its tool calls (see the module docstring).

    With ``choice="none"`` the whole output is text, as its grammar allows.

    Never raises: a call that is not ``{"name": str, "arguments": object}`` JSON (under the
    grammar: one cut off by the token limit) becomes an ``InvalidToolCall`` with the name if
    it was written and the raw arguments text. A complete call missing only its closing
    delimiter is a call.
    """
    reply = text.strip()
    if choice == "none":
        return ParsedOutput(reply)
    if reply.startswith("{"):  # the whole reply is one bare call
        return _calls("", [reply])
    if reply.startswith(FENCE_OPEN):
        return _calls("", [reply.removeprefix(FENCE_OPEN).removesuffix(FENCE_CLOSE)])
    content, opened, rest = text.partition(CALL_OPEN)
    if not opened:
        return ParsedOutput(reply)
    return _calls(content.strip(), [b.partition(CALL_CLOSE)[0] for b in rest.split(CALL_OPEN)])


def _calls(content: str, bodies: Iterable[str]) -> ParsedOutput:
    calls: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for body in bodies:
        try:
            data = json.loads(body)
            name, args = data["name"], data["arguments"]
            if isinstance(args, str):  # some models send the arguments as a JSON string
                args = json.loads(args)
            if not (isinstance(name, str) and isinstance(args, dict)):
                raise TypeError("not a {name: string, arguments: object} call")
        except (ValueError, TypeError, KeyError) as error:
            name, raw_args = _salvage(body)
            invalid.append(InvalidToolCall(type="invalid_tool_call", name=name, args=raw_args,
                                           id=_call_id(), error=f"{type(error).__name__}: {error}"))
        else:
            calls.append(ToolCall(type="tool_call", name=name, args=args, id=_call_id()))
    return ParsedOutput(content, calls, invalid)


def _salvage(body: str) -> tuple[str | None, str]:
    """The name and raw arguments text of a broken call, as far as they were written."""
    body = body.strip()
    if body.startswith(CALL_JSON_HEAD):
        try:
            name, end = json.JSONDecoder().raw_decode(body, len(CALL_JSON_HEAD))
        except ValueError:
            return None, body
        if isinstance(name, str) and body.startswith(ARGS_KEY, end):
            return name, body[end + len(ARGS_KEY) :]
    return None, body
