"""The model side of training: the optional imports, the base model and tokenizer, LoRA wrapping.

A base is a GGUF file (``transformers`` de-quantizes it to float32; ~40 s for the 0.5B
default) or a Hugging Face checkpoint folder. The tokenizer comes from the same place, so
its chat template is the one the GGUF carries and the backend renders at run time.
"""

from __future__ import annotations

import importlib
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lumos_graph.errors import ConfigError
from lumos_graph.llm.files import check_gguf
from lumos_graph.llm.models import resolve_model

TRAIN_EXTRA_HINT = 'pip install "lumos-graph[train]"'
_TRAIN_PACKAGES = ("torch", "transformers", "peft")


def require_train_packages() -> None:
    """Fail early, with the install command, when the training extra is missing.

    Raises:
        ConfigError: torch, transformers or peft cannot be imported.
    """
    missing = []
    for name in _TRAIN_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(
            f"training needs {', '.join(missing)}: {TRAIN_EXTRA_HINT} "
            "(a CPU-only build of torch is enough)"
        )


@dataclass(frozen=True)
class BaseSource:
    """Where the base model comes from.

    Attributes:
        folder: the folder given to ``from_pretrained``.
        gguf_file: the GGUF file name inside ``folder``, or ``None`` for a HF checkpoint.
    """

    folder: Path
    gguf_file: str | None

    @property
    def gguf_path(self) -> Path | None:
        """The GGUF file, when the base is one (adapters are exported against it)."""
        return self.folder / self.gguf_file if self.gguf_file else None

    def describe(self) -> str:
        return str(self.gguf_path or self.folder)


def resolve_base(spec: str) -> BaseSource:
    """A preset name, a ``.gguf`` path, or a Hugging Face checkpoint folder.

    Raises:
        ConfigError: nothing usable at ``spec``.
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path} is not a Hugging Face checkpoint (no config.json)")
        return BaseSource(path.absolute(), None)
    if path.is_file():
        gguf = check_gguf(path)
        return BaseSource(gguf.parent, gguf.name)
    gguf = resolve_model(spec).path
    return BaseSource(gguf.parent, gguf.name)


def resolve_precision(precision: str) -> str:
    """``"bf16"`` or ``"fp32"``: ``"auto"`` is bf16 where the CPU does bfloat16 in hardware.

    AVX512-BF16 or AMX: there oneDNN runs bfloat16 matmuls several times faster than float32
    (2-3.7x measured on an AMD EPYC with AVX512-BF16). Elsewhere bfloat16 is emulated and slower.
    """
    if precision != "auto":
        return precision
    import torch

    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(torch.cpu, name, None)  # private in torch 2.x: absent means unknown
        if check is not None and check():
            return "bf16"
    return "fp32"


def _kwargs(source: BaseSource) -> dict[str, Any]:
    return {"gguf_file": source.gguf_file} if source.gguf_file else {}


def load_tokenizer(source: BaseSource) -> Any:
    """The base's tokenizer, with a chat template and a padding token.

    Raises:
        ConfigError: the tokenizer has no chat template.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source.folder), **_kwargs(source))
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"{source.describe()} has no chat template to train on")
    return tokenizer


def load_base_model(source: BaseSource) -> tuple[Any, float]:
    """The base model in float32 on the CPU, and the seconds it took to load."""
    import torch
    from transformers import AutoModelForCausalLM

    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        str(source.folder), dtype=torch.float32, **_kwargs(source)
    )
    model.config.use_cache = False  # training never decodes; the KV cache only costs memory
    return model, time.perf_counter() - started


def add_lora(
    base: Any,
    *,
    rank: int,
    alpha: int,
    dropout: float,
    target_modules: tuple[str, ...],
    init_weights: bool = True,
) -> Any:
    """Wrap ``base`` in a fresh LoRA adapter (peft); only the adapter is trainable.

    Raises:
        ConfigError: no module of the base matches ``target_modules``.
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=init_weights,
    )
    try:
        with warnings.catch_warnings():
            # peft asks transformers 5 for a deprecated attribute; nothing for users to act on
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*",
                                    category=FutureWarning)
            return get_peft_model(base, config)
    except ValueError as error:  # peft: "Target modules ... not found in the base model"
        raise ConfigError(f"LoRA target modules {list(target_modules)}: {error}") from error


def remove_lora(model: Any) -> Any:
    """The base model without the adapter layers, ready for the next adapter."""
    return model.unload()
