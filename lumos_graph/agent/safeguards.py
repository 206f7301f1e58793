"""AgentTuning's runtime safeguards, shared by every agent (alpha-UMi, ReAct, LUMOS).

AgentTuning (arXiv 2310.12823) runs its agents under three rules; each is one small function
here, independent of any graph, so that every agent applies them the same way:

* **Repeat stop** (:func:`repeated_output`): the same raw model output three times in a row
  ends the episode as a failure. The caller passes the outputs of one role, oldest first.
* **No progress** (:func:`find_duplicate`): an action with the same name and the same
  arguments as an earlier one of the run is not executed again; the model reads
  :func:`duplicate_feedback` instead, and the turn still counts toward the run's caps.
* **Snapping** (:func:`snap`): for models we cannot constrain with a grammar, an action name
  that is not admissible is mapped to the closest admissible one by sentence BLEU
  (:func:`sentence_bleu` on characters, so a typo or a case slip still matches), taken only
  at or above a threshold; below it the model gets one format error (:func:`format_feedback`)
  and a second malformed action ends the run (:func:`format_retry_left`).

The feedback sentences are the model-facing text of these rules, kept here as templates beside
the rules they explain.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from string import Template
from typing import Any

from lumos_graph.errors import ConfigError

__all__ = [
    "SNAP_THRESHOLD",
    "Safeguards",
    "Snap",
    "call_key",
    "duplicate_feedback",
    "find_duplicate",
    "format_feedback",
    "format_retry_left",
    "repeat_reason",
    "repeated_output",
    "sentence_bleu",
    "snap",
]

SNAP_THRESHOLD = 0.5
"""Least score for a snap. AgentTuning took any action above 0.01 on word BLEU over whole
commands; on the characters of a name 0.01 would snap unrelated words, which share letters.
Scored by sentence BLEU on character unigrams and bigrams (:data:`SNAP_MAX_N`; 4-grams punish
one swapped letter in a short name), typos and case or underscore slips of the maths, QA, SQL
and test action names score 0.67 to 1.0 (``splt`` -> Split 0.67, ``dubble`` -> Double 0.75)
and unrelated words 0.0 to 0.39 (``translate`` -> Calculator 0.39, ``weather`` 0.25), so 0.5
separates them (both lists are pinned in ``tests/agent/test_safeguards.py``)."""
SNAP_MAX_N = 2

DUPLICATE_FEEDBACK = Template(
    "You already called $name with these arguments; it was not run again. Its result was: "
    "$result. Use that result, or call a different action.")
FORMAT_FEEDBACK = Template(
    "Format error: $message. Write the action exactly in the required format, with one of: "
    "$names.")
REPEAT_REASON = Template(
    "the $role produced the same output $times times in a row (AgentTuning's repeat stop): "
    "$output")


@dataclass(frozen=True)
class Safeguards:
    """The settings of the rules (AgentTuning's values by default).

    Attributes:
        max_repeats: identical consecutive outputs that end a run.
        snap_threshold: least :func:`sentence_bleu` score of a snapped action name.
        format_retries: malformed actions answered with a format error before the run ends.
    """

    max_repeats: int = 3
    snap_threshold: float = SNAP_THRESHOLD
    format_retries: int = 1

    def __post_init__(self) -> None:
        if self.max_repeats < 2:
            raise ConfigError(f"max_repeats must be at least 2, not {self.max_repeats}")
        if not 0.0 <= self.snap_threshold <= 1.0:
            raise ConfigError(f"snap_threshold must be in [0, 1], not {self.snap_threshold}")
        if self.format_retries < 0:
            raise ConfigError(f"format_retries must be at least 0, not {self.format_retries}")


# ---- repeat stop -----------------------------------------------------------------------------
def repeated_output(outputs: Sequence[str], times: int = 3) -> bool:
    """Whether the last ``times`` outputs (of one role, oldest first) are identical.

    Outputs are compared as the model wrote them, only surrounding whitespace ignored.
    """
    if len(outputs) < times:
        return False
    last = [o.strip() for o in outputs[-times:]]
    return len(set(last)) == 1


def repeat_reason(role: str, output: str, times: int = 3) -> str:
    """The run's ``reason`` after a repeat stop."""
    shown = output.strip().replace("\n", " ")
    shown = shown if len(shown) <= 120 else shown[:117] + "..."
    return REPEAT_REASON.substitute(role=role, times=str(times), output=repr(shown))


# ---- no progress -----------------------------------------------------------------------------
def call_key(name: str, args: Sequence[str] | Mapping[str, Any] | str) -> str:
    """A canonical text of an action call: equal calls have equal keys (argument whitespace
    and JSON key order do not matter)."""
    if isinstance(args, Mapping):
        norm: Any = {str(k): " ".join(str(v).split()) for k, v in sorted(args.items())}
    elif isinstance(args, str):
        norm = " ".join(args.split())
    else:
        norm = [" ".join(str(a).split()) for a in args]
    return json.dumps([name, norm], ensure_ascii=False, sort_keys=True)


def find_duplicate(records: Iterable[Mapping[str, Any]], key: str) -> Mapping[str, Any] | None:
    """The earlier executed action record whose ``call_key`` (``record["key"]``, or made from
    ``tool`` and ``resolved_args``) is ``key``; ``None`` when the call is new.

    Records that were themselves refused as duplicates (``duplicate`` set) are skipped: the
    original holds the result.
    """
    for record in records:
        if record.get("duplicate"):
            continue
        known = record.get("key") or call_key(record.get("tool", ""),
                                               list(record.get("resolved_args") or []))
        if known == key:
            return record
    return None


def duplicate_feedback(record: Mapping[str, Any]) -> str:
    """What the model reads instead of running a repeated call."""
    if record.get("error"):
        result = f"error: {record['error']}"
    else:
        result = ", ".join(record.get("result") or []) or "(nothing)"
    return DUPLICATE_FEEDBACK.substitute(name=record.get("tool", "this action"), result=result)


# ---- snapping --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snap:
    """A malformed action name mapped to an admissible one."""

    written: str  # what the model wrote
    action: str  # the admissible action chosen
    score: float  # its sentence BLEU


def sentence_bleu(hypothesis: Sequence[str], reference: Sequence[str], max_n: int = 4) -> float:
    """Sentence BLEU of token sequences: the geometric mean of modified n-gram precisions
    (n = 1..``max_n``, add-one smoothing for n > 1, as Lin and Och's sentence BLEU) times
    the brevity penalty. 1.0 for identical sequences, 0.0 when no token matches."""
    if not hypothesis or not reference:
        return 0.0
    logs = []
    for n in range(1, max_n + 1):
        hyp = Counter(tuple(hypothesis[i:i + n]) for i in range(len(hypothesis) - n + 1))
        ref = Counter(tuple(reference[i:i + n]) for i in range(len(reference) - n + 1))
        matched = sum(min(count, ref[gram]) for gram, count in hyp.items())
        total = sum(hyp.values())
        if n == 1:
            if matched == 0:
                return 0.0
            logs.append(math.log(matched / total))
        else:
            logs.append(math.log((matched + 1) / (total + 1)))
    bp = 1.0 if len(hypothesis) >= len(reference) else math.exp(
        1 - len(reference) / len(hypothesis))
    return bp * math.exp(sum(logs) / len(logs))


def _chars(text: str) -> list[str]:
    return list("".join(ch for ch in text.lower() if ch.isalnum()))


def snap(written: str, admissible: Sequence[str],
         threshold: float = SNAP_THRESHOLD) -> Snap | None:
    """The admissible action closest to ``written`` by character sentence BLEU (unigrams and
    bigrams), or ``None``
    when even the best scores below ``threshold``. An exact match scores 1.0; ties go to the
    earlier admissible action."""
    best: Snap | None = None
    for name in admissible:
        score = sentence_bleu(_chars(written), _chars(name), max_n=SNAP_MAX_N)
        if best is None or score > best.score:
            best = Snap(written, name, round(score, 4))
    if best is None or best.score < threshold:
        return None
    return best


def format_feedback(message: str, names: Sequence[str]) -> str:
    """The one format error a malformed action gets (the parser's message and the names)."""
    return FORMAT_FEEDBACK.substitute(message=message.rstrip("."), names=", ".join(names))


def format_retry_left(errors_so_far: int, guards: Safeguards = Safeguards()) -> bool:
    """Whether a malformed action still gets a format error back (else the run fails)."""
    return errors_so_far < guards.format_retries
