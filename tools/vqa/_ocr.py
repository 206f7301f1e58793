"""The OCR backend of VQA: text in an image read offline with RapidOCR (PP-OCRv4 on ONNX Runtime).

``rapidocr-onnxruntime`` ships its detection, orientation and recognition weights in the wheel,
so nothing is downloaded. It is the optional extra ``vqa``; it is imported on first use.
"""

from __future__ import annotations

import importlib.util
import statistics
import threading
from collections.abc import Sequence
from typing import Any

from lumos_graph.errors import ConfigError, ToolError
from lumos_graph.tools.vqa import _text as text

__all__ = ["OCRBackend", "group_lines", "ocr_available"]

_MODULE = "rapidocr_onnxruntime"


def ocr_available() -> bool:
    """Whether ``rapidocr-onnxruntime`` is installed (without importing it)."""
    return importlib.util.find_spec(_MODULE) is not None


class OCRBackend:
    """Answers any question about an image with the text it reads in it.

    The answer is ``Text in the image: LINE / LINE ...`` (lines top to bottom, words left to
    right) or ``No text found in the image.``; a downstream ``QA`` action answers the question
    from it. The OCR engine loads once, on first use (about a second); calls are serialized.

    Args:
        n_threads: ONNX Runtime threads; ``None`` means one per physical core.
        min_score: recognitions less confident than this are dropped (0 to 1).

    Raises:
        ConfigError: ``rapidocr-onnxruntime`` is not installed, or a bad argument.
    """

    def __init__(self, *, n_threads: int | None = None, min_score: float = 0.5) -> None:
        if not ocr_available():
            raise ConfigError(text.OCR_MISSING)
        if n_threads is not None and n_threads < 1:
            raise ConfigError(f"n_threads must be at least 1, not {n_threads}")
        if not 0.0 <= min_score <= 1.0:
            raise ConfigError(f"min_score must be between 0 and 1, not {min_score}")
        self.n_threads = n_threads
        self.min_score = min_score
        self._engine: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the OCR engine now (it loads on first use otherwise)."""
        with self._lock:
            self._load()

    def _load(self) -> Any:
        if self._engine is None:
            from rapidocr_onnxruntime import RapidOCR

            from lumos_graph.llm.hardware import physical_cores

            threads = self.n_threads or physical_cores()
            self._engine = RapidOCR(text_score=self.min_score, intra_op_num_threads=threads,
                                    inter_op_num_threads=1)
        return self._engine

    def read(self, image: bytes) -> list[str]:
        """The lines of text in ``image``, top to bottom.

        Raises:
            ToolError: the bytes cannot be decoded as an image.
        """
        with self._lock:
            engine = self._load()
            try:
                found, _ = engine(image)
            except OSError as error:  # PIL's UnidentifiedImageError, truncated files
                raise ToolError(text.BAD_IMAGE.format(reason=error)) from error
        return group_lines(found or [])

    def answer(self, image: bytes, question: str) -> str:
        """``Text in the image: ...`` for any question (OCR cannot do more)."""
        lines = self.read(image)
        if not lines:
            return text.OCR_NO_TEXT
        return text.OCR_ANSWER.format(text=text.OCR_LINE_SEP.join(lines))


def group_lines(found: Sequence[Sequence[Any]]) -> list[str]:
    """Join RapidOCR's boxes ``[corners, text, score]`` into lines in reading order.

    Boxes whose vertical centres are closer than half the smaller box height share a line;
    a line's words run left to right.
    """
    boxes = []
    for corners, words, _score in found:
        words = str(words).strip()
        if not words:
            continue
        ys = [float(p[1]) for p in corners]
        xs = [float(p[0]) for p in corners]
        boxes.append(((min(ys) + max(ys)) / 2, max(max(ys) - min(ys), 1.0), min(xs), words))
    boxes.sort()
    lines: list[list[tuple[float, float, float, str]]] = []
    for box in boxes:
        line = lines[-1] if lines else None
        if line is not None:
            centre = statistics.fmean(b[0] for b in line)
            height = min(box[1], min(b[1] for b in line))
            if abs(box[0] - centre) < height / 2:
                line.append(box)
                continue
        lines.append([box])
    return [" ".join(b[3] for b in sorted(line, key=lambda b: b[2])) for line in lines]
