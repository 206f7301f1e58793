"""Training examples from ``lumos-graph eval`` trajectories, filtered as AgentTuning filters.

Only ``lumos-onepass``, ``lumos-iterative`` and ``lumos-program`` rows hold LUMOS module
conversations (``plan_turns``, ``ground_turns``; see :mod:`lumos_graph.evaluation.run`). A row is kept when its
reward reaches the threshold (AgentTuning keeps ``r = 1``), the run answered, both
conversations are well formed (user first, then turns alternating, an assistant turn last)
and, unless ``keep_errors``, the run made no format or tool error (a correct answer reached
after a failed action would teach the failure). Identical module conversations are kept once.

A ``lumos-program`` row that voted over several programs (``samples``, each with its
``ground_turns``) is judged program by program, as rejection sampling does: every program whose
executed answer is the gold one is an example, whichever program the vote chose, so a row
whose vote went wrong still gives its right programs and a row whose vote went right gives no
wrong ones.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lumos_graph.agent import protocol
from lumos_graph.agent.voting import answer_key
from lumos_graph.errors import ConfigError
from lumos_graph.jsonl import json_lines
from lumos_graph.training._convert_render import TrainingSet, file_name

__all__ = ["from_trajectories"]

_FORMULATION = {"lumos-onepass": "onetime", "lumos-iterative": "iterative",
                "lumos-program": "program"}
_DOMAIN = {"maths": "maths", "yesno": "complex_qa", "qa": "complex_qa", "sql": "sql",
           "vqa": "multimodal"}


def from_trajectories(paths: Sequence[str | Path], *, min_reward: float = 1.0,
                      keep_errors: bool = False) -> TrainingSet:
    """The examples of the kept rows, by file name, and a report of the rows.

    Report: ``{"source": "trajectories", "rows", "kept", "dropped": {reason: rows},
    "examples": {file: count}, "duplicates": examples dropped as duplicates}``.

    Raises:
        ConfigError: a missing file or a line that is not JSON.
    """
    if not 0 <= min_reward <= 1:
        raise ConfigError(f"min_reward must be between 0 and 1, not {min_reward}")
    result = TrainingSet()
    seen: set[tuple[str, str]] = set()
    dropped: Counter[str] = Counter()
    rows = kept = duplicates = 0
    for row in _rows(paths):
        rows += 1
        reason = _problem(row, min_reward, keep_errors)
        if reason:
            dropped[reason] += 1
            continue
        modules = _modules(row)
        if not modules:
            dropped["no program reached the gold answer"] += 1
            continue
        kept += 1
        domain = _DOMAIN.get(str(row.get("kind", "maths")), "maths")
        formulation = _FORMULATION[row["agent"]]
        for module, turns in modules:
            name = file_name(domain, module, formulation)
            messages = [{"role": t["role"], "content": t["content"]} for t in turns]
            key = (name, json.dumps(messages, ensure_ascii=False))
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            result.files.setdefault(name, []).append(
                {"dataset": str(row.get("dataset", "")), "id": str(row.get("id", "")),
                 "messages": messages})
    result.report = {
        "source": "trajectories",
        "rows": rows,
        "kept": kept,
        "dropped": dict(dropped.most_common()),
        "examples": {name: len(v) for name, v in sorted(result.files.items())},
        "duplicates": duplicates,
        "min_reward": min_reward,
    }
    return result


def _modules(row: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The module conversations of a kept row. A ``lumos-program`` row trains the program
    grounder only (its planner is the OnePass planner), with the system turn it sees: each of
    its right programs when it voted (:func:`_voted`), else the one it ran."""
    if row["agent"] == "lumos-program":
        system = protocol.program_prompt("", [])[0]
        voted = _voted(row)
        turns = [row["ground_turns"]] if voted is None else voted
        return [("ground", [system, *t]) for t in turns]
    return [("plan", row["plan_turns"]), ("ground", row["ground_turns"])]


def _branches(row: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The recorded branches of a voting row, each with its ``ground_turns``, or ``None`` for a
    row without them (one program, or a trajectory of an older version)."""
    samples = row.get("samples")
    if not isinstance(samples, list) or not samples or not all(
            isinstance(s, dict) and "ground_turns" in s for s in samples):
        return None
    return samples


def _voted(row: dict[str, Any]) -> list[list[dict[str, Any]]] | None:
    """The grounding conversations of the branches that answered the gold answer, or ``None``
    for a row without recorded branches (:func:`_branches`)."""
    samples = _branches(row)
    if samples is None:
        return None
    gold = answer_key(str(row.get("gold", "")))
    return [s["ground_turns"] for s in samples
            if s.get("status") == "answered" and isinstance(s.get("answer"), str)
            and answer_key(s["answer"]) == gold and _well_formed(s["ground_turns"])]


def _rows(paths: Sequence[str | Path]) -> Iterator[dict[str, Any]]:
    if not paths:
        raise ConfigError("give at least one trajectory file")
    for path in map(Path, paths):
        if not path.is_file():
            raise ConfigError(f"no trajectory file {str(path)!r}")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        for n, row in json_lines(text, source=path):
            if not isinstance(row, dict):
                raise ConfigError(f"{path}:{n}: not a trajectory object")
            yield row


def _problem(row: dict[str, Any], min_reward: float, keep_errors: bool) -> str | None:
    """Why a row is not training data, or ``None``."""
    if row.get("agent") not in _FORMULATION:
        return "not a LUMOS agent"
    if row["agent"] == "lumos-program" and _branches(row) is not None:
        return None  # judged program by program (:func:`_modules`)
    reward = row.get("reward")
    if not isinstance(reward, int | float) or reward < min_reward:
        return "reward below the threshold"
    if row.get("status") != "answered":
        return "not answered"
    if not keep_errors and (row.get("format_errors") or row.get("tool_errors")):
        return "errors in the run"
    for turns in (row.get("plan_turns"), row.get("ground_turns")):
        if not _well_formed(turns):
            return "malformed conversation"
    return None


def _well_formed(turns: Any) -> bool:
    if not isinstance(turns, list) or len(turns) < 2:
        return False
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("content"), str):
            return False
        if turn.get("role") != ("user" if i % 2 == 0 else "assistant"):
            return False
    return True
