"""Training LoRA adapters (lumos_graph.training.train, lumos-graph train).

Loss masks are checked on the real Qwen2.5 tokenizer read from the default GGUF, against what
llama.cpp tokenizes and what the backend renders at run time. Training runs on a tiny random
Qwen2 model with that tokenizer (seconds): losses fall, an interrupted run resumes to the very
weights of an uninterrupted one, glpft's two stages chain, and the CLI exports GGUF adapters.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from lumos_graph.agent import protocol
from lumos_graph.cli import train as cli_train
from lumos_graph.errors import ConfigError
from lumos_graph.training._batches import (
    IGNORE_INDEX,
    Conversation,
    TemplateMismatchError,
    build_examples,
    conversation_files,
    encode_conversation,
    make_batches,
    module_of,
    read_conversations,
)
from lumos_graph.training.train import TrainConfig, _plan_runs, train
from tests.needs import need

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


ITERATIVE = [
    {"role": "user", "content": "Please provide a reasonable subgoal-based plan to solve the "
                                "given task.\nTask: 2 + 3 * 4?; Initial Environment Description: None."},
    {"role": "assistant", "content": "Subgoal 1: Calculate 3 * 4."},
    {"role": "user", "content": "The executed result for Subgoal 1 is 12. Should I stop planning?"},
    {"role": "assistant", "content": "No, I will keep planning.\nSubgoal 2: Add 2 to 12 — «done»."},
    {"role": "user", "content": "The executed result for Subgoal 2 is 14. Should I stop planning?"},
    {"role": "assistant", "content": "Yes, I will stop planning."},
]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def qwen_tokenizer(default_gguf: Path) -> Any:
    """The default model's tokenizer and chat template, read from its GGUF by transformers."""
    need("transformers")
    from lumos_graph.training._model import BaseSource, load_tokenizer

    return load_tokenizer(BaseSource(default_gguf.parent, default_gguf.name))


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, qwen_tokenizer: Any) -> Path:
    """A random 2-layer Qwen2 checkpoint folder with the real tokenizer (trains in seconds)."""
    torch = need("torch")
    transformers = need("transformers")
    folder = tmp_path_factory.mktemp("tiny-qwen2")
    torch.manual_seed(0)
    config = transformers.Qwen2Config(
        vocab_size=len(qwen_tokenizer), hidden_size=32, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=512, tie_word_embeddings=True)
    model = transformers.Qwen2ForCausalLM(config)
    with torch.no_grad():  # peakier logits than the default init, so LoRA can move the loss
        model.model.embed_tokens.weight.normal_(0.0, 0.5)
    model.save_pretrained(str(folder))
    qwen_tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_base_gguf(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Path:
    """The tiny checkpoint as a GGUF base, to export its adapters against."""
    transformers = need("transformers")
    from tests.llm.test_lora_gguf import write_tiny_gguf

    model = transformers.AutoModelForCausalLM.from_pretrained(str(tiny_base))
    return write_tiny_gguf(model, tmp_path_factory.mktemp("tiny-gguf") / "tiny.gguf")


def write_data(folder: Path, per_module: int = 6) -> Path:
    """LUMOS-like plan and ground files (iterative: several assistant turns each)."""
    folder.mkdir(parents=True, exist_ok=True)
    for module in ("plan", "ground"):
        with (folder / f"lumos_maths_{module}_iterative.jsonl").open("w") as handle:
            for i in range(per_module):
                messages = [
                    {"role": "user", "content": f"{module} task {i}: add {i} and {i + 1}"},
                    {"role": "assistant", "content": f"Subgoal 1: add {i} and {i + 1}."},
                    {"role": "user", "content": f"The executed result is {2 * i + 1}."},
                    {"role": "assistant", "content": "Yes, I will stop planning."},
                ]
                record = {"dataset": f"lumos_maths_{module}_iterative", "id": f"{module}-{i}",
                          "messages": messages}
                handle.write(json.dumps(record) + "\n")
    return folder


def unmasked_runs(input_ids: Sequence[int], labels: Sequence[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    current: list[int] = []
    for token, label in zip(input_ids, labels, strict=True):
        if label == IGNORE_INDEX:
            if current:
                runs.append(current)
            current = []
        else:
            assert label == token
            current.append(token)
    return [*runs, current] if current else runs


# --------------------------------------------------------------------------- loss masks


def test_only_assistant_contents_and_end_tokens_carry_loss(qwen_tokenizer: Any) -> None:
    example = encode_conversation(qwen_tokenizer, ITERATIVE)
    runs = unmasked_runs(example.input_ids, example.labels)

    expected = [m["content"] + "<|im_end|>" for m in ITERATIVE if m["role"] == "assistant"]
    assert [qwen_tokenizer.decode(run) for run in runs] == expected
    # every other token (system prompt, user turns, the "<|im_start|>assistant\n" tags, the
    # newline after <|im_end|>) is masked, and the sequence is the whole rendered conversation
    rendered = qwen_tokenizer.apply_chat_template(ITERATIVE, tokenize=False)
    assert qwen_tokenizer.decode(example.input_ids) == rendered
    assert example.target_tokens == sum(len(run) for run in runs)
    assert example.input_ids[-1] == qwen_tokenizer.encode("\n")[0]
    assert example.labels[-1] == IGNORE_INDEX


def test_masks_follow_a_system_turn_and_drop_trailing_user_turns(qwen_tokenizer: Any) -> None:
    messages = [{"role": "system", "content": "You plan."}, *ITERATIVE[:2],
                {"role": "user", "content": "a question nobody answers"}]
    example = encode_conversation(qwen_tokenizer, messages)

    text = qwen_tokenizer.decode(example.input_ids)
    assert text.startswith("<|im_start|>system\nYou plan.<|im_end|>")
    assert "nobody answers" not in text
    runs = unmasked_runs(example.input_ids, example.labels)
    assert [qwen_tokenizer.decode(r) for r in runs] == ["Subgoal 1: Calculate 3 * 4.<|im_end|>"]


@pytest.mark.model
def test_training_tokens_are_what_the_backend_feeds_llama_cpp(
    qwen_tokenizer: Any, default_gguf: Path
) -> None:
    """The adapter learns on the exact prompt tokens ChatLlamaCpp gives the model at run time."""
    from langchain_core.messages import AIMessage, HumanMessage

    from lumos_graph.llm.llama import ChatLlamaCpp

    model = ChatLlamaCpp(model_path=str(default_gguf), n_ctx=512, n_threads=2)
    example = encode_conversation(qwen_tokenizer, ITERATIVE)
    history = [HumanMessage(m["content"]) if m["role"] == "user" else AIMessage(m["content"])
               for m in ITERATIVE[:-1]]
    prompt = model.pooled().tokenize(model.render_prompt(history))
    # the prompt of the last turn is a prefix, and the tokens after it are the trained answer
    assert list(example.input_ids[: len(prompt)]) == prompt
    assert example.labels[len(prompt) - 1] == IGNORE_INDEX
    assert example.labels[len(prompt)] == example.input_ids[len(prompt)]
    full = qwen_tokenizer.apply_chat_template(ITERATIVE, tokenize=False)
    assert model.pooled().tokenize(full) == list(example.input_ids)


class _RewritingTokenizer:
    """A template that rewrites earlier assistant turns (as reasoning templates do)."""

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> str:
        parts = []
        for i, m in enumerate(conversation):
            last = i == len(conversation) - 1
            content = m["content"] if last or m["role"] != "assistant" else "[...]"
            parts.append(f"<{m['role']}>{content}</end>\n")
        return "".join(parts) + ("<assistant>" if kwargs.get("add_generation_prompt") else "")

    def encode(self, text: str, **kwargs: Any) -> list[int]:
        return [ord(c) for c in text]


def test_a_template_that_rewrites_history_is_dropped_and_counted() -> None:
    conversation = Conversation(tuple(ITERATIVE), "plan", "file.jsonl:1")
    with pytest.raises(TemplateMismatchError, match="file.jsonl:1"):
        encode_conversation(_RewritingTokenizer(), ITERATIVE, "file.jsonl:1")
    examples, stats = build_examples(_RewritingTokenizer(), [conversation], 10_000)
    assert examples == [] and stats.dropped_template_mismatch == 1
    assert "file.jsonl:1" in stats.first_problem
    # a single assistant turn is fine: nothing earlier to rewrite
    one = encode_conversation(_RewritingTokenizer(), ITERATIVE[:2])
    trained = "".join(chr(t) for t, label in zip(one.input_ids, one.labels, strict=True)
                      if label != IGNORE_INDEX)
    assert trained == "Subgoal 1: Calculate 3 * 4.</end>"


def test_long_and_answerless_conversations_are_dropped_and_counted(qwen_tokenizer: Any) -> None:
    short = Conversation(tuple(ITERATIVE[:2]), "plan", "a:1")
    long = Conversation(({"role": "user", "content": "x " * 3000}, ITERATIVE[1]), "plan", "a:2")
    silent = Conversation((ITERATIVE[0],), "plan", "a:3")
    examples, stats = build_examples(qwen_tokenizer, [short, long, silent], max_seq_len=512)

    assert len(examples) == 1
    assert (stats.conversations, stats.examples, stats.dropped_too_long,
            stats.dropped_no_target) == (3, 1, 1, 1)
    assert stats.tokens == len(examples[0].input_ids)
    assert stats.target_tokens == examples[0].target_tokens > 0


# --------------------------------------------------------------------------- data files


def test_files_modules_and_bad_lines(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data", per_module=2)
    files = conversation_files(data)
    assert [f.name for f in files] == ["lumos_maths_ground_iterative.jsonl",
                                       "lumos_maths_plan_iterative.jsonl"]
    conversations = list(read_conversations(files))
    assert [c.module for c in conversations] == ["ground", "ground", "plan", "plan"]
    # each module file trains with the system turn its module sees at inference
    assert conversations[0].messages[0] == protocol.module_system("ground", "iterative")
    assert conversations[2].messages[0]["content"].startswith(
        "You are the planning module of a LUMOS agent, Iterative formulation")
    assert conversations[0].source.endswith("lumos_maths_ground_iterative.jsonl:1")
    assert module_of("lumos_complex_qa_plan_onetime") == "plan"
    assert module_of("lumos-web-agent-ground-iterative.jsonl") == "ground"
    assert module_of("planets") is None and module_of("my_data") is None

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{not json\n')
    with pytest.raises(ConfigError, match="bad.jsonl:2: not JSON"):
        list(read_conversations([bad]))
    bad.write_text('{"messages": [{"role": "robot", "content": "hi"}]}\n')
    with pytest.raises(ConfigError, match="bad.jsonl:1: each message needs a role"):
        list(read_conversations([bad]))
    with pytest.raises(ConfigError, match="not found"):
        conversation_files(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no .jsonl"):
        conversation_files(tmp_path / "empty")


def test_a_limit_keeps_a_seeded_subset_and_counts_the_rest() -> None:
    from lumos_graph.training._batches import DataStats, Example, subsample

    examples = [Example((i, i, i), (IGNORE_INDEX, i, i)) for i in range(10)]
    stats = DataStats(examples=10, tokens=30, target_tokens=20)
    chosen = subsample(examples, stats, 4, seed=1)
    assert len(chosen) == 4 and chosen == sorted(chosen, key=lambda e: e.input_ids)
    assert chosen == subsample(examples, DataStats(), 4, seed=1)
    assert (stats.examples, stats.tokens, stats.target_tokens, stats.left_out_over_limit) == (
        4, 12, 8, 6)
    assert subsample(examples, stats, None, seed=1) is examples


def test_batches_respect_the_token_budget_and_the_seed() -> None:
    lengths = [5, 300, 40, 41, 39, 120, 7, 800, 64, 64, 63, 2]
    batches = make_batches(lengths, batch_tokens=256, seed=3, window=8)

    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert padded <= 256 or len(batch) == 1  # an over-long example rides alone
    assert make_batches(lengths, 256, seed=3, window=8) == batches
    assert make_batches(lengths, 256, seed=4, window=8) != batches


def _conversations(modules: Sequence[str | None]) -> set[str | None]:
    return set(modules)


def test_which_adapters_are_trained() -> None:
    found = _conversations(["plan", "ground", None])
    shared = _plan_runs(TrainConfig(data="x"), found)
    assert [(r.name, r.modules) for r in shared] == [("shared", (None, "ground", "plan"))]

    per_module = _plan_runs(TrainConfig(data="x", modules=("plan", "ground")), found)
    assert [(r.name, r.modules, r.init_from) for r in per_module] == [
        ("plan", ("plan",), None), ("ground", ("ground",), None)]

    glpft = _plan_runs(TrainConfig(data="x", schedule="glpft", lr=1e-3), found)
    assert [(r.name, r.modules, r.init_from) for r in glpft] == [
        ("shared", ("plan", "ground"), None), ("plan", ("plan",), "shared"),
        ("ground", ("ground",), "shared")]
    assert [r.lr for r in glpft] == pytest.approx([1e-3, 2e-4, 2e-4])

    with pytest.raises(ConfigError, match="no conversations of module ground"):
        _plan_runs(TrainConfig(data="x", modules=("plan", "ground")), _conversations(["plan"]))
    with pytest.raises(ConfigError, match="lumos_<domain>_<plan|ground>"):
        _plan_runs(TrainConfig(data="x", schedule="glpft"), _conversations([None]))


def test_bad_settings_are_config_errors() -> None:
    bad: list[Mapping[str, Any]] = [
        {"rank": 0}, {"max_steps": 0}, {"lr": 0.0}, {"dropout": 1.0}, {"modules": ("act",)},
        {"schedule": "fast"}, {"target_modules": ()}, {"threads": 0}, {"precision": "fp16"},
    ]
    for settings in bad:
        with pytest.raises(ConfigError):
            TrainConfig(data="x", **settings).check()


def test_missing_training_packages_name_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = importlib.import_module

    def without_peft(name: str, *args: Any) -> Any:
        if name == "peft":
            raise ImportError("No module named 'peft'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_peft)
    with pytest.raises(ConfigError, match=r'needs peft: pip install "lumos-graph\[train\]"'):
        train(TrainConfig(data=write_data(tmp_path)))


# --------------------------------------------------------------------------- training


def test_head_only_at_labelled_positions_equals_the_models_own_loss(tiny_base: Path) -> None:
    torch = need("torch")
    transformers = need("transformers")
    from lumos_graph.training._batches import Example
    from lumos_graph.training._loop import token_loss_sum

    model = transformers.AutoModelForCausalLM.from_pretrained(str(tiny_base)).eval()
    examples = [Example((5, 6, 7, 8, 9), (IGNORE_INDEX, IGNORE_INDEX, 7, 8, IGNORE_INDEX)),
                Example((11, 12, 13), (IGNORE_INDEX, 12, 13))]
    with torch.no_grad():
        ours = token_loss_sum(model, examples, pad_id=0) / 4
        ids = torch.tensor([[5, 6, 7, 8, 9], [11, 12, 13, 0, 0]])
        labels = torch.tensor([[-100, -100, 7, 8, -100], [-100, 12, 13, -100, -100]])
        mask = (labels != -100) | torch.tensor([[1] * 5, [1, 1, 1, 0, 0]]).bool()
        theirs = model(input_ids=ids, attention_mask=mask.long(), labels=labels).loss
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)


def test_bf16_autocast_loss_is_close_to_float32(tiny_base: Path) -> None:
    torch = need("torch")
    transformers = need("transformers")
    from lumos_graph.training._batches import Example
    from lumos_graph.training._loop import token_loss_sum
    from lumos_graph.training._model import resolve_precision

    model = transformers.AutoModelForCausalLM.from_pretrained(str(tiny_base)).eval()
    examples = [Example(tuple(range(5, 45)), (IGNORE_INDEX,) * 20 + tuple(range(25, 45)))]
    with torch.no_grad():
        fp32 = float(token_loss_sum(model, examples, pad_id=0))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = float(token_loss_sum(model, examples, pad_id=0))
    assert bf16 == pytest.approx(fp32, rel=0.02) and bf16 != fp32  # bfloat16 really ran
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    assert resolve_precision("auto") in ("bf16", "fp32")


def test_bf16_training_lowers_the_loss_and_says_so(tmp_path: Path, tiny_base: Path) -> None:
    need("torch")
    data = write_data(tmp_path / "data", per_module=4)
    result = train(_tiny_config(data, tmp_path / "out", tiny_base, precision="bf16"))
    (adapter,) = result.adapters
    assert adapter.training["last_loss"] < adapter.training["first_loss"] - 1.0
    summary = json.loads((tmp_path / "out" / "train_summary.json").read_text())
    assert result.precision == summary["precision"] == "bf16"


def _tiny_config(data: Path, out: Path, base: Path, **overrides: Any) -> TrainConfig:
    settings: dict[str, Any] = {
        "data": data, "out": out, "base": str(base), "epochs": 3, "lr": 2e-2, "rank": 4,
        "alpha": 8, "dropout": 0.1, "batch_tokens": 256, "save_every": 2, "threads": 2,
        "seed": 7, "export_gguf": False, "precision": "fp32"}
    settings.update(overrides)
    return TrainConfig(**settings)


def _adapter_weights(peft_dir: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(peft_dir / "adapter_model.safetensors"))


def test_training_lowers_the_loss_and_resumes_exactly(tmp_path: Path, tiny_base: Path) -> None:
    torch = need("torch")
    data = write_data(tmp_path / "data", per_module=4)
    reports: list[Any] = []
    whole = train(_tiny_config(data, tmp_path / "whole", tiny_base), on_step=reports.append)

    (adapter,) = whole.adapters
    steps = adapter.training["steps"]
    assert steps == adapter.training["total_steps"] == len(reports) >= 8
    assert adapter.training["last_loss"] < adapter.training["first_loss"] - 1.0
    assert adapter.data["examples"] == 8
    assert adapter.training["target_tokens"] == 3 * adapter.data["target_tokens"]  # 3 epochs
    assert [r.step for r in reports] == list(range(1, steps + 1))
    assert reports[-1].tokens_per_second > 0
    assert (adapter.peft_dir / "adapter_config.json").is_file() and adapter.gguf is None
    summary = json.loads((tmp_path / "whole" / "train_summary.json").read_text())
    assert summary["adapters"][0]["training"]["steps"] == steps

    class Interrupted(Exception):
        pass

    def stop_at_5(report: Any) -> None:
        if report.step == 5:
            raise Interrupted

    config = _tiny_config(data, tmp_path / "split", tiny_base)
    with pytest.raises(Interrupted):
        train(config, on_step=stop_at_5)
    checkpoints = sorted(p.name for p in (tmp_path / "split/shared/checkpoints").iterdir())
    assert checkpoints == ["step-0000002", "step-0000004"]  # the 2 most recent are kept
    with pytest.raises(ConfigError, match="--resume"):
        train(config)

    resumed = train(_tiny_config(data, tmp_path / "split", tiny_base, resume=True))
    assert resumed.adapters[0].training["resumed_from_step"] == 4
    assert resumed.adapters[0].training["last_loss"] == pytest.approx(
        adapter.training["last_loss"], rel=1e-5)
    expected = _adapter_weights(adapter.peft_dir)
    got = _adapter_weights(resumed.adapters[0].peft_dir)
    assert expected.keys() == got.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=1e-5, atol=1e-6)

    again = train(_tiny_config(data, tmp_path / "split", tiny_base, resume=True))
    assert again.adapters[0].reused and again.base_load_seconds is None

    (tmp_path / "split" / "shared" / "result.json").unlink()
    with pytest.raises(ConfigError, match="other data or settings"):
        train(_tiny_config(data, tmp_path / "split", tiny_base, resume=True, lr=1e-2))


# --------------------------------------------------------------------------- the command


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lumos-graph")
    cli_train.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", *argv])


def test_cli_glpft_trains_shared_then_modules_and_exports_gguf(
    tmp_path: Path, tiny_base: Path, tiny_base_gguf: Path
) -> None:
    from lumos_graph.llm.lora_gguf import check_lora_gguf

    torch = need("torch")
    data = write_data(tmp_path / "data", per_module=3)
    out, err = io.StringIO(), io.StringIO()
    args = _parse(str(data), "--base", str(tiny_base), "--out", str(tmp_path / "out"),
                  "--schedule", "glpft", "--max-steps", "3", "--rank", "4", "--lr", "1e-2",
                  "--stage2-lr-factor", "1e-9", "--threads", "2", "--save-every", "0",
                  "--max-examples", "2", "--export-base", str(tiny_base_gguf),
                  "--precision", "fp32")
    assert cli_train.run(args, out, err) == 0

    text = out.getvalue()
    for name in ("shared", "plan", "ground"):
        assert f"\n{name}: " in text
        gguf = tmp_path / "out" / name / f"{name}-lora-f16.gguf"
        assert f"gguf: {gguf}" in text
        assert check_lora_gguf(gguf, tiny_base_gguf) == 2 * 4  # q, k, v, o of 2 layers
    assert "shared: 4 examples" in text and "plan: 2 examples" in text
    assert "1 left out by --max-examples" in text
    assert "3 steps" in text and "tok/s" in text and "2 threads, fp32" in text
    assert "loading" in err.getvalue() and "3/3" in err.getvalue()
    # stage 2 starts from stage 1 (at a negligible learning rate here, it stays there)
    shared = _adapter_weights(tmp_path / "out/shared/peft")
    for name in ("plan", "ground"):
        for key, tensor in _adapter_weights(tmp_path / "out" / name / "peft").items():
            torch.testing.assert_close(tensor, shared[key], rtol=0, atol=1e-5)
    results = json.loads((tmp_path / "out/train_summary.json").read_text())["adapters"]
    assert [(a["name"], a["init_from"]) for a in results] == [
        ("shared", None), ("plan", "shared"), ("ground", "shared")]
    assert results[1]["lr"] == pytest.approx(1e-11)

    again = io.StringIO()
    assert cli_train.run(_parse(*[str(a) for a in [data, "--base", tiny_base, "--out",
                                  tmp_path / "out", "--schedule", "glpft", "--max-steps", 3,
                                  "--rank", 4, "--lr", "1e-2", "--stage2-lr-factor", "1e-9",
                                  "--max-examples", 2, "--resume",
                                  "--export-base", tiny_base_gguf]]),
                         again, io.StringIO()) == 0
    assert again.getvalue().count("(finished earlier)") == 3


def test_cli_usage_mistakes(tmp_path: Path) -> None:
    data = str(write_data(tmp_path / "data", per_module=1))
    with pytest.raises(ConfigError, match="--modules takes plan,ground"):
        cli_train.run(_parse(data, "--modules", "plan,act"), io.StringIO(), io.StringIO())
    with pytest.raises(ConfigError, match="drop --shared"):
        cli_train.run(_parse(data, "--shared", "--schedule", "glpft"), io.StringIO(),
                      io.StringIO())
    with pytest.raises(ConfigError, match="rank must be at least 1"):
        cli_train.run(_parse(data, "--rank", "0"), io.StringIO(), io.StringIO())
    with pytest.raises(SystemExit):
        _parse(data, "--shared", "--modules", "plan")
    config = cli_train.config_from_args(_parse(data, "--modules", "ground", "--rank", "8"))
    assert config.modules == ("ground",) and config.alpha == 16 and config.schedule == "plain"


def test_freed_memory_goes_back_to_the_system_only_past_the_slack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    need("torch")
    from lumos_graph.training import _loop as _train_loop

    assert _train_loop._resident_bytes() > 10 << 20 or not Path("/proc/self/statm").exists()
    resident = [1_000]
    monkeypatch.setattr(_train_loop, "_resident_bytes", lambda: resident[0])
    trim = _train_loop._HeapTrim(slack=500)
    calls: list[int] = []
    trim._trim = calls.append  # glibc's malloc_trim(pad)
    trim()
    resident[0] = 1_600
    trim()
    assert calls == [0]


@pytest.mark.model
def test_program_validation_runs_the_plain_model_and_an_adapter_as_program_writer(
        default_gguf: Path) -> None:
    """``--val-modes program``: the untrained row and an adapter's row, each a real run of the
    default agent's program grounding (plain planner, one greedy program) on maths-val."""
    from lumos_graph.training.validate import UNTRAINED, validate_adapters

    shipped = (Path(__file__).parents[2] / "lumos_graph" / "data" / "adapters"
               / "qwen2.5-coder-0.5b-lumos-maths-lora-f16.gguf")
    lines: list[str] = []
    rows = validate_adapters([(UNTRAINED, None), ("shipped", shipped)], default_gguf,
                             modes=["program"], limit=2, say=lines.append)
    assert [(r.adapter, r.mode, r.total) for r in rows] == [
        (UNTRAINED, "program", 2), ("shipped", "program", 2)]
    assert rows[0].path == str(default_gguf) and rows[1].path == str(shipped)
    assert all(0 <= r.correct <= 2 for r in rows)
    assert lines[0].startswith(f"{UNTRAINED} program: ") and lines[1].startswith("shipped program: ")


def test_validation_refuses_a_test_split_and_picks_the_best_checkpoint() -> None:
    from lumos_graph.training.validate import (
        ValidationRow,
        best_row,
        format_rows,
        validate_adapters,
    )

    with pytest.raises(ConfigError, match="test split"):
        validate_adapters([], Path("base.gguf"), dataset="maths-test")
    with pytest.raises(ConfigError, match="unknown formulation.*program"):
        validate_adapters([], Path("base.gguf"), modes=["sideways"])
    rows = [ValidationRow("shared/step-0000025", "a.gguf", "onepass", 9, 60, 50.0),
            ValidationRow("shared/step-0000050", "b.gguf", "onepass", 15, 60, 50.0),
            ValidationRow("shared", "c.gguf", "onepass", 15, 60, 50.0),
            ValidationRow("shared", "c.gguf", "iterative", 20, 60, 90.0)]
    assert best_row(rows, "onepass") == rows[1]  # a tie keeps the earlier checkpoint
    assert best_row(rows, "iterative") == rows[3]
    assert "25% (15/60)" in format_rows(rows)
