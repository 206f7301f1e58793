"""One llama.cpp context as lumos-graph runs it: the ``Llama`` subclass and its saved KV states.

:func:`llama_class` is the ``Llama`` every pooled model loads: it can turn off repacked weight
buffers (the AMX crash workaround), holds up to :data:`MAX_SEQUENCES` sequences in one unified
KV cache (for :mod:`lumos_graph.llm.llama_batch`), and counts the tokens it decodes and the
time it spends.
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

__all__ = ["MAX_SEQUENCES", "KVStates", "common_prefix", "extra_bufts_llama", "llama_class"]

MAX_SEQUENCES = 8  # sequences of one context; more concurrent calls wait for a free one
KV_STATES_PER_MODEL = 4
KV_STATE_BYTES = 1 << 30  # per model; a 7B LLaMA-2 state is ~0.5 MB per token


# --------------------------------------------------------------------------- the Llama subclass


def extra_bufts_llama(base: type) -> type:
    """``base`` (``llama_cpp.Llama``) with ``use_extra_bufts`` set from ``lumos_extra_bufts``
    (``None``: llama.cpp's default) the moment ``Llama.__init__`` creates the model parameters,
    before it loads the model: llama-cpp-python 0.3.36 does not take the keyword. Used by our
    backend (:func:`llama_class`) and by ``llama_cpp.server`` (:mod:`.llama_server`)."""

    class ExtraBuftsLlama(base):  # type: ignore[misc, valid-type]
        lumos_extra_bufts: bool | None = None

        @property
        def model_params(self) -> Any:
            return self.__dict__["_lumos_model_params"]

        @model_params.setter
        def model_params(self, params: Any) -> None:
            if self.lumos_extra_bufts is not None:
                params.use_extra_bufts = self.lumos_extra_bufts
            self.__dict__["_lumos_model_params"] = params

    return ExtraBuftsLlama


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

    class PooledLlama(extra_bufts_llama(Llama)):  # type: ignore[misc]
        lumos_evaluated = 0  # tokens run through llama_decode, ever
        lumos_seconds = 0.0  # wall time in decode and sampling, ever

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
        def context_params(self) -> Any:
            return self.__dict__["_lumos_context_params"]

        @context_params.setter
        def context_params(self, params: Any) -> None:
            # several sequences in one unified KV cache: concurrent calls decode as one batch
            # and share their common prompt prefix (lumos_graph.llm.llama_batch)
            params.n_seq_max = MAX_SEQUENCES
            params.kv_unified = True
            self.__dict__["_lumos_context_params"] = params

        def eval(self, tokens: Sequence[int]) -> None:
            start = time.perf_counter()
            try:
                super().eval(tokens)
                self.lumos_evaluated += len(tokens)
            finally:
                self.lumos_seconds += time.perf_counter() - start

    return PooledLlama  # type: ignore[return-value]


# --------------------------------------------------------------------------- KV states


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading tokens two token arrays share."""
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
        live_match = common_prefix(live, prompt)
        best, best_match = None, live_match
        for saved in self._saved:
            match = common_prefix(saved.tokens, prompt)
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
            if len(kept.tokens) >= n and common_prefix(kept.tokens, live) == n:
                self._touch(kept)  # already covered by a longer saved state
                return
        self._saved = [
            s for s in self._saved if common_prefix(s.tokens, live) < len(s.tokens)
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
