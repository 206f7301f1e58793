"""The training loop of one adapter: batches, loss, optimizer, checkpoints and resume.

A step is one optimizer update over up to ``grad_accum`` micro-batches of one epoch. The loss
of a step is the mean over its target tokens (not over micro-batches), so long and short
examples weigh by what they teach. The batches of every epoch follow from the seed alone, so a
resumed run skips exactly the steps already done and continues bit for bit where it stopped:
a checkpoint holds the adapter, the optimizer and scheduler states and the RNG state.

The language-model head is applied only at positions that carry loss: with a 152k vocabulary
the head is a quarter of the 0.5B model's compute per token, and most tokens are prompt.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from lumos_graph.errors import ConfigError
from lumos_graph.training._batches import IGNORE_INDEX, Example, make_batches
from lumos_graph.training._report import LoopResult, StepReport

CHECKPOINT_PREFIX = "step-"
_STATE_FILE = "trainer_state.json"
# Model types whose logits are exactly lm_head(last hidden state) (no soft-capping, no scale).
_PLAIN_HEAD_TYPES = frozenset({"qwen2", "qwen3", "llama", "mistral"})


@dataclass(frozen=True)
class LoopSettings:
    """How one adapter is trained (see :class:`lumos_graph.training.train.TrainConfig`)."""

    epochs: int
    max_steps: int | None
    lr: float
    batch_tokens: int
    grad_accum: int
    seed: int
    save_every: int
    keep_checkpoints: int
    warmup_ratio: float
    weight_decay: float
    max_grad_norm: float
    bf16: bool = False


# --------------------------------------------------------------------------- memory


def _resident_bytes() -> int:
    """This process's resident set size (Linux ``/proc``; 0 where there is none)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class _HeapTrim:
    """Give freed memory back to the system when the process has grown ``slack`` bytes.

    glibc keeps the freed activations of earlier steps in its per-thread arenas; with batch
    shapes that change every step the resident size grew without bound here (13.5 GB after 10
    steps of the 0.5B model, 24 GB and the OOM killer after 120). ``malloc_trim`` returns
    it; trimming every step costs about a third of the speed, so only past ``slack``.
    """

    def __init__(self, slack: int = 6 << 30) -> None:
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name) if name else None
        self._trim = getattr(libc, "malloc_trim", None)  # glibc only
        self._limit = _resident_bytes() + slack

    def __call__(self) -> None:
        if self._trim is not None and _resident_bytes() > self._limit:
            self._trim(0)


# --------------------------------------------------------------------------- schedule


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def _step_groups(
    lengths: Sequence[int], settings: LoopSettings
) -> Iterator[tuple[int, list[list[int]]]]:
    """``(epoch, micro-batches)`` of every step, in order; epochs repeat under ``max_steps``."""
    epoch = 0
    while settings.max_steps is not None or epoch < settings.epochs:
        batches = make_batches(lengths, settings.batch_tokens, _epoch_seed(settings.seed, epoch))
        for start in range(0, len(batches), settings.grad_accum):
            yield epoch, batches[start : start + settings.grad_accum]
        epoch += 1


def count_steps(lengths: Sequence[int], settings: LoopSettings) -> int:
    """Optimizer steps of a run: ``max_steps`` if set, else every step of ``epochs`` epochs."""
    if settings.max_steps is not None:
        return settings.max_steps
    return sum(1 for _ in _step_groups(lengths, settings))


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then linear decay to zero at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


# --------------------------------------------------------------------------- loss


def _collate(examples: Sequence[Example], pad_id: int) -> tuple[torch.Tensor, ...]:
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return ids, labels, mask


def token_loss_sum(model: Any, examples: Sequence[Example], pad_id: int) -> torch.Tensor:
    """Summed cross-entropy of the next-token predictions at every labelled position.

    ``model`` is a causal LM, bare or wrapped by peft.
    """
    ids, labels, mask = _collate(examples, pad_id)
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    targets = labels[:, 1:]
    selected = targets != IGNORE_INDEX
    if getattr(causal_lm.config, "model_type", "") in _PLAIN_HEAD_TYPES:
        hidden = causal_lm.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        logits = causal_lm.get_output_embeddings()(hidden[:, :-1][selected])
    else:
        logits = causal_lm(input_ids=ids, attention_mask=mask).logits[:, :-1][selected]
    return F.cross_entropy(logits.float(), targets[selected], reduction="sum")


# --------------------------------------------------------------------------- checkpoints


def _fingerprint(examples: Sequence[Example], settings: LoopSettings, total: int) -> str:
    """What a checkpoint must match to be resumed: the data, the batches and the schedule."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(len(example.input_ids).to_bytes(4, "little"))
        digest.update(bytes(str(example.input_ids[-8:]), "ascii"))
    keys = (settings.lr, settings.batch_tokens, settings.grad_accum, settings.seed, total)
    if settings.bf16:  # older checkpoints (float32 only) keep their fingerprint
        keys += ("bf16",)
    digest.update(repr(keys).encode())
    return digest.hexdigest()[:16]


def checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.name.startswith(CHECKPOINT_PREFIX)]
    return sorted((p for p in found if (p / _STATE_FILE).is_file()), key=lambda p: p.name)


def _save_checkpoint(
    folder: Path, model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any], keep: int
) -> Path:
    final = folder / f"{CHECKPOINT_PREFIX}{state['step']:07d}"
    temp = folder / f".partial-{final.name}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    model.save_pretrained(str(temp), save_embedding_layers=False)
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": torch.get_rng_state(),
        },
        temp / "optimizer.pt",
    )
    # the state file last: a folder without it is incomplete and never resumed from
    (temp / _STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(temp, final)
    for old in checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _load_checkpoint(
    path: Path, model: Any, optimizer: Any, scheduler: Any, fingerprint: str
) -> dict[str, Any]:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state: dict[str, Any] = json.loads((path / _STATE_FILE).read_text(encoding="utf-8"))
    if state.get("fingerprint") != fingerprint:
        raise ConfigError(
            f"checkpoint {path} was made with other data or settings (lr, batch, seed, steps); "
            "train into a new --out folder, or delete the checkpoints to start over"
        )
    set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))
    saved = torch.load(path / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    return state


# --------------------------------------------------------------------------- the loop


def run_training(
    model: Any,
    examples: Sequence[Example],
    settings: LoopSettings,
    *,
    name: str,
    pad_id: int,
    checkpoint_dir: Path,
    resume: bool,
    on_step: Callable[[StepReport], None] | None = None,
) -> LoopResult:
    """Train the trainable parameters of ``model`` (a peft model) on ``examples``.

    Args:
        name: the adapter's name, for reports.
        checkpoint_dir: where ``step-NNNNNNN`` checkpoints go (every ``save_every`` steps).
        resume: continue from the last checkpoint in ``checkpoint_dir`` if there is one.
        on_step: called after every optimizer step.

    Raises:
        ConfigError: no examples, or a checkpoint that does not match this run.
    """
    if not examples:
        raise ConfigError(f"adapter {name!r} has no training example")
    lengths = [len(e.input_ids) for e in examples]
    total = count_steps(lengths, settings)
    fingerprint = _fingerprint(examples, settings, total)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    warmup = math.ceil(settings.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _lr_factor(step, total, warmup)
    )
    state: dict[str, Any] = {"step": 0, "tokens": 0, "target_tokens": 0, "first_loss": None,
                             "last_loss": None, "fingerprint": fingerprint, "total_steps": total}
    found = checkpoints(checkpoint_dir) if resume else []
    if found:
        state = _load_checkpoint(found[-1], model, optimizer, scheduler, fingerprint)
    resumed_from = int(state["step"])
    session_tokens = 0
    seconds = 0.0
    model.train()
    trim = _HeapTrim()
    groups = _step_groups(lengths, settings)
    for step, (epoch, micro_batches) in enumerate(groups):
        if step >= total:
            break
        if step < resumed_from:
            continue
        started = time.perf_counter()
        step_targets = sum(examples[i].target_tokens for batch in micro_batches for i in batch)
        step_tokens = sum(lengths[i] for batch in micro_batches for i in batch)
        loss_sum = 0.0
        for batch in micro_batches:
            # bfloat16 matmuls, float32 LoRA weights, optimizer and loss (see TrainConfig.precision)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings.bf16):
                loss = token_loss_sum(model, [examples[i] for i in batch], pad_id)
            (loss / step_targets).backward()  # type: ignore[no-untyped-call]
            loss_sum += float(loss.detach())
        if settings.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
        lr = float(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        trim()
        seconds += time.perf_counter() - started
        session_tokens += step_tokens
        step_loss = loss_sum / step_targets
        state.update(
            step=step + 1,
            epoch=epoch,
            tokens=state["tokens"] + step_tokens,
            target_tokens=state["target_tokens"] + step_targets,
            first_loss=state["first_loss"] if state["first_loss"] is not None else step_loss,
            last_loss=step_loss,
        )
        saved = None
        if settings.save_every > 0 and (step + 1) % settings.save_every == 0 and step + 1 < total:
            saved = str(_save_checkpoint(checkpoint_dir, model, optimizer, scheduler, state,
                                         settings.keep_checkpoints))
        if on_step is not None:
            on_step(StepReport(name, step + 1, total, epoch, step_loss, lr, state["tokens"],
                               state["target_tokens"], seconds, session_tokens, saved))
    model.eval()
    return LoopResult(
        steps=int(state["step"]),
        total_steps=total,
        resumed_from_step=resumed_from,
        tokens=int(state["tokens"]),
        target_tokens=int(state["target_tokens"]),
        seconds=seconds,
        session_tokens=session_tokens,
        first_loss=state["first_loss"],
        last_loss=state["last_loss"],
    )
