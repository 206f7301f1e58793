"""Validation: how well the executed agent does with an adapter, on templates it never saw.

Training loss measures how well the training conversations are reproduced; on a few dozen
``gsm_symbolic`` templates it falls near zero by memorising them, which says nothing about new
problems. What chooses a checkpoint, a learning rate or a number of steps is the accuracy of
the LUMOS agent run with its tools on the validation split (``maths-val``: templates 70-79,
held out from training as templates 80-99 are held out from everything).

Each candidate adapter (a checkpoint or a finished adapter, as a peft folder or a GGUF) is
exported to GGUF if needed and loaded over the base GGUF as the trained preset loads it
(``few_shot=False, module_system=True``); the questions run concurrently, so the llama.cpp
backend decodes them as one batch.

Formulations: ``onepass`` and ``iterative`` (action lines; the adapter plays both roles) and
``program`` (the default agent's program grounding, one greedy program: the plain model plans
with its few-shot prompt, the adapter writes the program; what ``data from-eval`` of a
``lumos-program`` eval trains). A candidate without a path (:data:`UNTRAINED`) is the plain
model with few-shot prompts: the row an adapter must beat to be worth shipping.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lumos_graph.errors import ConfigError
from lumos_graph.evaluation.datasets import load_dataset
from lumos_graph.evaluation.metrics import numeric_match

__all__ = ["MODES", "UNTRAINED", "ValidationRow", "best_row", "format_rows", "validate_adapters"]

CONCURRENCY = 8  # questions in flight at once (one llama.cpp batch)
MODES = ("onepass", "iterative", "program")
UNTRAINED = "untrained"  # a candidate of this name and no path: the plain base model


@dataclass(frozen=True)
class ValidationRow:
    """One adapter in one formulation on the validation split."""

    adapter: str  # checkpoint or adapter name (``step-0000050``, ``shared``)
    path: str  # the GGUF that was loaded
    mode: str
    correct: int
    total: int
    seconds: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def validate_adapters(
    candidates: Sequence[tuple[str, Path | None]],
    base_gguf: Path,
    *,
    dataset: str = "maths-val",
    modes: Sequence[str] = ("onepass", "iterative"),
    limit: int | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> list[ValidationRow]:
    """Accuracy of the LUMOS agent with each candidate adapter, per formulation.

    Args:
        candidates: ``(name, path)``: a peft adapter folder or a GGUF adapter file; ``path``
            ``None``: the plain base model (few-shot prompts), for comparison.
        base_gguf: the GGUF the adapters apply to.
        dataset: a maths dataset (built-in name or JSONL file); never a test split.
        modes: formulations to run.
        limit: only the first N questions.
        say: progress lines.

    Raises:
        ConfigError: a test split, an unknown dataset or formulation, a bad adapter.
    """
    from lumos_graph.graphs.lumos import create_lumos_agent
    from lumos_graph.llm.llama import ChatLlamaCpp
    from lumos_graph.llm.llama_pool import model_pool

    if dataset.endswith("-test"):
        raise ConfigError(f"{dataset} is a test split: checkpoints are chosen on a validation "
                          "split (maths-val) only")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ConfigError(f"unknown formulation(s) {unknown}; use {', '.join(MODES)}")
    items = load_dataset(dataset, limit=limit)
    rows: list[ValidationRow] = []
    plain = ChatLlamaCpp(model_path=str(base_gguf))  # few-shot prompts, no adapter
    for name, path in candidates:
        gguf = _as_gguf(path, base_gguf, say) if path is not None else None
        model = plain if gguf is None else ChatLlamaCpp(
            model_path=str(base_gguf), lora_path=str(gguf), few_shot=False, module_system=True)
        for mode in modes:
            if mode == "program":  # the plain planner, as in the default agent
                agent = create_lumos_agent(planner=plain, grounder=model, mode="onepass",
                                           grounding="program", samples=1)
            else:
                agent = create_lumos_agent(model, mode=mode)  # type: ignore[arg-type]
            started = time.perf_counter()

            def solve(item: dict[str, Any], agent: Any = agent) -> bool:
                state = agent.invoke({"task": item["question"]})
                return numeric_match(state.get("answer"), str(item["answer"]))

            with ThreadPoolExecutor(CONCURRENCY) as pool:
                correct = sum(pool.map(solve, items))
            row = ValidationRow(name, str(gguf or base_gguf), mode, correct, len(items),
                                round(time.perf_counter() - started, 1))
            say(f"{name} {mode}: {correct}/{len(items)} ({row.accuracy:.0%}) in {row.seconds} s")
            rows.append(row)
        model_pool().close()  # one adapter's model at a time in memory
    return rows


def best_row(rows: Sequence[ValidationRow], mode: str | None = None) -> ValidationRow | None:
    """The most accurate row (of ``mode``, if given); ties go to the earlier candidate."""
    chosen = [r for r in rows if mode is None or r.mode == mode]
    if not chosen:
        return None
    return max(chosen, key=lambda r: (r.accuracy, -chosen.index(r)))


def format_rows(rows: Sequence[ValidationRow]) -> str:
    """The rows as a plain table."""
    lines = [f"{'adapter':<16} {'mode':<9} {'accuracy':>14} {'seconds':>8}"]
    for r in rows:
        lines.append(f"{r.adapter:<16} {r.mode:<9} "
                     f"{f'{r.accuracy:.0%} ({r.correct}/{r.total})':>14} {r.seconds:>8}")
    return "\n".join(lines)


def write_rows(rows: Sequence[ValidationRow], path: Path) -> Path:
    """Save the rows as JSON (with each row's accuracy)."""
    path.write_text(json.dumps([{**asdict(r), "accuracy": round(r.accuracy, 4)} for r in rows],
                               indent=1), encoding="utf-8")
    return path


def _as_gguf(path: Path, base_gguf: Path, say: Callable[[str], None]) -> Path:
    if path.is_file():
        return path
    target = path / "adapter-lora-f16.gguf"
    if not target.is_file():
        from lumos_graph.llm.lora_gguf import export_lora_gguf

        say(f"exporting {path} to {target}")
        export_lora_gguf(path, base_gguf, target)
    return target
