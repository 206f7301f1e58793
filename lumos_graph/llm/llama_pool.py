"""The process-wide pool of loaded llama.cpp models, and generation on a pooled model.

One GGUF loaded once serves every chat model that asks for it with the same load settings:
the :class:`ModelPool` maps a :class:`PoolKey` to a :class:`PooledModel` (the ``Llama``
object, a lock, and saved KV states). A llama context is not thread-safe, so every use holds
the model's lock, for the whole generation of a call (streams included). Sampling settings
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
import codecs
import contextlib
import functools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lumos_graph.errors import ConfigError, ContextOverflowError
from lumos_graph.llm.files import check_gguf
from lumos_graph.llm.llama_context import KVStates, llama_class

if TYPE_CHECKING:
    from llama_cpp.llama_grammar import LlamaGrammar

    from lumos_graph.llm.llama_context import PooledLlama

__all__ = [
    "GenerationOptions",
    "GenerationStats",
    "ModelPool",
    "PoolKey",
    "PooledModel",
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


# --------------------------------------------------------------------------- one call


@dataclass(frozen=True)
class GenerationOptions:
    """The settings of one call, resolved by the chat model."""

    stop: tuple[str, ...]
    temperature: float
    max_tokens: int
    grammar: str | None
    seed: int
    """Seed of the sampler (used when ``temperature > 0``)."""


@dataclass(frozen=True)
class GenerationStats:
    """What one call did, as reported in ``response_metadata`` and ``usage_metadata``."""

    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    output_tokens: int
    prompt_tokens_evaluated: int
    prompt_tokens_cached: int
    kv_state_restored: bool
    model_seconds: float


@functools.lru_cache(maxsize=GRAMMAR_CACHE_SIZE)
def _llama_grammar(text: str) -> LlamaGrammar:
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_string(text, verbose=False)


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

        while self._grammars:
            llama_cpp.llama_sampler_free(self._grammars.popitem()[1])
        self.kv_states = KVStates(self.kv_states.capacity, self.kv_states.max_bytes)
        self.llm.close()

    @contextlib.contextmanager
    def _constrained(self, text: str | None, temperature: float) -> Iterator[LlamaGrammar | None]:
        """Set up grammar sampling for one call; yields what to pass to ``Llama.generate``.

        Greedy calls use a fresh copy of the compiled grammar on the fast path of
        ``PooledLlama._lumos_constrain``; sampling at a temperature lets llama-cpp-python put
        the grammar in its sampler chain.
        """
        if text is None:
            yield None
            return
        compiled = self.compiled_grammar(text)  # validates before anything runs
        if temperature > 0:
            yield _llama_grammar(text)
            return
        import llama_cpp

        self.llm.lumos_grammar = llama_cpp.llama_sampler_clone(compiled)
        try:
            yield None
        finally:
            llama_cpp.llama_sampler_free(self.llm.lumos_grammar)
            self.llm.lumos_grammar = None

    def _is_eog(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token))

    def generate(
        self, tokens: list[int], options: GenerationOptions
    ) -> Iterator[str | GenerationStats]:
        """Yield text pieces as they are decoded, then one :class:`GenerationStats`.

        Holds the model lock from the first ``next()`` until the generator finishes or is
        closed.

        Raises:
            ContextOverflowError: the prompt leaves no room in the context.
        """
        n_ctx = self.key.n_ctx
        if len(tokens) >= n_ctx:
            raise ContextOverflowError(
                f"the prompt has {len(tokens)} tokens but the context holds {n_ctx}; "
                "shorten the conversation or raise n_ctx"
            )
        budget = min(options.max_tokens, n_ctx - len(tokens))
        llm = self.llm
        with self.lock, self._constrained(options.grammar, options.temperature) as grammar:
            evaluated0, seconds0 = llm.lumos_evaluated, llm.lumos_seconds
            kv_seconds0 = self.kv_states.seconds
            restored = self.kv_states.prepare(llm, np.asarray(tokens, dtype=np.intc))
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            stops = _StopScanner(options.stop)
            finish: Literal["stop", "length"] = "length"
            evaluated, produced, cut = 0, 0, False
            llm.set_seed(options.seed)  # Llama.generate builds its sampler from it
            stream = llm.generate(tokens, temp=options.temperature, reset=True, grammar=grammar)
            try:
                for token in stream if budget > 0 else ():
                    if produced == 0:  # the prompt is evaluated before the first sample
                        evaluated = llm.lumos_evaluated - evaluated0
                    produced += 1
                    if self._is_eog(token):
                        finish = "stop"
                        break
                    piece, cut = stops.feed(decoder.decode(llm.detokenize([token])))
                    if piece:
                        yield piece
                    if cut:
                        finish = "stop"
                        break
                    if produced >= budget:
                        break
            finally:
                stream.close()
            if not cut:  # emit what was held back as a possible stop-sequence start
                piece, _ = stops.feed(decoder.decode(b"", final=True))
                rest = piece + stops.flush()
                if rest:
                    yield rest
            seconds = llm.lumos_seconds - seconds0 + self.kv_states.seconds - kv_seconds0
        yield GenerationStats(
            finish_reason=finish,
            prompt_tokens=len(tokens),
            output_tokens=produced,
            prompt_tokens_evaluated=evaluated,
            prompt_tokens_cached=len(tokens) - evaluated if produced else 0,
            kv_state_restored=restored,
            model_seconds=seconds,
        )


class _StopScanner:
    """Cuts decoded text at the first stop sequence, holding back a possible partial match."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.text = ""
        self.sent = 0
        self._reach = max((len(s) for s in self.stops), default=1) - 1

    def feed(self, piece: str) -> tuple[str, bool]:
        """Add text; return what is safe to emit and whether a stop sequence was hit."""
        start = max(0, len(self.text) - self._reach)
        self.text += piece
        hits = [i for s in self.stops if (i := self.text.find(s, start)) >= 0]
        if hits:
            self.text = self.text[: max(self.sent, min(hits))]
            return self.flush(), True
        held = max(
            (k for s in self.stops for k in range(1, len(s)) if self.text.endswith(s[:k])),
            default=0,
        )
        safe = max(self.sent, len(self.text) - held)
        out, self.sent = self.text[self.sent : safe], safe
        return out, False

    def flush(self) -> str:
        out, self.sent = self.text[self.sent :], len(self.text)
        return out


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
