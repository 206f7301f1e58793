"""Train LoRA adapters for the LUMOS modules on conversation files, and export them to GGUF.

```
DATA_DIR/*.jsonl ──tokenize (loss on assistant turns only)──> examples per module
base (GGUF or HF folder) ──transformers, float32──> + LoRA (peft) ──train──> OUT/NAME/peft/
                                                               ──export──> OUT/NAME/NAME-lora-f16.gguf
```

What is trained (:attr:`TrainConfig.modules`, :attr:`TrainConfig.schedule`):

- ``modules=None`` (default): one *shared* adapter on every conversation; one loaded model
  then serves both the planner and the grounder.
- ``modules=("plan", "ground")``: one adapter per module, each on its own files.
- ``schedule="glpft"`` (alpha-UMi's two stages): stage 1 trains the shared adapter on all
  modules' data; stage 2 continues a copy of it per module, on that module's data, at
  ``lr * stage2_lr_factor``.

Every adapter checkpoints every ``save_every`` steps; ``resume=True`` continues an interrupted
run from its last checkpoint (optimizer state included) and skips adapters already finished.
Needs the training extra: ``pip install "lumos-graph[train]"`` (torch, transformers, peft).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from lumos_graph.errors import ConfigError
from lumos_graph.llm.hardware import physical_cores
from lumos_graph.training._batches import (
    Conversation,
    DataStats,
    Example,
    build_examples,
    conversation_files,
    read_conversations,
    subsample,
)
from lumos_graph.training._model import (
    BaseSource,
    require_train_packages,
    resolve_base,
    resolve_precision,
)
from lumos_graph.training._report import StepReport

__all__ = [
    "DEFAULT_TARGET_MODULES",
    "AdapterResult",
    "StepReport",
    "TrainConfig",
    "TrainResult",
    "train",
]

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
SHARED = "shared"
MODULES = ("plan", "ground")
Schedule = Literal["plain", "glpft"]
Precision = Literal["auto", "bf16", "fp32"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)
PRECISIONS: tuple[str, ...] = get_args(Precision)
PEFT_DIR = "peft"
CHECKPOINT_DIR = "checkpoints"
RESULT_FILE = "result.json"
SUMMARY_FILE = "train_summary.json"


@dataclass(frozen=True)
class TrainConfig:
    """Everything :func:`train` needs; the defaults suit the 0.5B default model on a CPU.

    Attributes:
        data: a ``.jsonl`` conversation file or a folder of them (searched recursively).
        out: where adapters, checkpoints and the summary go.
        base: a model preset (``"default"``), a ``.gguf`` file or a Hugging Face folder.
        modules: ``None`` for one shared adapter on all data, else one adapter per module.
        schedule: ``"plain"`` or ``"glpft"`` (shared stage, then per-module stage).
        epochs: passes over the data (ignored when ``max_steps`` is set).
        max_steps: optimizer steps per adapter (epochs repeat as needed).
        lr: peak learning rate (linear warm-up over ``warmup_ratio``, then linear decay).
        stage2_lr_factor: glpft's stage-2 learning rate is ``lr`` times this.
        rank, alpha, dropout, target_modules: the LoRA (peft) settings.
        batch_tokens: padded tokens per micro-batch (examples are grouped by length).
        grad_accum: micro-batches per optimizer step.
        max_seq_len: longer conversations are dropped and counted.
        max_examples: use at most this many examples per module (a seeded random subset):
            on a CPU, an epoch of the shipped maths set (13k conversations, 4M tokens) takes
            most of a day.
        seed: data order, LoRA initialisation and dropout.
        threads: torch CPU threads; ``None`` means one per physical core.
        precision: ``"fp32"``, ``"bf16"`` (bfloat16 matmuls under autocast; the LoRA weights,
            optimizer and loss stay float32) or ``"auto"``: bf16 where the CPU does bfloat16
            in hardware (AVX512-BF16 or AMX; 2-3.7x faster on this project's AMD EPYC), else fp32.
        save_every: checkpoint every N steps (0: never).
        keep_checkpoints: how many recent checkpoints to keep per adapter.
        resume: continue from checkpoints in ``out`` (and skip finished adapters).
        export_gguf: write the float16 GGUF adapter (needs a GGUF base or ``export_base``).
        export_base: the GGUF to export against when ``base`` is a Hugging Face folder.
    """

    data: str | Path
    out: str | Path = "lumos-adapters"
    base: str = "default"
    modules: tuple[str, ...] | None = None
    schedule: Schedule = "plain"
    epochs: int = 2
    max_steps: int | None = None
    lr: float = 2e-4
    stage2_lr_factor: float = 0.2
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES
    batch_tokens: int = 4096
    grad_accum: int = 1
    max_seq_len: int = 2048
    max_examples: int | None = None
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    threads: int | None = None
    precision: Precision = "auto"
    save_every: int = 50
    keep_checkpoints: int = 2
    resume: bool = False
    export_gguf: bool = True
    export_base: str | None = None

    def check(self) -> None:
        """Raise :class:`ConfigError` for settings that cannot work (before anything loads)."""
        positive = {"epochs": self.epochs, "rank": self.rank, "batch_tokens": self.batch_tokens,
                    "grad_accum": self.grad_accum, "max_seq_len": self.max_seq_len,
                    "keep_checkpoints": self.keep_checkpoints}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, not {value}")
        if self.max_examples is not None and self.max_examples < 1:
            raise ConfigError(f"max_examples must be at least 1, not {self.max_examples}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be at least 1, not {self.max_steps}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be at least 1, not {self.threads}")
        if not self.lr > 0 or not self.stage2_lr_factor > 0 or self.alpha < 1:
            raise ConfigError("lr, stage2_lr_factor and alpha must be positive")
        if not 0 <= self.dropout < 1 or not 0 <= self.warmup_ratio < 1:
            raise ConfigError("dropout and warmup_ratio must be in [0, 1)")
        if self.save_every < 0:
            raise ConfigError("save_every must not be negative")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be auto, bf16 or fp32, not {self.precision!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be plain or glpft, not {self.schedule!r}")
        if self.modules is not None:
            unknown = [m for m in self.modules if m not in MODULES]
            if unknown or not self.modules:
                raise ConfigError(f"modules are {', '.join(MODULES)}; got {list(self.modules)}")
        if not self.target_modules:
            raise ConfigError("target_modules must name at least one module (q_proj, ...)")


@dataclass(frozen=True)
class AdapterResult:
    """One trained adapter.

    Attributes:
        name: ``shared``, ``plan`` or ``ground``.
        peft_dir: the peft adapter folder (``adapter_config.json``, ``adapter_model.safetensors``).
        gguf: the float16 GGUF adapter, or ``None`` when not exported.
        gguf_bytes: its size.
        data: what happened to this adapter's conversations (examples, tokens, drops).
        training: steps, total_steps, resumed_from_step, tokens, target_tokens, seconds,
            session_tokens, tokens_per_second, first_loss, last_loss.
        lr: its learning rate; init_from: the adapter it continued from (glpft stage 2).
        reused: finished in an earlier run and skipped (``resume=True``).
    """

    name: str
    peft_dir: Path
    gguf: Path | None
    gguf_bytes: int
    data: dict[str, Any]
    training: dict[str, Any]
    lr: float
    init_from: str | None = None
    reused: bool = False

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record.update(peft_dir=str(self.peft_dir), gguf=str(self.gguf) if self.gguf else None)
        return record


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` did; also written to ``OUT/train_summary.json``."""

    out: Path
    base: str
    base_load_seconds: float | None
    threads: int
    adapters: list[AdapterResult] = field(default_factory=list)
    precision: str = "fp32"
    export_base: Path | None = None  # the GGUF the adapters were exported for

    def as_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "base": self.base, "threads": self.threads,
                "precision": self.precision,
                "base_load_seconds": self.base_load_seconds,
                "adapters": [a.as_dict() for a in self.adapters]}


@dataclass(frozen=True)
class _Run:
    name: str
    modules: tuple[str | None, ...]
    lr: float
    init_from: str | None = None


# --------------------------------------------------------------------------- planning


def _plan_runs(config: TrainConfig, found: set[str | None]) -> list[_Run]:
    """The adapters to train, in order, and the modules each one learns from."""
    everything = tuple(sorted(found, key=str))
    if config.schedule == "plain" and config.modules is None:
        return [_Run(SHARED, everything, config.lr)]
    modules = config.modules or tuple(m for m in MODULES if m in found)
    missing = [m for m in modules if m not in found]
    if missing or not modules:
        named = sorted(m for m in found if m is not None)
        raise ConfigError(
            f"no conversations of module {', '.join(missing) or 'plan or ground'}: files are "
            f"named lumos_<domain>_<plan|ground>_<formulation>.jsonl (found modules: "
            f"{', '.join(named) or 'none'})"
        )
    per_module = [_Run(m, (m,), config.lr) for m in modules]
    if config.schedule == "plain":
        return per_module
    stage2_lr = config.lr * config.stage2_lr_factor
    return [_Run(SHARED, tuple(modules), config.lr),
            *(replace(run, lr=stage2_lr, init_from=SHARED) for run in per_module)]


def _group(conversations: Sequence[Conversation]) -> dict[str | None, list[Conversation]]:
    groups: dict[str | None, list[Conversation]] = {}
    for conversation in conversations:
        groups.setdefault(conversation.module, []).append(conversation)
    return groups


def _merge_stats(parts: Sequence[DataStats]) -> dict[str, Any]:
    merged = DataStats()
    for part in parts:
        for key, value in part.as_dict().items():
            if isinstance(value, int):
                setattr(merged, key, getattr(merged, key) + value)
            elif value and not merged.first_problem:
                merged.first_problem = value
    return merged.as_dict()


def _check_out(folder: Path, resume: bool) -> None:
    if not resume and folder.exists() and any(folder.iterdir()):
        raise ConfigError(
            f"{folder} already holds a training run: pass resume=True (--resume) to continue "
            "it, or choose another output folder"
        )


# --------------------------------------------------------------------------- training


def train(
    config: TrainConfig,
    *,
    on_step: Callable[[StepReport], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train the adapters ``config`` asks for, export them to GGUF and summarize.

    Args:
        config: what to train (see :class:`TrainConfig`).
        on_step: called with a :class:`StepReport` (adapter name, step, loss, tokens/s...)
            after every optimizer step.
        log: called with a line of text at each phase (loading, exporting...).

    Raises:
        ConfigError: missing training packages, no data, a bad setting, an output folder that
            holds another run (without ``resume``), or a checkpoint of other settings.
    """
    config.check()
    require_train_packages()
    say = log or (lambda _line: None)
    out = Path(config.out).expanduser()
    source = resolve_base(config.base)
    export_base = _export_base(config, source)
    conversations = list(read_conversations(conversation_files(config.data)))
    runs = _plan_runs(config, {c.module for c in conversations})
    for run in runs:
        _check_out(out / run.name, config.resume)

    import torch

    from lumos_graph.training._model import load_tokenizer

    threads = config.threads or physical_cores()
    torch.set_num_threads(threads)
    config = replace(config, precision=resolve_precision(config.precision))
    say(f"tokenizing {len(conversations)} conversations with the tokenizer of {source.describe()}")
    tokenizer = load_tokenizer(source)
    examples: dict[str | None, list[Example]] = {}
    stats: dict[str | None, DataStats] = {}
    for module, group in _group(conversations).items():
        found, stats[module] = build_examples(tokenizer, group, config.max_seq_len)
        examples[module] = subsample(found, stats[module], config.max_examples, config.seed)

    if export_base is None and config.export_gguf:
        say("the base is not a GGUF file: adapters stay in peft form (pass export_base / "
            "--export-base FILE.gguf to export them)")
    trainer = _Trainer(config, source, tokenizer, out, say, on_step)
    results: list[AdapterResult] = []
    for run in runs:
        run_examples = [e for m in run.modules for e in examples.get(m, [])]
        run_stats = _merge_stats([stats[m] for m in run.modules if m in stats])
        if not run_examples:
            raise ConfigError(
                f"adapter {run.name!r} has no usable conversation ({run_stats['conversations']} "
                f"read; {run_stats['dropped_too_long']} longer than max_seq_len="
                f"{config.max_seq_len}; {run_stats['dropped_template_mismatch']} off the chat "
                f"template{': ' + run_stats['first_problem'] if run_stats['first_problem'] else ''})"
            )
        result = trainer.run(run, run_examples, run_stats)
        if export_base is not None and result.gguf is None and config.export_gguf:
            result = _export(result, export_base, say)
        (out / run.name / RESULT_FILE).write_text(
            json.dumps(result.as_dict(), indent=1), encoding="utf-8"
        )
        results.append(result)
    summary = TrainResult(out, source.describe(), trainer.load_seconds, threads, results,
                          config.precision, export_base)
    (out / SUMMARY_FILE).write_text(json.dumps(summary.as_dict(), indent=1), encoding="utf-8")
    return summary


def _export_base(config: TrainConfig, source: BaseSource) -> Path | None:
    if not config.export_gguf:
        return None
    if config.export_base is not None:
        gguf = resolve_base(config.export_base).gguf_path
        if gguf is None:
            raise ConfigError(f"export_base must be a GGUF file or preset: {config.export_base}")
        return gguf
    return source.gguf_path


def _export(result: AdapterResult, base_gguf: Path, say: Callable[[str], None]) -> AdapterResult:
    from lumos_graph.llm.lora_gguf import export_lora_gguf

    target = result.peft_dir.parent / f"{result.name}-lora-f16.gguf"
    say(f"exporting {result.name} to {target}")
    written = export_lora_gguf(result.peft_dir, base_gguf, target)
    return replace(result, gguf=written.path, gguf_bytes=written.bytes)


class _Trainer:
    """Trains runs one after another on one loaded base (loaded on first need: ~40 s)."""

    def __init__(self, config: TrainConfig, source: BaseSource, tokenizer: Any, out: Path,
                 say: Callable[[str], None], on_step: Callable[[StepReport], None] | None) -> None:
        self.config = config
        self.source = source
        self.tokenizer = tokenizer
        self.out = out
        self.say = say
        self.on_step = on_step
        self.base: Any = None
        self.load_seconds: float | None = None

    def _base(self) -> Any:
        if self.base is None:
            from lumos_graph.training._model import load_base_model

            matmuls = "bfloat16" if self.config.precision == "bf16" else "float32"
            self.say(f"loading {self.source.describe()} (float32 weights, {matmuls} matmuls)")
            self.base, self.load_seconds = load_base_model(self.source)
            self.say(f"loaded in {self.load_seconds:.1f} s")
        return self.base

    def run(self, run: _Run, examples: list[Example], stats: dict[str, Any]) -> AdapterResult:
        import torch

        from lumos_graph.training._loop import LoopSettings, run_training
        from lumos_graph.training._model import add_lora, remove_lora

        folder = self.out / run.name
        peft_dir = folder / PEFT_DIR
        done = folder / RESULT_FILE
        if self.config.resume and done.is_file() and (peft_dir / "adapter_config.json").is_file():
            record = json.loads(done.read_text(encoding="utf-8"))
            self.say(f"{run.name}: finished in an earlier run, kept")
            gguf = Path(record["gguf"]) if record.get("gguf") else None
            return AdapterResult(run.name, peft_dir, gguf, int(record.get("gguf_bytes", 0)),
                                 record["data"], record["training"], run.lr, run.init_from, True)
        config = self.config
        settings = LoopSettings(
            epochs=config.epochs, max_steps=config.max_steps, lr=run.lr,
            batch_tokens=config.batch_tokens, grad_accum=config.grad_accum, seed=config.seed,
            save_every=config.save_every, keep_checkpoints=config.keep_checkpoints,
            warmup_ratio=config.warmup_ratio, weight_decay=config.weight_decay,
            max_grad_norm=config.max_grad_norm, bf16=config.precision == "bf16",
        )
        torch.manual_seed(config.seed)
        model = add_lora(self._base(), rank=config.rank, alpha=config.alpha,
                         dropout=config.dropout, target_modules=config.target_modules)
        try:
            if run.init_from is not None:
                self._load_adapter(model, self.out / run.init_from / PEFT_DIR)
            self.say(f"{run.name}: {stats['examples']} examples, {stats['tokens']} tokens "
                     f"({stats['target_tokens']} trained on), lr {run.lr:g}")
            loop = run_training(
                model, examples, settings, name=run.name, pad_id=self._pad_id(),
                checkpoint_dir=folder / CHECKPOINT_DIR, resume=config.resume,
                on_step=self.on_step,
            )
            if peft_dir.exists():
                shutil.rmtree(peft_dir)
            model.save_pretrained(str(peft_dir), save_embedding_layers=False)
        finally:
            self.base = remove_lora(model)
        training = asdict(loop)
        training["tokens_per_second"] = loop.tokens_per_second
        return AdapterResult(run.name, peft_dir, None, 0, stats, training, run.lr, run.init_from)

    @staticmethod
    def _load_adapter(model: Any, peft_dir: Path) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(str(peft_dir / "adapter_model.safetensors")))

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id or 0)
