"""``ChatLlamaCpp``: a LangChain chat model over llama-cpp-python.

This module is the LangChain side: settings, call options, prompt rendering (the GGUF's chat
template or the LUMOS wrapper, :func:`render_lumos`), tool calling (``bind_tools``; the format,
grammar and parser live in :mod:`lumos_graph.llm.tool_calls`) and the messages and metadata
LangChain expects. The llama.cpp side lives in :mod:`lumos_graph.llm.llama_pool` (the process-wide pool of
loaded models, prefix reuse and generation) and :mod:`lumos_graph.llm.llama_context` (the
``Llama`` subclass and saved KV states); the names tests and applications use are re-exported
here.

This module imports llama-cpp-python only when a model is loaded.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, generate_from_stream
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    ToolMessage,
    convert_to_messages,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.utils import message_chunk_to_message
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from lumos_graph.errors import ConfigError, ContextOverflowError
from lumos_graph.llm.files import check_gguf
from lumos_graph.llm.hardware import has_amx, physical_cores
from lumos_graph.llm.llama_context import KVStates
from lumos_graph.llm.llama_pool import (
    GenerationOptions,
    GenerationStats,
    ModelPool,
    PooledModel,
    PoolKey,
    model_pool,
)
from lumos_graph.llm.tool_calls import (
    DEFAULT_SYSTEM,
    ToolChoice,
    format_assistant,
    format_tool_responses,
    parse_tool_output,
    resolve_tool_choice,
    tool_call_grammar,
    tools_system_text,
)

__all__ = [
    "ChatLlamaCpp",
    "ContextOverflowError",
    "GenerationStats",
    "KVStates",
    "ModelPool",
    "PoolKey",
    "PooledModel",
    "chat_turns",
    "model_pool",
    "render_lumos",
]

# The LUMOS conversation wrapper (open-instruct "tulu" format), byte for byte as trained.
LUMOS_USER_TURN = "<|user|>\n{content}\n"
LUMOS_ASSISTANT_TURN = "<|assistant|>\n{content}</s>\n"
LUMOS_GENERATION_PROMPT = "<|assistant|>\n"

_DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: a random seed per sampler
_CALL_OPTIONS = frozenset(
    {"grammar", "temperature", "max_tokens", "seed", "tools", "tool_choice", "parallel_tool_calls"}
)
ToolSpec = Mapping[str, Any] | type | Callable[..., Any] | BaseTool
_CALL_BLOCKS = frozenset({"tool_use", "tool_call", "tool_call_chunk", "function_call"})


# --------------------------------------------------------------------------- prompt rendering


def _role(message: BaseMessage) -> str:
    if isinstance(message, ChatMessage):
        return message.role
    return {"human": "user", "ai": "assistant"}.get(message.type, message.type)


def _text(message: BaseMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    parts: list[str] = []
    for block in message.content:
        if isinstance(block, str):
            parts.append(block)
        elif block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") in _CALL_BLOCKS:
            continue  # a tool call in list content (Anthropic style): rendered from tool_calls
        else:
            raise ConfigError(f"ChatLlamaCpp handles text only, got a {block.get('type')!r} block")
    return "".join(parts)


def render_lumos(messages: Sequence[BaseMessage]) -> str:
    """Render a conversation in the LUMOS wrapper, ending with the generation prompt.

    Each turn is ``<|user|>\\n{user}\\n<|assistant|>\\n{assistant}</s>\\n``; the prompt ends
    with ``<|user|>\\n{last user}\\n<|assistant|>\\n``.

    Raises:
        ConfigError: a message other than user/assistant, or the last message is not a user's.
    """
    if not messages or _role(messages[-1]) != "user":
        raise ConfigError("the LUMOS prompt format needs a conversation ending with a user message")
    parts: list[str] = []
    for message in messages:
        role = _role(message)
        if role == "user":
            parts.append(LUMOS_USER_TURN.format(content=_text(message)))
        elif role == "assistant":
            parts.append(LUMOS_ASSISTANT_TURN.format(content=_text(message)))
        else:
            raise ConfigError(f"the LUMOS prompt format has user and assistant turns, not {role}")
    return "".join(parts) + LUMOS_GENERATION_PROMPT


def chat_turns(
    messages: Sequence[BaseMessage], tools: Sequence[Mapping[str, Any]] | None = None
) -> list[dict[str, str]]:
    """The ``{"role", "content"}`` turns a chat template renders for ``messages``.

    Tool calls and results use the one format of :mod:`lumos_graph.llm.tool_calls`: an AI message's
    calls are appended to its text as ``<tool_call>`` blocks, consecutive tool messages become
    one user turn of ``<tool_response>`` blocks, and ``tools`` (OpenAI tool dicts) are listed
    at the end of the system message (one is added if there is none).
    """
    turns: list[dict[str, str]] = []
    results: list[str] = []
    for message in [*messages, None]:
        if isinstance(message, ToolMessage):
            results.append(_text(message))
            continue
        if results:
            turns.append({"role": "user", "content": format_tool_responses(results)})
            results = []
        if message is None:
            break
        content = _text(message)
        if isinstance(message, AIMessage) and message.tool_calls:
            content = format_assistant(content, message.tool_calls)
        turns.append({"role": _role(message), "content": content})
    if tools:
        listing = tools_system_text(tools)
        if turns and turns[0]["role"] == "system":
            turns[0] = {"role": "system", "content": turns[0]["content"] + listing}
        else:
            turns.insert(0, {"role": "system", "content": DEFAULT_SYSTEM + listing})
    return turns


def _openai_tools(tools: Sequence[ToolSpec] | None) -> list[dict[str, Any]]:
    return [convert_to_openai_tool(tool) for tool in tools or ()]


def _bound_tools(kwargs: Mapping[str, Any]) -> tuple[list[dict[str, Any]], ToolChoice]:
    """The tools of a call's options (OpenAI dicts) and the resolved ``tool_choice``."""
    tools = _openai_tools(kwargs.get("tools"))
    if not tools:
        return [], "auto"
    return tools, resolve_tool_choice(
        kwargs.get("tool_choice"), [t["function"]["name"] for t in tools]
    )


@functools.cache
def _default_threads() -> int:
    return physical_cores()


@functools.cache
def _default_extra_bufts() -> bool:
    return not has_amx()


# --------------------------------------------------------------------------- chat model


class ChatLlamaCpp(BaseChatModel):
    """A chat model running a local GGUF file with llama.cpp, usable in any LangChain app.

    Instances with the same load settings share one loaded model (see :class:`ModelPool`).
    Per call: ``stop``, ``temperature``, ``max_tokens``, ``seed`` and ``grammar`` (GBNF text),
    e.g. ``model.invoke(messages, grammar=gbnf)`` or ``model.bind(grammar=gbnf)``.

    Tool calling: ``model.bind_tools(tools)`` (see :meth:`bind_tools`); the reply's
    ``tool_calls`` then always hold JSON that follows the tools' schemas.

    Every ``AIMessage`` carries ``usage_metadata`` and ``response_metadata`` with
    ``finish_reason`` (``"stop"``/``"length"``), ``prompt_tokens_evaluated``,
    ``prompt_tokens_cached``, ``kv_state_restored`` and ``model_seconds``; when streaming,
    the last chunk carries them.

    Example:
        >>> model = ChatLlamaCpp(model_path="model.gguf", max_tokens=64)  # doctest: +SKIP
        >>> model.invoke("Say hi").content  # doctest: +SKIP
    """

    model_path: str
    """Path of the GGUF file."""
    n_ctx: int = Field(default=4096, gt=0)
    """Context window in tokens (prompt plus output)."""
    n_threads: int | None = Field(default=None, gt=0)
    """CPU threads; ``None`` means one per physical core."""
    n_batch: int = Field(default=512, gt=0)
    """Prompt tokens decoded per batch."""
    temperature: float = Field(default=0.0, ge=0.0)
    """0 means greedy decoding."""
    max_tokens: int = Field(default=256, ge=0)
    """Most tokens generated per call."""
    stop: list[str] | None = None
    """Stop sequences, added to the ones passed per call; the output ends before them."""
    seed: int | None = None
    """Sampling seed (used when ``temperature > 0``); ``None`` draws one per call. Per call,
    so models that differ only in their seed share one loaded model."""
    prompt_format: Literal["chat_template", "lumos"] = "chat_template"
    """``"chat_template"``: the GGUF's own template; ``"lumos"``: the LUMOS wrapper."""
    use_extra_bufts: bool | None = None
    """llama.cpp repacked weight buffers; ``None`` means off on AMX CPUs (crash workaround)."""
    lora_path: str | None = None
    """A LoRA adapter applied to the model."""
    few_shot: bool = True
    """LUMOS prompts start with worked few-shot conversations; ``False`` for models trained on
    the bare protocol (a LUMOS-trained adapter), which then see exactly their training turns."""
    module_system: bool = False
    """LUMOS prompts start with one system turn naming the module and formulation (what
    ``lumos-graph train`` trains with; see ``protocol.MODULE_SYSTEM``) instead of few-shot
    conversations."""
    verbose: bool = False
    """Let llama.cpp log to stderr."""
    model_name: str | None = None
    """Name shown in metadata and traces; defaults to the file name."""
    accepts_grammar: ClassVar[bool] = True
    """Graphs pass GBNF grammars (``grammar=``) only to models that say they take them."""

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        # After pydantic, so the message is ours and not wrapped in a ValidationError.
        check_gguf(self.model_path)
        if self.lora_path is not None:
            if not os.path.isfile(self.lora_path):
                raise ConfigError(f"LoRA adapter not found: {self.lora_path}")
            from lumos_graph.llm.lora_gguf import check_lora_gguf

            # llama.cpp logs a mismatched adapter and then segfaults on the first decode
            check_lora_gguf(self.lora_path, self.model_path)

    # -- LangChain plumbing

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self._name(),
            "model_path": self.model_path,
            "n_ctx": self.n_ctx,
            "prompt_format": self.prompt_format,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "lora_path": self.lora_path,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "llama_cpp"
        params["ls_model_name"] = kwargs.get("model") or self._name()  # a per-call name wins
        return params

    def _name(self) -> str:
        return self.model_name or os.path.basename(self.model_path)

    # -- the shared model

    def pool_key(self) -> PoolKey:
        """The pool key of this model's load settings (defaults resolved, nothing loaded)."""
        return PoolKey(
            path=os.path.realpath(self.model_path),
            n_ctx=self.n_ctx,
            n_threads=self.n_threads or _default_threads(),
            n_batch=self.n_batch,
            use_extra_bufts=(
                _default_extra_bufts() if self.use_extra_bufts is None else self.use_extra_bufts
            ),
            lora_path=os.path.realpath(self.lora_path) if self.lora_path else None,
        )

    def pooled(self) -> PooledModel:
        """The pooled model this instance runs on, loaded on first use."""
        return model_pool().get(self.pool_key(), verbose=self.verbose)

    def load(self) -> None:
        """Load the model now (it loads on first use otherwise); a no-op once loaded."""
        self.pooled()

    # -- prompts

    def render_prompt(
        self, messages: Sequence[BaseMessage] | Any, *, tools: Sequence[ToolSpec] | None = None
    ) -> str:
        """The exact prompt text the model sees for ``messages`` (anything LangChain accepts
        as a message list) with ``tools`` bound. The chat-template format loads the model to
        read its template."""
        messages = convert_to_messages(messages)
        if self.prompt_format == "lumos":
            if tools:
                raise ConfigError("tool calling needs prompt_format='chat_template'")
            return render_lumos(messages)
        return self.pooled().render_chat_template(chat_turns(messages, _openai_tools(tools)))

    def get_num_tokens(self, text: str) -> int:
        """Tokens of ``text`` with this model's tokenizer."""
        return len(self.pooled().llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[ToolSpec] | None = None
    ) -> int:
        """Tokens of the full rendered prompt for ``messages`` (and ``tools``)."""
        return len(self.pooled().tokenize(self.render_prompt(messages, tools=tools)))

    # -- tools

    def bind_tools(
        self,
        tools: Sequence[ToolSpec],
        *,
        tool_choice: str | bool | Mapping[str, Any] | None = None,
        parallel_tool_calls: bool = True,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools: each call may answer in text or call tools, as the model chooses.

        Tools are listed in the system message and tool calls are decoded under a grammar
        built from their JSON schemas (see :mod:`lumos_graph.llm.tool_calls`), so every call in
        the reply's ``tool_calls`` names a bound tool and has schema-valid ``args``. A call cut
        off by ``max_tokens`` lands in ``invalid_tool_calls``. Streaming yields the whole
        message at the end.

        Args:
            tools: LangChain tools, typed functions, pydantic models or OpenAI tool dicts.
            tool_choice: ``None``/``"auto"`` (text or calls), ``"none"`` (text only),
                ``"any"``/``"required"``/``True`` (at least one call), or a tool name (calls of
                that tool only).
            parallel_tool_calls: allow several calls in one reply.
            **kwargs: other call options to bind (``max_tokens``, ``temperature``...).

        Raises:
            ConfigError: the LUMOS prompt format, a ``tool_choice`` naming no bound tool.
        """
        if self.prompt_format == "lumos":
            raise ConfigError("tool calling needs prompt_format='chat_template'")
        formatted = _openai_tools(tools)
        choice = resolve_tool_choice(tool_choice, [t["function"]["name"] for t in formatted])
        return self.bind(
            tools=formatted, tool_choice=choice, parallel_tool_calls=parallel_tool_calls, **kwargs
        )

    # -- generation

    def _options(self, stop: list[str] | None, kwargs: dict[str, Any]) -> GenerationOptions:
        unknown = {k for k in kwargs if k not in _CALL_OPTIONS and k != "stream"}
        unknown = {k for k in unknown if not k.startswith("ls_")}
        if unknown:
            raise ConfigError(
                f"unknown call option(s) {sorted(unknown)} for ChatLlamaCpp; "
                f"supported: stop, {', '.join(sorted(_CALL_OPTIONS))}"
            )
        stops = tuple(dict.fromkeys([*(self.stop or []), *(stop or [])]))
        temperature = float(kwargs.get("temperature", self.temperature))
        max_tokens = int(kwargs.get("max_tokens", self.max_tokens))
        if temperature < 0 or max_tokens < 0:
            raise ConfigError("temperature and max_tokens must not be negative")
        grammar = kwargs.get("grammar")
        if grammar is not None and not isinstance(grammar, str):
            raise ConfigError(f"grammar must be GBNF text, not {type(grammar).__name__}")
        tools, choice = _bound_tools(kwargs)
        if tools:
            if grammar is not None:
                raise ConfigError("pass either tools or a grammar, not both")
            parallel = bool(kwargs.get("parallel_tool_calls", True))
            grammar = tool_call_grammar(tools, choice, parallel=parallel)
        seed = kwargs.get("seed", self.seed)
        if seed is not None and not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer, not {type(seed).__name__}")
        seed = seed or _DEFAULT_SEED  # 0 too: llama-cpp-python's Llama(seed=0) meant random
        return GenerationOptions(stops, temperature, max_tokens, grammar, seed)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        options = self._options(stop, kwargs)
        tools, choice = _bound_tools(kwargs)
        pooled = self.pooled()
        tokens = pooled.tokenize(self.render_prompt(messages, tools=tools))
        if tools:
            chunk = self._tool_reply(pooled.generate(tokens, options), choice)
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
            return
        for item in pooled.generate(tokens, options):
            if isinstance(item, GenerationStats):
                yield self._last_chunk(item)
                return
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=item))
            if run_manager is not None:
                run_manager.on_llm_new_token(item, chunk=chunk)
            yield chunk

    def _tool_reply(
        self, stream: Iterator[str | GenerationStats], choice: ToolChoice
    ) -> ChatGenerationChunk:
        """With tools bound, the whole reply as one chunk: text, calls and metadata."""
        *pieces, stats = list(stream)
        assert isinstance(stats, GenerationStats)
        parsed = parse_tool_output("".join(map(str, pieces)), choice)
        message = AIMessageChunk(
            content=parsed.content,
            tool_calls=parsed.tool_calls,
            invalid_tool_calls=parsed.invalid_tool_calls,
            **self._metadata(stats),
        )
        return ChatGenerationChunk(
            message=message, generation_info={"finish_reason": stats.finish_reason}
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if kwargs.get("tools"):
            # One chunk, taken as is: merging chunks would re-parse the arguments of a call
            # cut off by max_tokens leniently, turning an invalid call into a valid one.
            (chunk,) = self._stream(messages, stop, None, **kwargs)
            message = message_chunk_to_message(chunk.message)
            return ChatResult(
                generations=[ChatGeneration(message=message, generation_info=chunk.generation_info)]
            )
        return generate_from_stream(self._stream(messages, stop, None, **kwargs))

    def _last_chunk(self, stats: GenerationStats) -> ChatGenerationChunk:
        message = AIMessageChunk(content="", **self._metadata(stats))
        return ChatGenerationChunk(
            message=message, generation_info={"finish_reason": stats.finish_reason}
        )

    def _metadata(self, stats: GenerationStats) -> dict[str, Any]:
        """The fields of the message that ends a reply: usage, metadata, chunk position."""
        usage = UsageMetadata(
            input_tokens=stats.prompt_tokens,
            output_tokens=stats.output_tokens,
            total_tokens=stats.prompt_tokens + stats.output_tokens,
        )
        metadata = {
            "model_name": self._name(),
            "model_provider": "llama_cpp",
            "finish_reason": stats.finish_reason,
            "prompt_tokens_evaluated": stats.prompt_tokens_evaluated,
            "prompt_tokens_cached": stats.prompt_tokens_cached,
            "kv_state_restored": stats.kv_state_restored,
            "model_seconds": round(stats.model_seconds, 6),
            "logprob": round(stats.logprob, 6),  # of the output tokens, at temperature 1
        }
        return {"usage_metadata": usage, "response_metadata": metadata, "chunk_position": "last"}
