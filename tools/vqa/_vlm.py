"""The vision-language backend of VQA: a GGUF model and its projector through llama-cpp-python.

llama-cpp-python runs multimodal models with a *chat handler* that owns the projector (the
``mmproj`` GGUF, loaded by llama.cpp's ``mtmd`` library): the handler renders the prompt,
encodes the image into embeddings and decodes them into the text model's context. The text
model is loaded with :func:`~lumos_graph.llm.llama_context.llama_class`, so the AMX safeguard
(``use_extra_bufts=False`` on AMX CPUs) applies here as to every other model.
"""

from __future__ import annotations

import base64
import ctypes
import functools
import io
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lumos_graph.errors import ConfigError, ToolError
from lumos_graph.tools.vqa import _text as text
from lumos_graph.tools.vqa._images import image_format

__all__ = ["CHAT_FORMATS", "VLMBackend", "VLMReply"]

CHAT_FORMATS: dict[str, str] = {
    # the names llama-cpp-python's server uses -> classes of llama_cpp.llama_chat_format
    "llava-1-5": "Llava15ChatHandler",
    "llava-1-6": "Llava16ChatHandler",
    "obsidian": "ObsidianChatHandler",
    "moondream": "MoondreamChatHandler",
    "nanollava": "NanoLlavaChatHandler",
    "llama-3-vision-alpha": "Llama3VisionAlphaChatHandler",
    "minicpm-v-2.6": "MiniCPMv26ChatHandler",
    "qwen2.5-vl": "Qwen25VLChatHandler",
    "gemma4": "Gemma4ChatHandler",
    "mtmd": "MTMDChatHandler",  # any model whose GGUF chat template handles images
}
"""Chat formats of :class:`VLMBackend` and the llama-cpp-python handler class of each."""

_DECODABLE = {"PNG", "JPEG", "GIF", "BMP"}  # what llama.cpp's stb_image reads
_GGML_LOG_LEVEL_ERROR = 4  # ggml.h (llama-cpp-python's _logger.py still has the older 3)


@dataclass(frozen=True)
class VLMReply:
    """One answer of a vision-language model and what it cost.

    Attributes:
        text: the answer, whitespace collapsed to one line.
        prompt_tokens: prompt tokens including the image's (the image's count shows here).
        completion_tokens: tokens generated.
        seconds: wall time of the call (image encoding included, loading not).
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float


class VLMBackend:
    """Answers questions about images with a local vision-language GGUF model.

    Example:
        >>> vlm = VLMBackend("llava-v1.5-7b.Q4_K_M.gguf", "mmproj-model-f16.gguf")  # doctest: +SKIP
        >>> vlm.answer(open("sign.png", "rb").read(), "What does the sign say?")  # doctest: +SKIP
        'STOP'

    The model loads on first use (or :meth:`load`); calls are serialized. Decoding is greedy.

    Args:
        model_path: the language model GGUF.
        mmproj_path: its multimodal projector GGUF (CLIP/SigLIP encoder and projection).
        chat_format: how the model was trained to see images; a key of :data:`CHAT_FORMATS`.
        n_ctx: context window in tokens (image tokens included: 576 for LLaVA-1.5).
        n_threads: CPU threads; ``None`` means one per physical core.
        max_tokens: most tokens of an answer.
        use_extra_bufts: llama.cpp repacked weight buffers; ``None`` means off on AMX CPUs.
        verbose: let llama.cpp and the projector loader log to stderr.

    Raises:
        ConfigError: a file is missing or not GGUF, an unknown chat format, a bad number.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        mmproj_path: str | os.PathLike[str],
        *,
        chat_format: str = "llava-1-5",
        n_ctx: int = 2048,
        n_threads: int | None = None,
        max_tokens: int = 64,
        use_extra_bufts: bool | None = None,
        verbose: bool = False,
    ) -> None:
        from lumos_graph.llm.files import check_gguf

        self.model_path = check_gguf(model_path)
        self.mmproj_path = check_gguf(mmproj_path)
        if chat_format not in CHAT_FORMATS:
            raise ConfigError(
                f"unknown VQA chat format {chat_format!r}; choose one of "
                f"{', '.join(CHAT_FORMATS)}")
        for name, value in (("n_ctx", n_ctx), ("max_tokens", max_tokens),
                            ("n_threads", n_threads)):
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, not {value}")
        self.chat_format = chat_format
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.max_tokens = max_tokens
        self.use_extra_bufts = use_extra_bufts
        self.verbose = verbose
        self._llm: Any = None
        self._failure: ConfigError | None = None  # a failed load is not retried every call
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"VLMBackend({str(self.model_path)!r}, {str(self.mmproj_path)!r}, "
                f"chat_format={self.chat_format!r})")

    # -- loading

    def load(self) -> None:
        """Load the model and its projector now; a no-op once loaded.

        A failed load is remembered (a large model is not reloaded at every action) until
        :meth:`close`.

        Raises:
            ConfigError: llama.cpp cannot load the model, or the projector does not fit it.
        """
        with self._lock:
            self._load()

    def close(self) -> None:
        """Free the model, or forget a failed load; the next call loads again."""
        with self._lock:
            self._failure = None
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    def _load(self) -> Any:
        if self._llm is not None:
            return self._llm
        if self._failure is not None:
            raise self._failure
        try:
            self._llm = self._open()
        except ConfigError as error:
            self._failure = error
            raise
        return self._llm

    def _open(self) -> Any:
        import llama_cpp.llama_chat_format as formats

        from lumos_graph.llm.hardware import has_amx, physical_cores
        from lumos_graph.llm.llama_context import llama_class

        handler = getattr(formats, CHAT_FORMATS[self.chat_format])(
            clip_model_path=str(self.mmproj_path), verbose=self.verbose)
        extra_bufts = not has_amx() if self.use_extra_bufts is None else self.use_extra_bufts
        threads = self.n_threads or physical_cores()
        with _mtmd_errors() as errors:
            try:
                llm = llama_class()(
                    str(self.model_path), use_extra_bufts=extra_bufts, chat_handler=handler,
                    n_ctx=self.n_ctx, n_threads=threads, n_threads_batch=threads,
                    verbose=self.verbose)
            except ValueError as error:
                raise ConfigError(f"llama.cpp cannot load {self.model_path}: {error}") from error
            try:
                # The projector loads on the first chat call otherwise: load it now, so that a
                # wrong mmproj is a configuration error and not a failing action.
                init = getattr(handler, "_init_mtmd_context", None)
                if init is not None:
                    init(llm)
            except ValueError as error:
                llm.close()
                detail = " ".join(errors) or str(error)
                raise ConfigError(
                    f"cannot use {self.mmproj_path} as the projector of {self.model_path}: "
                    f"{detail}") from error
        return llm

    # -- answering

    def ask(self, question: str, image: bytes | None = None) -> VLMReply:
        """Ask ``question`` about ``image`` (or with no image), with the usage of the call.

        Raises:
            ToolError: the image cannot be decoded or does not fit in the context.
            ConfigError: the model or its projector cannot be loaded.
        """
        content: list[dict[str, Any]] = []
        if image is not None:
            content.append({"type": "image_url", "image_url": {"url": _data_url(image)}})
        content.append({"type": "text", "text": text.VLM_PROMPT.format(question=question)})
        with self._lock:
            llm = self._load()
            started = time.perf_counter()
            try:
                response = llm.create_chat_completion(
                    messages=[{"role": "user", "content": content}],
                    temperature=0.0, repeat_penalty=1.0, max_tokens=self.max_tokens)
            except ValueError as error:  # an undecodable image, a prompt over n_ctx
                reason = str(error)
                if "n_ctx" in reason or "broadcast" in reason:
                    # llama-cpp-python checks against llama.cpp's padded context, so an
                    # overflow may surface as numpy failing to copy into its token buffer
                    reason = text.VLM_TOO_LONG.format(n_ctx=self.n_ctx)
                raise ToolError(text.VLM_FAILED.format(reason=reason)) from error
            seconds = time.perf_counter() - started
        answer = " ".join(str(response["choices"][0]["message"]["content"] or "").split())
        usage = response["usage"]
        return VLMReply(answer, int(usage["prompt_tokens"]), int(usage["completion_tokens"]),
                        seconds)

    def answer(self, image: bytes, question: str) -> str:
        """The model's short answer to ``question`` about ``image``."""
        return self.ask(question, image).text


def _data_url(image: bytes) -> str:
    """``image`` as a data URL llama.cpp can decode (other formats converted to PNG)."""
    kind = image_format(image)
    if kind not in _DECODABLE:
        image, kind = _to_png(image), "PNG"
    return f"data:image/{kind.lower()};base64,{base64.b64encode(image).decode('ascii')}"


def _to_png(image: bytes) -> bytes:
    try:
        from PIL import Image
    except ImportError as error:
        raise ToolError(text.BAD_IMAGE.format(
            reason="llama.cpp reads PNG, JPEG, GIF and BMP; install Pillow to convert others"),
        ) from error
    try:
        with Image.open(io.BytesIO(image)) as opened:
            buffer = io.BytesIO()
            opened.convert("RGB").save(buffer, "PNG")
    except OSError as error:
        raise ToolError(text.BAD_IMAGE.format(reason=error)) from error
    return buffer.getvalue()


# --------------------------------------------------------------------------- mtmd logging


class _MtmdLog:
    """Routes the mtmd library's log through llama-cpp-python's (which obeys ``verbose``) and
    collects its error lines while a projector loads: llama-cpp-python reports only "Failed to
    load mtmd context", the reason (e.g. an embedding size mismatch) is in the log."""

    def __init__(self) -> None:
        import llama_cpp
        from llama_cpp import _logger, mtmd_cpp

        self._forward = _logger.llama_log_callback
        self._lock = threading.Lock()
        self.errors: list[str] | None = None

        def log(level: int, message: bytes, user_data: Any) -> None:
            if level == _GGML_LOG_LEVEL_ERROR and self.errors is not None:
                line = " ".join(message.decode("utf-8", errors="replace").split())
                if line:
                    self.errors.append(line)
            self._forward(level, message, user_data)

        self._callback = llama_cpp.llama_log_callback(log)  # kept alive with the instance
        mtmd_cpp.mtmd_helper_log_set(self._callback, ctypes.c_void_p(0))

    @contextmanager
    def capture(self) -> Iterator[list[str]]:
        with self._lock:
            self.errors = []
            try:
                yield self.errors
            finally:
                self.errors = None


@functools.cache
def _mtmd_log() -> _MtmdLog:
    return _MtmdLog()


@contextmanager
def _mtmd_errors() -> Iterator[list[str]]:
    with _mtmd_log().capture() as errors:
        yield errors
