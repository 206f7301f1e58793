"""Reading JSONL files with one-line, user-facing errors (datasets, training data, trajectories).

Every mistake is a :class:`~lumos_graph.errors.ConfigError` naming the file and line:
``cannot read PATH: ...`` or ``PATH:N: not JSON (...)``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lumos_graph.errors import ConfigError

__all__ = ["json_lines", "read_text"]


def read_text(path: Path) -> str:
    """The UTF-8 text of ``path``, un-gzipped when its name ends in ``.gz``."""
    try:
        raw = path.read_bytes()
        return (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")
    except (OSError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def json_lines(text: str, *, source: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed value)`` of each non-blank line of JSONL ``text``."""
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}:{n}: not JSON ({exc.msg})") from None
