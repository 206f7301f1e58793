"""LUMOS's multimodal action ``VQA([IMG], Question: ...)``: answer a question about an image.

The run's images arrive in the state as a list (``images``: paths, raw bytes, ``data:`` or
``http(s)`` URLs); ``[IMG]``/``IMG``/``[IMG1]`` is the first, ``IMG2`` the second, and so on.
A :class:`VQABackend` looks at the chosen image:

* :class:`VLMBackend` — a vision-language GGUF model and its projector (LLaVA-1.5/1.6,
  Moondream, Qwen2.5-VL, MiniCPM-V, ...) through llama-cpp-python's multimodal chat handlers;
  it answers any question, briefly.
* :class:`OCRBackend` — no model to configure: RapidOCR reads the text in the image offline
  (``pip install "lumos-graph[vqa]"``) and answers ``Text in the image: ...``, for a
  following ``QA`` action to answer from.

:func:`default_vqa_backend` picks the VLM when one is configured, else OCR when it is installed.
Without either, ``VQA`` still runs: it tells the model (and the trace) how to configure one.

```python
from lumos_graph.tools.vqa.actions import default_vqa_backend, vqa_action

action = vqa_action(default_vqa_backend())          # OCR, or None without rapidocr
action.executor("[IMG]", "Question: What does the sign say?", images=["sign.png"])
# 'Text in the image: STOP / OPEN 9-5'
```
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from lumos_graph.agent.actions import Action
from lumos_graph.errors import LumosError, ToolError
from lumos_graph.tools.vqa import _text as text
from lumos_graph.tools.vqa._images import DOWNLOAD_TIMEOUT, ImageSource, load_image
from lumos_graph.tools.vqa._ocr import OCRBackend, ocr_available
from lumos_graph.tools.vqa._vlm import CHAT_FORMATS, VLMBackend, VLMReply

__all__ = [
    "CHAT_FORMATS",
    "ImageSource",
    "OCRBackend",
    "VLMBackend",
    "VLMReply",
    "VQABackend",
    "default_vqa_backend",
    "load_image",
    "ocr_available",
    "vqa_action",
]

# [IMG], IMG2, [IMG_2], <image>, image 2, Picture 3, 2 — anything else means the first image
_IMAGE_REF = re.compile(r"^\W*(?:img|image|picture|photo|pic)?[\s_#-]*(\d*)\W*$", re.IGNORECASE)
_QUESTION_LABEL = re.compile(r"^\s*question\s*:\s*", re.IGNORECASE)


@runtime_checkable
class VQABackend(Protocol):
    """Anything that answers a question about one image."""

    def answer(self, image: bytes, question: str) -> str:
        """A short answer to ``question`` about ``image`` (encoded PNG/JPEG/... bytes).

        Raises:
            ToolError: the image cannot be used or the model fails; the text is an observation.
        """
        ...


def default_vqa_backend(
    vlm: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
    *,
    chat_format: str = "llava-1-5",
    n_threads: int | None = None,
) -> VQABackend | None:
    """The backend ``VQA`` should use: the VLM when configured, else OCR, else ``None``.

    Args:
        vlm: ``(model GGUF, mmproj GGUF)`` of a vision-language model, or ``None``.
        chat_format: the VLM's chat format (see :data:`CHAT_FORMATS`).
        n_threads: CPU threads of the VLM or the OCR; ``None`` means one per physical core.

    Raises:
        ConfigError: a VLM file is missing or not GGUF, or an unknown chat format (nothing is
            loaded here: models load on first use).
    """
    if vlm is not None:
        model_path, mmproj_path = vlm
        return VLMBackend(model_path, mmproj_path, chat_format=chat_format, n_threads=n_threads)
    if ocr_available():
        return OCRBackend(n_threads=n_threads)
    return None


def vqa_action(backend: VQABackend | None, *, timeout: float = DOWNLOAD_TIMEOUT) -> Action:
    """The ``VQA(image, question)`` action, looking at the run's images with ``backend``.

    Every failure is a :class:`~lumos_graph.errors.ToolError` the model reads: no image in the
    run, an image number past the last, an unreadable image, no backend (the message says how
    to configure one), a failing model.

    Args:
        backend: what answers; ``None`` when no vision model is configured.
        timeout: seconds to download an image given as an ``http(s)`` URL.
    """

    def run(image: str, question: str, *, images: Sequence[ImageSource] = ()) -> str:
        if not images:
            raise ToolError(text.NO_IMAGE)
        ref, question = _arguments(image, question)
        source = images[_pick(ref, len(images))]
        if backend is None:
            raise ToolError(text.NO_BACKEND)
        try:
            data = load_image(source, timeout=timeout)
        except LumosError as error:  # a missing file, a failed download, not an image
            raise ToolError(text.BAD_IMAGE.format(reason=error)) from error
        try:
            answer = backend.answer(data, question).strip()
        except ToolError:
            raise
        except LumosError as error:  # e.g. a model or projector that cannot load
            raise ToolError(text.VLM_FAILED.format(reason=error)) from error
        if not answer:
            raise ToolError(text.NO_ANSWER)
        return answer

    return Action(
        name="VQA",
        description=text.VQA_DESCRIPTION,
        params=("image", "question"),
        executor=run,
        needs_images=True,
    )


def _arguments(image: str, question: str) -> tuple[str, str]:
    """The image reference and the bare question (models sometimes swap the two)."""
    if _QUESTION_LABEL.match(image) and _IMAGE_REF.match(question):
        image, question = question, image
    question = _QUESTION_LABEL.sub("", question, count=1).strip()
    if not question:
        raise ToolError(text.EMPTY_QUESTION)
    return image, question


def _pick(ref: str, count: int) -> int:
    """The index of the image ``ref`` names (1-based numbers; no number: the first)."""
    match = _IMAGE_REF.match(ref)
    if match is None or not match.group(1):
        return 0
    number = int(match.group(1))
    if number > count:
        raise ToolError(text.NO_SUCH_IMAGE.format(number=number, count=count,
                                                  s="" if count == 1 else "s"))
    return max(number, 1) - 1
