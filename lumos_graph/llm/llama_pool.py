"""The process-wide pool of loaded llama.cpp models, and generation on a pooled model.

One GGUF loaded once serves every chat model that asks for it with the same load settings:
the :class:`ModelPool` maps a :class:`PoolKey` to a :class:`PooledModel` (the ``Llama``
object, a lock, saved KV states and a :class:`~lumos_graph.llm.llama_batch.BatchEngine`). A
llama context is not thread-safe, so every use holds the model's lock; concurrent calls decode
together as sequences of one batch (see :mod:`lumos_graph.llm.llama_batch`). Sampling settings
(temperature, seed, grammar) are per call and never split the pool.

Prefix reuse: the roles of one agent (planner, grounder) alternate on one shared ``Llama`` and
each only appends to its own conversation. Before a call, the pooled model picks whichever of
the live context and a few saved KV states shares the longest token prefix with the new prompt,
restores it if needed, and evaluates only the rest; a live context about to be overwritten is
saved first. :class:`GenerationStats` reports what really happened (tokens evaluated / cached).

As with llama.cpp's own prompt cache, reuse is not bit-exact: llama.cpp's numbers for a token
depend slightly on the batch it was decoded in, so a greedy reply can differ where two
candidate tokens are nearly tied, depending on what was cached.

This module imports llama-cpp-python only when a model is loaded.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any


from lumos_graph.errors import ConfigError
from lumos_graph.llm.files import check_gguf
from lumos_graph.llm.llama_batch import (
    BatchEngine,
    GenerationOptions,
    GenerationStats,
    Request,
    StopScanner,
)
from lumos_graph.llm.llama_context import KVStates, llama_class

if TYPE_CHECKING:
    from lumos_graph.llm.llama_context import PooledLlama

__all__ = [
    "GenerationOptions",
    "GenerationStats",
    "ModelPool",
    "PoolKey",
    "PooledModel",
    "StopScanner",
    "model_pool",
]

GRAMMAR_CACHE_SIZE = 64


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class PoolKey:
    """Load settings that make two models distinct; equal keys share one ``Llama``."""

    path: str
    n_ctx: int
    n_threads: int
    n_batch: int
    use_extra_bufts: bool
    lora_path: str | None


def _load_llama(key: PoolKey, verbose: bool) -> PooledLlama:
    check_gguf(key.path)
    try:
        return llama_class()(
            key.path,
            use_extra_bufts=key.use_extra_bufts,
            n_ctx=key.n_ctx,
            n_batch=key.n_batch,
            n_threads=key.n_threads,
            n_threads_batch=key.n_threads,
            lora_path=key.lora_path,
            verbose=verbose,
        )
    except ValueError as error:  # llama.cpp could not read it: wrong architecture, corrupt
        raise ConfigError(f"llama.cpp cannot load {key.path}: {error}") from error


# --------------------------------------------------------------------------- pooled model


class PooledModel:
    """One loaded ``Llama`` with its lock and saved KV states; see the module docstring."""

    def __init__(self, key: PoolKey, llm: PooledLlama) -> None:
        self.key = key
        self.llm = llm
        self.lock = threading.Lock()
        self.kv_states = KVStates()
        self._formatter: Any = None
        self._grammars: OrderedDict[str, Any] = OrderedDict()  # GBNF text -> llama_sampler_p
        self.engine = BatchEngine(self)

    # -- prompt side (no lock needed: tokenizer and metadata are read-only)

    def render_chat_template(self, turns: Sequence[Mapping[str, str]]) -> str:
        """Render ``{"role", "content"}`` turns with the GGUF's ``tokenizer.chat_template``."""
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            template = self.llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise ConfigError(
                    f"{self.key.path} has no tokenizer.chat_template; pass prompt_format='lumos' "
                    "if it is a LUMOS checkpoint"
                )
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=self._token_text(self.llm.token_eos()),
                bos_token=self._token_text(self.llm.token_bos()),
                add_generation_prompt=True,
            )
        return str(self._formatter(messages=[dict(turn) for turn in turns]).prompt)

    def _token_text(self, token: int) -> str:
        return "" if token < 0 else self.llm._model.token_get_text(token)

    def tokenize(self, prompt: str) -> list[int]:
        """Tokenize a rendered prompt: special tokens parsed, BOS once if the model uses one."""
        tokens = self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        bos = self.llm.token_bos()
        if len(tokens) > 1 and tokens[0] == tokens[1] == bos:
            tokens = tokens[1:]  # the chat template wrote the BOS itself
        return tokens

    # -- generation

    def compiled_grammar(self, text: str) -> Any:
        """The parsed grammar sampler for a GBNF text, compiled once per model (bounded LRU).

        Raises:
            ConfigError: llama.cpp rejects the grammar.
        """
        import llama_cpp

        compiled = self._grammars.get(text)
        if compiled is None:
            compiled = llama_cpp.llama_sampler_init_grammar(
                self.llm._model.vocab, text.encode("utf-8"), b"root"
            )
            if not compiled:
                raise ConfigError(f"invalid GBNF grammar (llama.cpp rejected it):\n{text[:500]}")
            self._grammars[text] = compiled
            while len(self._grammars) > GRAMMAR_CACHE_SIZE:
                llama_cpp.llama_sampler_free(self._grammars.popitem(last=False)[1])
        self._grammars.move_to_end(text)
        return compiled

    def close(self) -> None:
        """Free the model and its compiled grammars; the pool closes them at exit."""
        import llama_cpp

        self.engine.close()
        while self._grammars:
            llama_cpp.llama_sampler_free(self._grammars.popitem()[1])
        self.kv_states = KVStates(self.kv_states.capacity, self.kv_states.max_bytes)
        self.llm.close()

    def generate(
        self, tokens: list[int], options: GenerationOptions
    ) -> Iterator[str | GenerationStats]:
        """Yield text pieces as they are decoded, then one :class:`GenerationStats`.

        Concurrent calls on this model decode together (:class:`BatchEngine`); a caller holds
        the model lock only while it drives a step.

        Raises:
            ContextOverflowError: the prompt leaves no room in the context.
            ConfigError: llama.cpp rejects the grammar.
        """
        yield from self.engine.submit(Request(list(tokens), options))


# --------------------------------------------------------------------------- the pool


class ModelPool:
    """Process-wide map from :class:`PoolKey` to :class:`PooledModel` (use :func:`model_pool`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[PoolKey, PooledModel] = {}
        self._closes_at_exit = False

    def get(self, key: PoolKey, *, verbose: bool = False) -> PooledModel:
        """The pooled model for ``key``, loading it on first use."""
        with self._lock:
            pooled = self._models.get(key)
            if pooled is None:
                pooled = PooledModel(key, _load_llama(key, verbose))
                self._models[key] = pooled
                if not self._closes_at_exit:
                    # llama-cpp-python's own finalizers fail noisily once the interpreter
                    # has torn its module down, so free the models while it still stands.
                    atexit.register(_close_at_exit, weakref.ref(self))
                    self._closes_at_exit = True
            return pooled

    def keys(self) -> list[PoolKey]:
        """Keys of the loaded models."""
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        """Forget every pooled model; each is freed once no caller still uses it."""
        with self._lock:
            self._models.clear()

    def close(self) -> None:
        """Forget and free every pooled model that no thread is using right now."""
        with self._lock:
            models, self._models = list(self._models.values()), {}
        for pooled in models:
            if pooled.lock.acquire(blocking=False):
                try:
                    pooled.close()
                finally:
                    pooled.lock.release()


def _close_at_exit(pool: weakref.ref[ModelPool]) -> None:
    alive = pool()
    if alive is not None:
        alive.close()


_POOL = ModelPool()


def model_pool() -> ModelPool:
    """The process-wide model pool."""
    return _POOL
