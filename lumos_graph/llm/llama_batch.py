"""Continuous batching on one llama.cpp context: concurrent calls decode together.

Every call of :meth:`PooledModel.generate <lumos_graph.llm.llama_pool.PooledModel.generate>`
becomes a :class:`Request` in the model's :class:`BatchEngine`. Whichever waiting caller holds
the model's lock drives the engine one *step* at a time: a step admits waiting requests (each
gets a sequence of the context), decodes one ``llama_decode`` batch holding the new prompts'
tokens and one sampled token of every running sequence, then samples the next token of each.
So K sampled branches of one question (``--samples K``) or eight concurrent agent runs cost
about one decode pass per token, not K or eight: on a CPU a decode step is bound by reading
the weights, and reading them once for eight sequences is nearly as cheap as for one.

Prefix sharing: sequence 0 is the context's home. A round (the time while any request runs)
starts by making the home hold the longest known prefix of its first request's prompt (the
saved KV states of :class:`~lumos_graph.llm.llama_context.KVStates`); a later request copies
the longest prefix it shares with any sequence of the round (``llama_memory_seq_cp`` shares the
cells, no copy) and decodes only the rest. When the round ends, the other sequences are
removed and the home keeps the first request's conversation for the next call.

Sampling runs in numpy on the logits of each sequence: greedy, or llama.cpp's default chain
(top-k 40, top-p 0.95, temperature) from the request's seed. A grammar is checked on the chosen
token first and applied to the whole vocabulary only when that token is not allowed, as in
llama.cpp's common sampler. Every sequence also sums the log-probabilities of its tokens
(``logprob``), which answer votes use to break ties.
"""

from __future__ import annotations

import codecs
import ctypes
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from lumos_graph.errors import ContextOverflowError

from lumos_graph.llm.llama_context import MAX_SEQUENCES, common_prefix



class _Model(Protocol):
    """What the engine needs of :class:`~lumos_graph.llm.llama_pool.PooledModel` (which owns
    the engine; a protocol here keeps the import one way)."""

    llm: Any
    lock: threading.Lock
    key: Any
    kv_states: Any

    def compiled_grammar(self, text: str) -> Any: ...

__all__ = [
    "MAX_SEQUENCES",
    "BatchEngine",
    "GenerationOptions",
    "GenerationStats",
    "Request",
    "StopScanner",
]

_TOP_K, _TOP_P = 40, 0.95  # llama.cpp's default sampling chain
_POLL_SECONDS = 0.02  # how often a waiting caller checks whether it may drive the engine


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
    logprob: float = 0.0
    """Sum of the log-probabilities of the output tokens (at temperature 1)."""


class StopScanner:
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


@dataclass(eq=False)
class Request:
    """One call: its prompt, options, and what the engine sends back through ``out``."""

    tokens: list[int]
    options: GenerationOptions
    out: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    cancelled: bool = False
    finished: bool = False
    # engine state while running
    seq: int = -1
    pos: int = 0  # next position in the sequence
    pending: list[int] = field(default_factory=list)  # tokens to decode in the next step
    rest: list[int] = field(default_factory=list)  # prompt tokens that did not fit this step
    produced: int = 0
    evaluated: int = 0
    logprob: float = 0.0
    started: float = 0.0
    restored: bool = False
    grammar: Any = None  # a llama_sampler_p clone, freed when the request ends
    rng: np.random.Generator | None = None
    decoder: Any = None
    stops: StopScanner | None = None
    generated: list[int] = field(default_factory=list)


class BatchEngine:
    """The requests of one pooled model and the step that advances them (see module doc)."""

    def __init__(self, pooled: _Model) -> None:
        self.pooled = pooled
        self._mutex = threading.Lock()  # guards ``_waiting``
        self._waiting: list[Request] = []
        self._running: list[Request] = []
        self._batch: Any = None
        self._home: Request | None = None  # the request on sequence 0 in this round

    # ---- the caller's side -------------------------------------------------------------------

    def submit(self, request: Request) -> Iterator[str | Any]:
        """Yield the request's text pieces, then its ``GenerationStats``; drives the engine
        whenever the model's lock is free. Closing the iterator cancels the request."""
        with self._mutex:
            self._waiting.append(request)
        lock = self.pooled.lock
        try:
            while True:
                item = self._next_item(request, block=False)
                if item is not None:
                    yield item
                    if not isinstance(item, str):
                        return
                    continue
                if lock.acquire(blocking=False):
                    try:
                        while not request.finished or not request.out.empty():
                            while (item := self._next_item(request, block=False)) is not None:
                                yield item
                                if not isinstance(item, str):
                                    return
                            if not request.finished:
                                self.step()
                    finally:
                        lock.release()
                else:
                    item = self._next_item(request, block=True)
                    if item is not None:
                        yield item
                        if not isinstance(item, str):
                            return
        finally:
            if not request.finished:
                request.cancelled = True
                with self._mutex:
                    if request in self._waiting:
                        self._waiting.remove(request)
                        request.finished = True
                if not request.finished and lock.acquire(blocking=False):
                    try:  # free its sequence now rather than at the next caller's step
                        self._drop_cancelled()
                    finally:
                        lock.release()

    @staticmethod
    def _next_item(request: Request, *, block: bool) -> Any:
        try:
            item = request.out.get(timeout=_POLL_SECONDS) if block else request.out.get_nowait()
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    # ---- the engine --------------------------------------------------------------------------

    def step(self) -> None:
        """Admit waiting requests, decode one batch, sample one token per running sequence.

        Runs under the model's lock.
        """
        started = time.perf_counter()
        self._drop_cancelled()
        self._admit()
        if not self._running:
            return
        batch_rows = self._fill_batch()
        if batch_rows is None:
            return
        import llama_cpp

        llm = self.pooled.llm
        status = llama_cpp.llama_decode(llm.ctx, self._batch)
        n_tokens = sum(len(rows) for rows in batch_rows.values())
        llm.lumos_evaluated += n_tokens
        if status != 0:
            # no room left in the KV cache (status 1) or a failed decode: end the newest
            # request with a clear error and let the others go on
            victim = self._running[-1]
            self._finish(victim, error=ContextOverflowError(
                f"llama_decode failed ({status}): the context ({self.pooled.key.n_ctx} tokens) "
                f"is full with {len(self._running)} concurrent sequences; raise n_ctx"))
            self._end_round_if_idle()
            llm.lumos_seconds += time.perf_counter() - started
            return
        for request, rows in batch_rows.items():
            request.pos += len(request.pending)
            request.pending, request.rest = request.rest, []
            if not request.pending:  # its prompt (or last token) is in: sample the next one
                self._sample(request, rows[-1])
        self._end_round_if_idle()
        llm.lumos_seconds += time.perf_counter() - started

    def _drop_cancelled(self) -> None:
        for request in [r for r in self._running if r.cancelled]:
            self._finish(request, error=None, silent=True)
        self._end_round_if_idle()

    def _admit(self) -> None:
        """Start waiting requests on free sequences. A request that shares more of its prompt
        with a running one than that one has decoded yet waits a step, to copy it then."""
        with self._mutex:
            waiting, self._waiting = self._waiting, []
        later: list[Request] = []
        for request in waiting:
            if request.cancelled:
                request.finished = True
                continue
            if not self._free_sequence() or self._should_wait(request):
                later.append(request)
                continue
            try:
                self._start(request)
            except BaseException as error:  # noqa: BLE001 - the caller gets it, others go on
                request.out.put(error)
                request.finished = True
                self._release(request)
        with self._mutex:
            self._waiting[:0] = later

    def _free_sequence(self) -> bool:
        if not self._running:
            return True
        return len([r for r in self._running if r.seq > 0]) < MAX_SEQUENCES - 1

    def _should_wait(self, request: Request) -> bool:
        prompt = np.asarray(request.tokens)
        return any(
            min(common_prefix(np.asarray(other.tokens), prompt), len(prompt) - 1) > other.pos
            for other in self._running
        )

    def _start(self, request: Request) -> None:
        import llama_cpp

        pooled, llm = self.pooled, self.pooled.llm
        n_ctx = pooled.key.n_ctx
        tokens = request.tokens
        if len(tokens) >= n_ctx:
            raise ContextOverflowError(
                f"the prompt has {len(tokens)} tokens but the context holds {n_ctx}; "
                "shorten the conversation or raise n_ctx")
        if not tokens:
            raise ContextOverflowError("an empty prompt cannot be decoded")
        request.started = time.perf_counter()
        options = request.options
        if options.grammar is not None:
            compiled = pooled.compiled_grammar(options.grammar)  # validates first
            request.grammar = llama_cpp.llama_sampler_clone(compiled)
        request.rng = np.random.default_rng(options.seed)
        request.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        request.stops = StopScanner(options.stop)
        memory = llama_cpp.llama_get_memory(llm.ctx)
        if not self._running:  # a new round: the home sequence, with the saved KV states
            prompt = np.asarray(tokens, dtype=np.intc)
            request.restored = pooled.kv_states.prepare(llm, prompt)
            live = llm.input_ids[: llm.n_tokens]
            keep = min(common_prefix(live, prompt), len(tokens) - 1)
            llama_cpp.llama_memory_seq_rm(memory, 0, keep, -1)
            request.seq, request.pos = 0, keep
        else:
            used = {r.seq for r in self._running}
            request.seq = next(s for s in range(1, MAX_SEQUENCES) if s not in used)
            best, keep = None, 0
            for other in self._running:
                known = [*other.tokens, *other.generated][: other.pos]  # decoded so far
                shared = min(common_prefix(np.asarray(known), np.asarray(tokens)),
                             len(tokens) - 1)
                if shared > keep:
                    best, keep = other, shared
            llama_cpp.llama_memory_seq_rm(memory, request.seq, -1, -1)
            if best is not None:
                llama_cpp.llama_memory_seq_cp(memory, best.seq, request.seq, 0, keep)
            request.pos = keep
        request.pending = list(tokens[request.pos:])
        request.evaluated = len(request.pending)
        self._running.append(request)
        if options.max_tokens <= 0:  # nothing to generate: answer at once, decode nothing
            request.pending = []
            self._finish(request, finish="length")

    def _fill_batch(self) -> dict[Request, list[int]] | None:
        """Put every running request's pending tokens in the batch; a prompt longer than the
        room left goes in over several steps (``rest``). Returns each request's batch rows;
        the last row of a request with nothing left over carries logits."""
        import llama_cpp

        capacity = self.pooled.key.n_batch
        if self._batch is None:
            self._batch = llama_cpp.llama_batch_init(capacity, 0, 1)
        batch = self._batch
        rows: dict[Request, list[int]] = {}
        n = 0
        # single tokens of running sequences first, so a long new prompt never starves them
        for request in sorted(self._running, key=lambda r: len(r.pending)):
            room = capacity - n
            if room <= 0 or not request.pending:
                continue
            request.pending, request.rest = request.pending[:room], request.pending[room:]
            for i, token in enumerate(request.pending):
                batch.token[n] = token
                batch.pos[n] = request.pos + i
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = request.seq
                batch.logits[n] = 0
                rows.setdefault(request, []).append(n)
                n += 1
            if not request.rest:
                batch.logits[n - 1] = 1
        batch.n_tokens = n
        return rows or None

    def _sample(self, request: Request, row: int) -> None:
        import llama_cpp

        llm = self.pooled.llm
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(llm.ctx, row), shape=(llm.n_vocab(),)
        )
        token = self._choose(request, logits)
        request.logprob += float(logits[token] - _logsumexp(logits))
        request.produced += 1
        options = request.options
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
            self._finish(request, finish="stop")
            return
        if request.grammar is not None:
            llama_cpp.llama_sampler_accept(request.grammar, token)
        request.generated.append(token)
        assert request.stops is not None
        piece, cut = request.stops.feed(request.decoder.decode(llm.detokenize([token])))
        if piece:
            request.out.put(piece)
        budget = min(options.max_tokens, self.pooled.key.n_ctx - len(request.tokens))
        if cut:
            self._finish(request, finish="stop", cut=True)
        elif request.produced >= budget:
            self._finish(request, finish="length")
        else:
            request.pending = [token]

    def _choose(self, request: Request, logits: np.ndarray) -> int:
        temperature = request.options.temperature
        if temperature <= 0:
            token = int(np.argmax(logits))
            if request.grammar is None or self._allowed(request.grammar, token):
                return token
            return self._constrained_choice(request, logits, greedy=True)
        top = np.argpartition(logits, -_TOP_K)[-_TOP_K:]
        top = top[np.argsort(-logits[top])]
        if request.grammar is not None:
            allowed = [t for t in top if self._allowed(request.grammar, int(t))]
            if not allowed:
                return self._constrained_choice(request, logits, greedy=False)
            top = np.asarray(allowed)
        return _sample_top(logits[top], top, temperature, request.rng)

    @staticmethod
    def _allowed(grammar: Any, token: int) -> bool:
        import llama_cpp

        single = llama_cpp.llama_token_data(token, 1.0, 0.0)
        one = llama_cpp.llama_token_data_array(ctypes.pointer(single), 1, -1, False)
        llama_cpp.llama_sampler_apply(grammar, ctypes.byref(one))
        return bool(single.logit != -np.inf)

    def _constrained_choice(self, request: Request, logits: np.ndarray, *, greedy: bool) -> int:
        """Apply the grammar to the whole vocabulary; end the output at a dead end."""
        import llama_cpp

        llm = self.pooled.llm
        candidates = llm._candidates
        candidates.copy_logits(logits)
        llama_cpp.llama_sampler_apply(request.grammar, ctypes.byref(candidates.candidates))
        filtered = np.asarray(candidates.candidates_data.logit)
        ids = np.asarray(candidates.candidates_data.id)
        ok = np.flatnonzero(filtered != -np.inf)
        if len(ok) == 0:
            return int(llm.token_eos())  # dead end: end the output, accept nothing
        if greedy:
            return int(ids[ok[np.argmax(filtered[ok])]])
        chosen = ok[np.argsort(-filtered[ok])[:_TOP_K]]
        assert request.rng is not None
        return _sample_top(filtered[chosen], ids[chosen], request.options.temperature,
                           request.rng)

    def _finish(self, request: Request, *, finish: Literal["stop", "length"] = "stop",
                cut: bool = False, error: BaseException | None = None,
                silent: bool = False) -> None:
        if request in self._running:
            self._running.remove(request)
        if error is not None:
            request.out.put(error)
        elif not silent:
            if not cut and request.stops is not None:  # held back as a stop's possible start
                piece, _ = request.stops.feed(request.decoder.decode(b"", final=True))
                rest = piece + request.stops.flush()
                if rest:
                    request.out.put(rest)
            cached = len(request.tokens) - request.evaluated
            request.out.put(GenerationStats(
                finish_reason=finish,
                prompt_tokens=len(request.tokens),
                output_tokens=request.produced,
                prompt_tokens_evaluated=request.evaluated,
                prompt_tokens_cached=cached,
                kv_state_restored=request.restored,
                model_seconds=time.perf_counter() - request.started,
                logprob=request.logprob,
            ))
        request.finished = True
        self._release(request)
        if request.seq > 0:
            import llama_cpp

            memory = llama_cpp.llama_get_memory(self.pooled.llm.ctx)
            llama_cpp.llama_memory_seq_rm(memory, request.seq, -1, -1)
        elif request.seq == 0:
            self._home = request

    def _release(self, request: Request) -> None:
        if request.grammar is not None:
            import llama_cpp

            llama_cpp.llama_sampler_free(request.grammar)
            request.grammar = None

    def _end_round_if_idle(self) -> None:
        """When nothing runs, the home sequence holds the first request's conversation: tell
        the ``Llama`` object, so the next call's prefix matching sees it."""
        home = self._home
        if self._running or home is None:
            return
        self._home = None
        import llama_cpp

        llm = self.pooled.llm
        decoded = [*home.tokens, *home.generated][: home.pos]
        memory = llama_cpp.llama_get_memory(llm.ctx)
        llama_cpp.llama_memory_seq_rm(memory, 0, len(decoded), -1)
        llm.input_ids[: len(decoded)] = decoded
        llm.n_tokens = len(decoded)
        llm._requires_eval = True  # its logits are gone: the next call decodes one again

    def close(self) -> None:
        """Free the batch (the model is closing)."""
        if self._batch is not None:
            import llama_cpp

            llama_cpp.llama_batch_free(self._batch)
            self._batch = None


def _logsumexp(x: np.ndarray) -> float:
    top = float(np.max(x))
    return top + float(np.log(np.sum(np.exp(x - top))))


def _sample_top(values: np.ndarray, ids: Sequence[int] | np.ndarray, temperature: float,
                rng: np.random.Generator | None) -> int:
    """Top-p then temperature sampling among candidates sorted by ``values`` (descending)."""
    scaled = (values - values[0]) / max(temperature, 1e-6)
    probs = np.exp(scaled)
    probs /= probs.sum()
    keep = int(np.searchsorted(np.cumsum(probs), _TOP_P) + 1)
    probs = probs[:keep] / probs[:keep].sum()
    generator = rng if rng is not None else np.random.default_rng()
    return int(np.asarray(ids)[generator.choice(keep, p=probs)])
