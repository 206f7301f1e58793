"""Exporting peft LoRA adapters to GGUF (lumos_graph.llm.lora_gguf).

The decisive check: a tiny random model is written both as a Hugging Face model and as a GGUF
base (by :func:`write_tiny_gguf`, the way llama.cpp's converter lays it out), a random LoRA is
exported, and llama.cpp's logits with the adapter equal peft's, for a ``qwen2`` and a ``llama``
base (whose q/k rows llama.cpp permutes). With the real default model, an exported adapter
loads through ``ChatLlamaCpp(lora_path=...)`` and changes what it says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lumos_graph.errors import ConfigError
from tests.needs import need

# peft 0.21 reads an attribute transformers 5 deprecates; nothing of ours
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")

gguf = need("gguf")
torch = need("torch")
transformers = need("transformers")
peft = need("peft")

from lumos_graph.llm.lora_gguf import check_lora_gguf, export_lora_gguf

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
VOCAB = 256 + len(SPECIAL_TOKENS)


# --------------------------------------------------------------------------- tiny models


def _byte_tokens() -> list[str]:
    """GPT-2's byte-to-unicode alphabet: one token per byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def tiny_model(arch: str, seed: int = 0, hidden: int = 64) -> Any:
    """A random 2-layer causal LM (``qwen2`` or ``llama``) over a byte vocabulary."""
    torch.manual_seed(seed)
    common: dict[str, Any] = {
        "vocab_size": VOCAB, "hidden_size": hidden, "intermediate_size": 2 * hidden,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 256, "tie_word_embeddings": False, "rms_norm_eps": 1e-6}
    if arch == "qwen2":
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common))
    else:
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**common))
    with torch.no_grad():  # the default init is tiny; bigger weights make the logits differ
        for param in model.parameters():
            if param.ndim == 2:
                param.normal_(0.0, 0.15)
    return model.eval()


def _permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_tiny_gguf(model: Any, path: Path) -> Path:
    """Write ``model`` as a float32 GGUF the way llama.cpp's converter does (tensor names,
    hyperparameters, q/k permutation for llama), with a byte-level GPT-2 vocabulary."""
    config = model.config
    arch = config.model_type
    rope = (getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(float(rope))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2" if arch == "qwen2" else "default")
    writer.add_token_list([*_byte_tokens(), *SPECIAL_TOKENS])
    writer.add_token_types([gguf.TokenType.NORMAL] * 256 + [gguf.TokenType.CONTROL] * 3)
    writer.add_token_merges(["Ġ t"])
    writer.add_bos_token_id(256)
    writer.add_eos_token_id(258)
    names = gguf.get_tensor_name_map(
        {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch], config.num_hidden_layers
    )
    for key, tensor in model.state_dict().items():
        data = tensor.detach().float().numpy()
        if arch == "llama" and key.endswith("q_proj.weight"):
            data = _permute(data, config.num_attention_heads)
        elif arch == "llama" and key.endswith("k_proj.weight"):
            data = _permute(data, config.num_key_value_heads)
        name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        assert name is not None, key
        writer.add_tensor(name, np.ascontiguousarray(data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def random_lora(
    model: Any, folder: Path, targets: list[str], b_std: float = 0.05, **options: Any
) -> Any:
    """Wrap ``model`` in a LoRA whose B is random too (peft's ``init_lora_weights=False``)."""
    torch.manual_seed(1)
    config = peft.LoraConfig(r=8, lora_alpha=16, target_modules=targets,
                             init_lora_weights=False, **options)
    wrapped = peft.get_peft_model(model, config)
    with torch.no_grad():  # peft's random B is small; make the adapter matter
        for name, param in wrapped.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, b_std)
    wrapped.save_pretrained(str(folder))
    return wrapped.eval()


def llama_logits(base: Path, tokens: list[int], lora: Path | None = None) -> np.ndarray:
    from llama_cpp import Llama

    llm = Llama(str(base), lora_path=str(lora) if lora else None, n_ctx=64, n_batch=64,
                n_threads=2, logits_all=True, verbose=False)
    try:
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)], dtype=np.float32)
    finally:
        llm.close()


def hf_logits(model: Any, tokens: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(input_ids=torch.tensor([tokens])).logits[0].float().numpy()


TOKENS = [256, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10, 258]


# --------------------------------------------------------------------------- export fidelity


@pytest.mark.parametrize(
    ("arch", "targets", "options"),
    [
        ("qwen2", ["q_proj", "k_proj", "v_proj", "o_proj"], {}),
        ("llama", ["q_proj", "k_proj", "v_proj", "o_proj"], {}),
        # every linear layer, rsLoRA and a per-module alpha: the scalings folded into B
        ("qwen2", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
         {"use_rslora": True, "alpha_pattern": {"v_proj": 4}}),
    ],
    ids=["qwen2-attention", "llama-attention-permuted", "qwen2-all-rslora-alpha-pattern"],
)
def test_exported_adapter_gives_llama_cpp_the_logits_of_peft(
    tmp_path: Path, arch: str, targets: list[str], options: dict[str, Any]
) -> None:
    model = tiny_model(arch)
    base = write_tiny_gguf(model, tmp_path / "base.gguf")
    plain = hf_logits(model, TOKENS)
    # the helper's base is right: llama.cpp reproduces transformers without an adapter
    np.testing.assert_allclose(llama_logits(base, TOKENS), plain, atol=1e-2)

    adapted = random_lora(model, tmp_path / "adapter", targets, **options)
    expected = hf_logits(adapted, TOKENS)
    written = export_lora_gguf(tmp_path / "adapter", base, tmp_path / "lora.gguf")
    got = llama_logits(base, TOKENS, written.path)

    assert np.abs(expected - plain).max() > 1.0  # the adapter changes the model a lot ...
    np.testing.assert_allclose(got, expected, atol=2e-2)  # ... and llama.cpp applies it exactly
    assert written.tensors == 2 * len(targets) and written.rank == 8
    assert check_lora_gguf(written.path, base) == written.tensors


def test_export_writes_the_converter_layout(tmp_path: Path) -> None:
    model = tiny_model("qwen2")
    base = write_tiny_gguf(model, tmp_path / "base.gguf")
    random_lora(model, tmp_path / "adapter", ["q_proj", "v_proj"])
    written = export_lora_gguf(tmp_path / "adapter", base, tmp_path / "out" / "lora.gguf")

    reader = gguf.GGUFReader(str(written.path))
    fields = {key: reader.fields[key].contents() for key in
              ("general.architecture", "general.type", "adapter.type", "adapter.lora.alpha")}
    assert fields == {"general.architecture": "qwen2", "general.type": "adapter",
                      "adapter.type": "lora", "adapter.lora.alpha": 16.0}
    tensors = {t.name: (t.tensor_type, tuple(int(n) for n in t.shape)) for t in reader.tensors}
    f16 = gguf.GGMLQuantizationType.F16
    assert tensors["blk.0.attn_q.weight.lora_a"] == (f16, (64, 8))  # ggml order: (in, rank)
    assert tensors["blk.0.attn_q.weight.lora_b"] == (f16, (8, 64))  # (rank, out)
    assert tensors["blk.1.attn_v.weight.lora_b"] == (f16, (8, 32))  # 2 kv heads of 16
    assert len(tensors) == 8
    assert written.bytes == written.path.stat().st_size
    assert not list(written.path.parent.glob("*.partial"))


# --------------------------------------------------------------------------- mistakes


def test_adapter_of_another_model_is_refused_before_llama_cpp_sees_it(tmp_path: Path) -> None:
    base = write_tiny_gguf(tiny_model("qwen2"), tmp_path / "base.gguf")
    random_lora(tiny_model("qwen2", hidden=32), tmp_path / "small", ["q_proj"])
    with pytest.raises(ConfigError, match="trained on another model"):
        export_lora_gguf(tmp_path / "small", base, tmp_path / "lora.gguf")
    assert not (tmp_path / "lora.gguf").exists()

    # an adapter exported for the small model does not fit the big base either
    small_base = write_tiny_gguf(tiny_model("qwen2", hidden=32), tmp_path / "small.gguf")
    small = export_lora_gguf(tmp_path / "small", small_base, tmp_path / "small-lora.gguf")
    with pytest.raises(ConfigError, match="another model"):
        check_lora_gguf(small.path, base)
    with pytest.raises(ConfigError, match="not a LoRA adapter"):
        check_lora_gguf(base, base)


def test_unsupported_adapters_and_architectures_are_config_errors(tmp_path: Path) -> None:
    model = tiny_model("qwen2")
    base = write_tiny_gguf(model, tmp_path / "base.gguf")
    with pytest.raises(ConfigError, match="not a peft adapter"):
        export_lora_gguf(tmp_path, base, tmp_path / "x.gguf")

    random_lora(model, tmp_path / "adapter", ["q_proj"])
    config_file = tmp_path / "adapter" / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(ConfigError, match="DoRA"):
        export_lora_gguf(tmp_path / "adapter", base, tmp_path / "x.gguf")
    config_file.write_text(json.dumps(config))

    other = gguf.GGUFWriter(str(tmp_path / "gpt2.gguf"), "gpt2")
    other.write_header_to_file()
    other.write_kv_data_to_file()
    other.write_tensors_to_file()
    other.close()
    with pytest.raises(ConfigError, match="supports the llama, qwen2, qwen3"):
        export_lora_gguf(tmp_path / "adapter", tmp_path / "gpt2.gguf", tmp_path / "x.gguf")


# --------------------------------------------------------------------------- the real model


@pytest.mark.model
def test_adapter_for_the_default_model_loads_in_chat_llama_cpp_and_changes_it(
    tmp_path: Path, default_gguf: Path
) -> None:
    from lumos_graph.llm.llama import ChatLlamaCpp

    # Qwen2.5-0.5B's attention shapes without its weights (the adapter only needs the shapes)
    torch.manual_seed(0)
    shape_only = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(
        vocab_size=16, hidden_size=896, intermediate_size=16, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2))
    random_lora(shape_only, tmp_path / "adapter", ["q_proj", "v_proj"], b_std=0.3)
    written = export_lora_gguf(tmp_path / "adapter", default_gguf, tmp_path / "lora.gguf")
    assert written.tensors == 48 and check_lora_gguf(written.path, default_gguf) == 48

    def reply(lora: Path | None) -> str:
        model = ChatLlamaCpp(model_path=str(default_gguf), lora_path=str(lora) if lora else None,
                             n_ctx=512, max_tokens=12, n_threads=2)
        return str(model.invoke("What is 2 + 2? Answer with a number.").content)

    plain = reply(None)
    assert "4" in plain
    assert reply(written.path) != plain
