"""``lumos-graph train``: LoRA adapters for the LUMOS modules from conversation files.

``add_parser(subparsers)`` adds the command to the ``lumos-graph`` parser; ``run(args, out,
err)`` runs it and returns the exit status (0). A :class:`~lumos_graph.errors.ConfigError`
(missing training extra, bad data, bad option) propagates to the caller, which reports it and
exits with 2 like every other command.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from lumos_graph.errors import ConfigError
from lumos_graph.training.train import (
    DEFAULT_TARGET_MODULES,
    MODULES,
    PRECISIONS,
    SCHEDULES,
    StepReport,
    TrainConfig,
    TrainResult,
    train,
)

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``train`` to an ``add_subparsers()`` object; returns its parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "train",
        help="train LoRA adapters on LUMOS conversation files (pip install 'lumos-graph[train]')",
        description="Train LoRA adapters with transformers + peft on JSONL conversation files "
                    '({"dataset", "id", "messages": [{"role", "content"}]}, files named '
                    "lumos_<domain>_<plan|ground>_<formulation>.jsonl), then export them to "
                    "GGUF for the llama.cpp backend. Loss is on assistant turns only.",
    )
    p.add_argument("data", metavar="DATA_DIR", help="a folder of .jsonl files, or one file")
    p.add_argument("--base", default="default",
                   help="base model: a preset (default), a .gguf file or a Hugging Face folder")
    p.add_argument("--out", default="lumos-adapters", help="output folder (default: %(default)s)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--shared", action="store_true",
                       help="one adapter on all data, serving every module (the default)")
    which.add_argument("--modules", default=None, metavar="LIST",
                       help="one adapter per module, e.g. plan,ground")
    p.add_argument("--schedule", choices=SCHEDULES, default="plain",
                   help="glpft: a shared stage on all modules' data, then each module continues "
                        "from it at a lower learning rate (alpha-UMi)")
    p.add_argument("--epochs", type=int, default=2, help="passes over the data (default: 2)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="optimizer steps per adapter (overrides --epochs)")
    p.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (default: 2e-4)")
    p.add_argument("--stage2-lr-factor", type=float, default=0.2,
                   help="glpft stage-2 learning rate = lr x this (default: 0.2)")
    p.add_argument("--rank", type=int, default=16, help="LoRA rank (default: 16)")
    p.add_argument("--alpha", type=int, default=None, help="LoRA alpha (default: 2 x rank)")
    p.add_argument("--dropout", type=float, default=0.05, help="LoRA dropout (default: 0.05)")
    p.add_argument("--target-modules", default=",".join(DEFAULT_TARGET_MODULES),
                   help="modules given a LoRA (default: %(default)s)")
    p.add_argument("--batch-tokens", type=int, default=4096,
                   help="padded tokens per micro-batch (default: 4096)")
    p.add_argument("--grad-accum", type=int, default=1,
                   help="micro-batches per optimizer step (default: 1)")
    p.add_argument("--max-seq-len", type=int, default=2048,
                   help="longer conversations are dropped and counted (default: 2048)")
    p.add_argument("--max-examples", type=int, default=None, metavar="N",
                   help="at most N examples per module, a seeded random subset")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: one per physical core)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="bf16: bfloat16 matmuls (LoRA weights stay float32); auto: bf16 where "
                        "the CPU has AVX512-BF16 or AMX, else fp32 (default: auto)")
    p.add_argument("--save-every", type=int, default=50,
                   help="checkpoint every N steps (default: 50; 0: never)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the last checkpoints in --out; keep finished adapters")
    p.add_argument("--no-gguf", action="store_true", help="do not export GGUF adapters")
    val = p.add_argument_group("validation (choose the checkpoint on held-out templates)")
    val.add_argument("--val", default=None, metavar="DATASET",
                     help="after training, run the LUMOS agent with every kept checkpoint and "
                          "the final adapter on this split (maths-val) and report accuracy")
    val.add_argument("--val-limit", type=int, default=None, metavar="N",
                     help="only the first N validation questions")
    val.add_argument("--val-modes", default="onepass,iterative",
                     help="formulations to validate: onepass, iterative (action lines), "
                          "program (the default agent's program grounding, one greedy "
                          "program, the adapter writing it; for lumos-program data) "
                          "(default: %(default)s); the untrained model is validated too")
    p.add_argument("--export-base", default=None, metavar="FILE.gguf",
                   help="the GGUF to export against when --base is a Hugging Face folder")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed ``train`` arguments.

    Raises:
        ConfigError: an unknown module name or an empty module list.
    """
    modules = None
    if args.modules is not None:
        modules = tuple(m.strip() for m in args.modules.split(",") if m.strip())
        unknown = [m for m in modules if m not in MODULES]
        if unknown or not modules:
            raise ConfigError(f"--modules takes {','.join(MODULES)}, not {args.modules!r}")
    if args.shared and args.schedule == "glpft":
        raise ConfigError("--schedule glpft trains the shared adapter and one per module; "
                          "drop --shared (or pass --modules to choose the modules)")
    targets = tuple(t.strip() for t in args.target_modules.split(",") if t.strip())
    return TrainConfig(
        data=args.data, out=args.out, base=args.base, modules=modules, schedule=args.schedule,
        epochs=args.epochs, max_steps=args.max_steps, lr=args.lr,
        stage2_lr_factor=args.stage2_lr_factor, rank=args.rank,
        alpha=args.alpha if args.alpha is not None else 2 * args.rank,
        dropout=args.dropout, target_modules=targets, batch_tokens=args.batch_tokens,
        grad_accum=args.grad_accum, max_seq_len=args.max_seq_len,
        max_examples=args.max_examples, seed=args.seed,
        threads=args.threads, precision=args.precision, save_every=args.save_every,
        resume=args.resume,
        export_gguf=not args.no_gguf, export_base=args.export_base,
    )


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``lumos-graph train``: progress on ``err``, figures on ``out``."""
    config = config_from_args(args)
    config.check()
    if "torch" not in sys.modules:
        # torch's OpenMP threads spin while they wait; on a CPU shared with other work (an
        # agent, a benchmark) that made elementwise ops 70x slower and training 3x slower here.
        # Must be set before torch loads OpenMP; an explicit setting wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    bar = _StepBar(err)
    try:
        result = train(config, on_step=bar.update, log=bar.log)
    except KeyboardInterrupt:
        bar.close()
        err.write(f"interrupted: rerun with --resume to continue from the last checkpoint "
                  f"(every {config.save_every} steps)\n")
        raise
    bar.close()
    _print_result(result, out)
    if args.val:
        _validate(args, result, out, err)
    return 0


def _validate(args: argparse.Namespace, result: TrainResult, out: TextIO, err: TextIO) -> None:
    """Accuracy of the executed agent per checkpoint on the validation split (see
    :mod:`lumos_graph.training.validate`); the table on ``out``, ``validation.json`` in OUT."""
    from lumos_graph.training._loop import checkpoints
    from lumos_graph.training.train import CHECKPOINT_DIR
    from lumos_graph.training.validate import (
        UNTRAINED,
        best_row,
        format_rows,
        validate_adapters,
        write_rows,
    )

    base = result.export_base
    if base is None:
        raise ConfigError("validation needs GGUF adapters on a GGUF base: drop --no-gguf and "
                          "pass a GGUF --base (or --export-base)")
    candidates: list[tuple[str, Path | None]] = [(UNTRAINED, None)]  # what to beat
    for adapter in result.adapters:
        for checkpoint in checkpoints(adapter.peft_dir.parent / CHECKPOINT_DIR):
            candidates.append((f"{adapter.name}/{checkpoint.name}", checkpoint))
        candidates.append((adapter.name, adapter.gguf or adapter.peft_dir))
    modes = [m.strip() for m in args.val_modes.split(",") if m.strip()]
    rows = validate_adapters(candidates, base, dataset=args.val, modes=modes,
                             limit=args.val_limit, say=lambda line: print(line, file=err))
    print(f"\nvalidation on {args.val} (executed agent, never trained on):", file=out)
    print(format_rows(rows), file=out)
    for mode in modes:
        best = best_row(rows, mode)
        if best is not None:
            print(f"best {mode}: {best.adapter} ({best.accuracy:.0%}): {best.path}", file=out)
    print(f"written: {write_rows(rows, result.out / 'validation.json')}", file=out)


class _StepBar:
    """One line per step on a terminal (redrawn); every few steps otherwise."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.tty = err.isatty()
        self.open = False
        self.last_print = 0.0

    def log(self, line: str) -> None:
        self.close()
        self.err.write(f"{line}\n")
        self.err.flush()

    def update(self, report: StepReport) -> None:
        width = 24
        filled = round(width * report.step / max(1, report.total_steps))
        line = (f"{report.name:<7} [{'#' * filled}{'.' * (width - filled)}] "
                f"{report.step}/{report.total_steps}  loss {report.loss:.4f}  "
                f"{report.tokens_per_second:,.0f} tok/s  lr {report.lr:.2e}")
        if report.checkpoint:
            line += "  (checkpoint)"
        if self.tty:
            self.err.write(f"\r{line}\033[K")
            self.open = True
        else:
            now = time.monotonic()
            last = report.step == report.total_steps
            if not (last or report.checkpoint or now - self.last_print >= 10 or report.step == 1):
                return
            self.last_print = now
            self.err.write(f"{line}\n")
        self.err.flush()

    def close(self) -> None:
        if self.open:
            self.err.write("\n")
            self.err.flush()
            self.open = False


def _print_result(result: TrainResult, out: TextIO) -> None:
    load = f", loaded in {result.base_load_seconds:.1f} s" if result.base_load_seconds else ""
    print(f"base: {result.base}{load}; {result.threads} threads, {result.precision}", file=out)
    for adapter in result.adapters:
        data, training = adapter.data, adapter.training
        dropped = (f"dropped {data['dropped_too_long']} too long, "
                   f"{data['dropped_template_mismatch']} off template, "
                   f"{data['dropped_no_target']} without assistant turn")
        if data.get("left_out_over_limit"):
            dropped += f"; {data['left_out_over_limit']} left out by --max-examples"
        first, last = training.get("first_loss"), training.get("last_loss")
        loss = f"loss {first:.4f} -> {last:.4f}" if first is not None and last is not None else ""
        note = " (finished earlier)" if adapter.reused else ""
        if training.get("resumed_from_step"):
            note += f" (resumed at step {training['resumed_from_step']})"
        print(f"{adapter.name}{note}: {data['examples']} examples ({dropped}); "
              f"{training['steps']} steps, {training['tokens']:,} tokens "
              f"({training['target_tokens']:,} trained on), "
              f"{training.get('tokens_per_second', 0):,.1f} tok/s, {loss}", file=out)
        print(f"  peft: {adapter.peft_dir}", file=out)
        if adapter.gguf is not None:
            print(f"  gguf: {adapter.gguf} ({adapter.gguf_bytes / 1e6:.1f} MB)", file=out)
