"""Export a peft LoRA adapter to a GGUF adapter file that llama.cpp loads (``lora_path``).

The file is written directly with the ``gguf`` package, in the layout of llama.cpp's own
``convert_lora_to_gguf.py``: ``general.type = adapter``, ``adapter.type = lora``,
``adapter.lora.alpha``, and per adapted weight ``blk.N.attn_q.weight.lora_a`` (A, ``rank x in``)
and ``blk.N.attn_q.weight.lora_b`` (B, ``out x rank``) in float16. Writing it here rather than running the
converter means no download of llama.cpp's scripts at run time (that needs the network and a
matching source release), no de-quantized base checkpoint on disk and no patching of its
``config.json``: the base GGUF itself supplies the architecture, the tensor names and shapes
(every adapted weight is checked against it) and the head counts.

Weight names go from Hugging Face to GGUF through gguf-py's own tensor-name map. Scaling is
exact: llama.cpp scales every pair by ``alpha / rank``; where peft scales otherwise (rsLoRA,
per-module ``alpha_pattern``) the difference is folded into B. For ``llama`` models the
converter permutes the rows of ``q_proj``/``k_proj`` (rotary layout); the same permutation is
applied to B, since ``permute(B @ A) = permute(B) @ A``.

Only ``gguf``, ``safetensors`` and ``numpy`` are needed (torch only for bfloat16 adapters).

:func:`check_lora_gguf` validates any adapter file against a base before llama.cpp sees it:
llama-cpp-python 0.3.36 logs a mismatched adapter as an error, goes on, and then crashes the
process (segmentation fault) on the first decode.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from lumos_graph.errors import ConfigError

__all__ = ["SUPPORTED_ARCHITECTURES", "LoraExport", "check_lora_gguf", "export_lora_gguf"]

SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3")
"""GGUF architectures whose Hugging Face weights llama.cpp's converter writes unchanged, or
(``llama``) with the q/k row permutation this module reproduces."""
_PERMUTED = {"llama"}
_ADAPTER_FILE = "adapter_model.safetensors"
_CONFIG_FILE = "adapter_config.json"
_PAIR_RE = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.\w+)?\.weight$")


@dataclass(frozen=True)
class LoraExport:
    """What :func:`export_lora_gguf` wrote."""

    path: Path
    tensors: int
    """Adapted weights (each is an A and a B tensor in the file)."""
    rank: int
    alpha: float
    bytes: int


@dataclass(frozen=True)
class _Base:
    arch: str
    block_count: int
    head_count: int
    head_count_kv: int
    shapes: Mapping[str, tuple[int, ...]]  # GGUF tensor name -> (out, in), numpy order


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return None
    return field.contents()


def _first(value: Any) -> int | None:
    """An integer key, or the first of a per-layer list (some architectures vary by layer)."""
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else int(value)


def _read_base(base_gguf: Path, *, exportable: bool = True) -> _Base:
    """The base's architecture and tensor shapes, read once per file version: parsing a
    500 MB GGUF's header and tensor table is slow, and validation exports every checkpoint
    against the same base."""
    try:
        stat = base_gguf.stat()
    except OSError as error:
        raise ConfigError(f"cannot read base GGUF {base_gguf}: {error}") from error
    return _read_base_cached(base_gguf.resolve(), stat.st_size, stat.st_mtime_ns, exportable)


@lru_cache(maxsize=8)
def _read_base_cached(base_gguf: Path, _size: int, _mtime_ns: int, exportable: bool) -> _Base:
    import gguf

    try:
        reader = gguf.GGUFReader(str(base_gguf))
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read base GGUF {base_gguf}: {error}") from error
    arch = _field(reader, "general.architecture")
    if not isinstance(arch, str) or (exportable and arch not in SUPPORTED_ARCHITECTURES):
        raise ConfigError(
            f"LoRA export supports the {', '.join(SUPPORTED_ARCHITECTURES)} architectures, "
            f"not {arch!r} ({base_gguf}); llama.cpp's convert_lora_to_gguf.py converts others"
        )
    head_count = _first(_field(reader, f"{arch}.attention.head_count")) or 0
    head_count_kv = _first(_field(reader, f"{arch}.attention.head_count_kv")) or head_count
    shapes = {t.name: tuple(int(n) for n in reversed(t.shape)) for t in reader.tensors}
    return _Base(
        arch=arch,
        block_count=int(_field(reader, f"{arch}.block_count") or 0),
        head_count=head_count,
        head_count_kv=head_count_kv,
        shapes=shapes,
    )


def _load_tensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except (TypeError, SafetensorError):  # bfloat16 has no numpy dtype: go through torch
        from safetensors.torch import load_file as load_torch

        return {k: v.float().numpy() for k, v in load_torch(str(path)).items()}


def _pattern_value(patterns: Mapping[str, Any], module: str, default: float) -> float:
    """peft's per-module override: a key matches a module name's dotted suffix (as a regex)."""
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return float(value)
    return default


def _permute_rows(b: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute`` of the output rows (rotary halves interleaved)."""
    out, rank = b.shape
    return b.reshape(n_head, 2, out // n_head // 2, rank).swapaxes(1, 2).reshape(out, rank)


def _check_config(config: Mapping[str, Any], adapter_dir: Path) -> None:
    if config.get("peft_type", "LORA") != "LORA":
        raise ConfigError(f"{adapter_dir} is a {config.get('peft_type')} adapter, not LoRA")
    if config.get("use_dora"):
        raise ConfigError(f"{adapter_dir}: DoRA adapters cannot be exported to llama.cpp")
    if config.get("bias", "none") != "none" or config.get("modules_to_save"):
        raise ConfigError(
            f"{adapter_dir}: only LoRA A/B weights can be exported (no bias, no modules_to_save)"
        )


def export_lora_gguf(
    adapter_dir: str | os.PathLike[str],
    base_gguf: str | os.PathLike[str],
    out_gguf: str | os.PathLike[str],
) -> LoraExport:
    """Write the peft adapter in ``adapter_dir`` as a float16 GGUF LoRA for ``base_gguf``.

    Args:
        adapter_dir: a folder written by peft's ``save_pretrained`` (``adapter_config.json``
            and ``adapter_model.safetensors``), trained on the Hugging Face form of the base.
        base_gguf: the GGUF the adapter will be applied to (any quantization).
        out_gguf: the file to write (replaced atomically).

    Returns:
        What was written; load it with ``ChatLlamaCpp(model_path=base_gguf, lora_path=out)``.

    Raises:
        ConfigError: a missing or unsupported adapter, an unsupported architecture, or an
            adapter whose weights do not fit the base (trained on another model).
    """
    import gguf

    adapter = Path(adapter_dir)
    if not (adapter / _CONFIG_FILE).is_file() or not (adapter / _ADAPTER_FILE).is_file():
        raise ConfigError(f"{adapter} is not a peft adapter ({_CONFIG_FILE}, {_ADAPTER_FILE})")
    config = json.loads((adapter / _CONFIG_FILE).read_text(encoding="utf-8"))
    _check_config(config, adapter)
    base = _read_base(Path(base_gguf))
    names = gguf.get_tensor_name_map(
        {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[base.arch], base.block_count
    )
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in _load_tensors(adapter / _ADAPTER_FILE).items():
        match = _PAIR_RE.match(key)
        if match is None:
            raise ConfigError(f"{adapter}: unexpected tensor {key} (only LoRA A/B are exported)")
        pairs.setdefault(match["module"], {})[match["ab"]] = value

    alpha = float(config.get("lora_alpha", config.get("r", 8)))
    written: list[tuple[str, np.ndarray, np.ndarray]] = []
    for module, pair in sorted(pairs.items()):
        if set(pair) != {"A", "B"}:
            raise ConfigError(f"{adapter}: {module} lacks its lora_A or lora_B weight")
        a, b = pair["A"].astype(np.float32), pair["B"].astype(np.float32)
        target = names.get_name(module)
        if target is None or f"{target}.weight" not in base.shapes:
            raise ConfigError(f"{adapter}: no weight in {base_gguf} for {module}")
        out, into = base.shapes[f"{target}.weight"]
        rank = a.shape[0]
        if a.ndim != 2 or b.ndim != 2 or b.shape != (out, rank) or a.shape[1] != into:
            raise ConfigError(
                f"{adapter}: {module} is {b.shape[0]}x{a.shape[1]} but {target} of {base_gguf} "
                f"is {out}x{into}: the adapter was trained on another model"
            )
        module_alpha = _pattern_value(config.get("alpha_pattern") or {}, module, alpha)
        scaling = module_alpha / (rank**0.5 if config.get("use_rslora") else rank)
        b = b * (scaling * rank / alpha)  # llama.cpp applies alpha / rank
        if base.arch in _PERMUTED and target.endswith(".attn_q"):
            b = _permute_rows(b, base.head_count)
        elif base.arch in _PERMUTED and target.endswith(".attn_k"):
            b = _permute_rows(b, base.head_count_kv)
        written.append((target, a, b))
    if not written:
        raise ConfigError(f"{adapter} holds no LoRA weights")

    target_path = Path(out_gguf)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(
        prefix=f".{target_path.name}.", suffix=".partial", dir=target_path.parent
    )
    os.close(handle)
    try:
        writer = gguf.GGUFWriter(temp_name, base.arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        for target, a, b in written:
            writer.add_tensor(f"{target}.weight.lora_a", a.astype(np.float16))
            writer.add_tensor(f"{target}.weight.lora_b", b.astype(np.float16))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target_path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    ranks = {a.shape[0] for _, a, _ in written}
    return LoraExport(
        path=target_path,
        tensors=len(written),
        rank=max(ranks),
        alpha=alpha,
        bytes=target_path.stat().st_size,
    )


def check_lora_gguf(lora_gguf: str | os.PathLike[str], base_gguf: str | os.PathLike[str]) -> int:
    """Check that a GGUF LoRA adapter fits a base model; returns the number of adapted weights.

    Reads only the two files' headers (memory-mapped), so it is cheap enough to run before
    every load.

    Raises:
        ConfigError: not a LoRA adapter GGUF, another architecture, or a tensor the base does
            not have or whose shape does not fit.
    """
    import gguf

    try:
        reader = gguf.GGUFReader(str(lora_gguf))
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read LoRA adapter {lora_gguf}: {error}") from error
    if _field(reader, "general.type") != "adapter" or _field(reader, "adapter.type") != "lora":
        raise ConfigError(f"{lora_gguf} is not a LoRA adapter GGUF (general.type=adapter)")
    base = _read_base(Path(base_gguf), exportable=False)
    arch = _field(reader, "general.architecture")
    if arch != base.arch:
        raise ConfigError(f"{lora_gguf} is a LoRA for {arch!r}, but {base_gguf} is {base.arch!r}")
    shapes = {t.name: tuple(int(n) for n in reversed(t.shape)) for t in reader.tensors}
    adapted = 0
    for name, a_shape in shapes.items():
        if not name.endswith(".lora_a"):
            continue
        weight = name[: -len(".lora_a")]
        b_shape = shapes.get(f"{weight}.lora_b")
        if weight not in base.shapes or b_shape is None:
            raise ConfigError(f"{lora_gguf}: {weight} is not in {base_gguf} or lacks lora_b")
        out, into = base.shapes[weight]
        if a_shape[1:] != (into,) or b_shape != (out, a_shape[0]):
            raise ConfigError(
                f"{lora_gguf}: {weight} does not fit {base_gguf} (A {a_shape}, B {b_shape}, "
                f"weight {out}x{into}): the adapter was made for another model"
            )
        adapted += 1
    if adapted == 0 or adapted * 2 != len(shapes):
        raise ConfigError(f"{lora_gguf}: expected lora_a/lora_b pairs only")
    return adapted
