"""One llama.cpp context as lumos-graph runs it: the ``Llama`` subclass and its saved KV states.

:func:`llama_class` is the ``Llama`` every pooled model loads: it can turn off repacked weight
buffers (the AMX crash workaround), counts the tokens it decodes and the time it spends, and
samples greedily under a grammar without filtering the whole vocabulary every step.
:class:`KVStates` keeps a few saved states of such a context so that conversations which only
append to themselves are not re-evaluated from the start.

This module imports llama-cpp-python only when a model is loaded or a state saved.
"""

from __future__ import annotations

import ctypes
import functools
import inspect
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lumos_graph.errors import ConfigError

if TYPE_CHECKING:
    from llama_cpp.llama import Llama

    class PooledLlama(Llama):
        """What :func:`llama_class` returns, for the type checker."""

        lumos_evaluated: int
        lumos_seconds: float
        lumos_grammar: Any

__all__ = ["KVStates", "llama_class"]

KV_STATES_PER_MODEL = 4
KV_STATE_BYTES = 1 << 30  # per model; a 7B LLaMA-2 state is ~0.5 MB per token


# --------------------------------------------------------------------------- the Llama subclass


@functools.cache
def llama_class() -> type[PooledLlama]:
    """A ``Llama`` that can load with ``use_extra_bufts`` and counts its own work.

    llama-cpp-python 0.3.36 fills ``llama_model_params`` inside ``Llama.__init__`` without
    exposing ``use_extra_bufts``; a property on ``model_params`` sets it on the struct the
    moment ``__init__`` creates it, before the model is loaded. Newer releases that accept the
    keyword get it directly.
    """
    from llama_cpp import Llama

    native = "use_extra_bufts" in inspect.signature(Llama.__init__).parameters

    class PooledLlama(Llama):
        lumos_extra_bufts: bool | None = None
        lumos_evaluated = 0  # tokens run through llama_decode, ever
        lumos_seconds = 0.0  # wall time in decode and sampling, ever
        lumos_grammar: Any = None  # a llama_sampler_p while a greedy constrained call runs

        def __init__(self, model_path: str, *, use_extra_bufts: bool, **kwargs: Any) -> None:
            self.lumos_extra_bufts = use_extra_bufts
            if native:
                kwargs["use_extra_bufts"] = use_extra_bufts
            super().__init__(model_path, **kwargs)
            params = self.model_params
            # ctypes keeps any attribute set on a Structure: check the field really exists
            fields = {name for name, *_ in type(params)._fields_}
            if not use_extra_bufts and ("use_extra_bufts" not in fields or params.use_extra_bufts):
                raise ConfigError(
                    "this llama-cpp-python cannot turn off llama.cpp's extra buffer types, which "
                    "crash on AMX CPUs: upgrade it (pip install -U llama-cpp-python) or rebuild "
                    "it with CMAKE_ARGS=-DGGML_NATIVE=OFF")

        @property
        def model_params(self) -> Any:
            return self.__dict__["_lumos_model_params"]

        @model_params.setter
        def model_params(self, params: Any) -> None:
            if self.lumos_extra_bufts is not None:
                params.use_extra_bufts = self.lumos_extra_bufts
            self.__dict__["_lumos_model_params"] = params

        def eval(self, tokens: Sequence[int]) -> None:
            start = time.perf_counter()
            try:
                super().eval(tokens)
                self.lumos_evaluated += len(tokens)
            finally:
                self.lumos_seconds += time.perf_counter() - start

        def sample(self, *args: Any, **kwargs: Any) -> int:
            start = time.perf_counter()
            try:
                token = int(super().sample(*args, **kwargs))
                if self.lumos_grammar is not None:
                    token = self._lumos_constrain(token, kwargs.get("idx"))
                return token
            finally:
                self.lumos_seconds += time.perf_counter() - start

        def _lumos_constrain(self, token: int, idx: int | None) -> int:
            """Greedy grammar sampling, checking the unconstrained choice first.

            Applying a grammar to all 150k candidates costs more than a decode step; the
            unconstrained argmax is usually allowed, so check that one token and filter the
            whole vocabulary only when it is not (as llama.cpp's common sampler does).
            """
            import llama_cpp

            grammar = self.lumos_grammar
            single = llama_cpp.llama_token_data(token, 1.0, 0.0)
            one = llama_cpp.llama_token_data_array(ctypes.pointer(single), 1, -1, False)
            llama_cpp.llama_sampler_apply(grammar, ctypes.byref(one))
            if single.logit == -np.inf:
                ridx = -1 if idx is None else idx - self.n_tokens
                logits = llama_cpp.llama_get_logits_ith(self.ctx, ridx)
                candidates = self._candidates
                candidates.copy_logits(np.ctypeslib.as_array(logits, shape=(self._n_vocab,)))
                llama_cpp.llama_sampler_apply(grammar, ctypes.byref(candidates.candidates))
                best = int(np.argmax(candidates.candidates_data.logit))
                if candidates.candidates_data.logit[best] == -np.inf:
                    return int(self.token_eos())  # dead end: end the output, accept nothing
                token = int(candidates.candidates_data.id[best])
            if not llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
                # accepting end-of-generation into an incomplete grammar aborts in llama.cpp
                llama_cpp.llama_sampler_accept(grammar, token)
            return token

    return PooledLlama  # type: ignore[return-value]


# --------------------------------------------------------------------------- KV states


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


@dataclass(eq=False)  # identity: the token arrays do not compare as booleans
class _SavedState:
    tokens: np.ndarray
    data: Any  # ctypes uint8 array from llama_state_get_data
    size: int


class KVStates:
    """A few saved KV states of one llama context, keyed by their token sequences.

    Uses the raw ``llama_state_get_data``/``set_data`` rather than ``Llama.save_state``:
    the latter also copies up to ``n_batch x n_vocab`` float logits (311 MB for Qwen2.5),
    which sampling does not need. All methods run under the pooled model's lock.
    """

    def __init__(
        self, capacity: int = KV_STATES_PER_MODEL, max_bytes: int = KV_STATE_BYTES
    ) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._saved: list[_SavedState] = []  # least recently used first
        self.seconds = 0.0

    def __len__(self) -> int:
        return len(self._saved)

    def token_counts(self) -> list[int]:
        """Lengths of the saved states, least recently used first (for tests and benchmarks)."""
        return [len(s.tokens) for s in self._saved]

    def prepare(self, llm: Llama, prompt: np.ndarray) -> bool:
        """Make the live context the best available prefix of ``prompt``; True if restored."""
        live = llm.input_ids[: llm.n_tokens]
        live_match = _common_prefix(live, prompt)
        best, best_match = None, live_match
        for saved in self._saved:
            match = _common_prefix(saved.tokens, prompt)
            if match > best_match:
                best, best_match = saved, match
        if best is not None:
            self._touch(best)  # (restoring works even if stashing the live one evicts it)
        if best is not None or live_match < len(live):
            self._stash(llm, live)  # the live context is about to be overwritten
        if best is None:
            return False
        self._restore(llm, best)
        return True

    def _stash(self, llm: Llama, live: np.ndarray) -> None:
        n = len(live)
        if n == 0:
            return
        for kept in self._saved:
            if len(kept.tokens) >= n and _common_prefix(kept.tokens, live) == n:
                self._touch(kept)  # already covered by a longer saved state
                return
        self._saved = [
            s for s in self._saved if _common_prefix(s.tokens, live) < len(s.tokens)
        ]  # states that are prefixes of the live one are dominated by it
        state = self._save(llm, live)
        if state is None:
            return
        self._saved.append(state)
        while len(self._saved) > self.capacity or self.nbytes() > self.max_bytes:
            self._saved.pop(0)

    def nbytes(self) -> int:
        """Bytes held by the saved states."""
        return sum(s.size for s in self._saved)

    def _touch(self, saved: _SavedState) -> None:
        self._saved.remove(saved)
        self._saved.append(saved)

    def _save(self, llm: Llama, live: np.ndarray) -> _SavedState | None:
        import llama_cpp

        start = time.perf_counter()
        try:
            size = llama_cpp.llama_state_get_size(llm.ctx)
            if size > self.max_bytes:
                return None
            data = (ctypes.c_uint8 * size)()
            written = llama_cpp.llama_state_get_data(llm.ctx, data, size)
            return _SavedState(live.copy(), data, int(written))
        finally:
            self.seconds += time.perf_counter() - start

    def _restore(self, llm: Llama, saved: _SavedState) -> None:
        import llama_cpp

        start = time.perf_counter()
        if llama_cpp.llama_state_set_data(llm.ctx, saved.data, saved.size) != saved.size:
            raise RuntimeError("llama_state_set_data failed to restore a saved KV state")
        n = len(saved.tokens)
        llm.input_ids[:n] = saved.tokens
        llm.n_tokens = n
        llm._requires_eval = True  # restored logits are stale: Llama.generate re-decodes one
        self.seconds += time.perf_counter() - start
