"""Self-consistency: the answer most sampled branches agree on.

A branch's answer is reduced to a key before counting: numbers by value (``"1,484"``,
``"1484.0"`` and ``"$1484"`` agree), anything else case- and space-insensitively. Only answered
branches vote. Ties go to the branch whose model outputs were most likely (the sum of their
log-probabilities), then to the earlier branch (branch 0 is the greedy run).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

from lumos_graph.agent.state import LumosState, Sample

__all__ = ["answer_key", "vote"]

_NUMBER = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")


def answer_key(answer: str) -> str:
    """The form two answers must share to count as the same vote."""
    text = answer.strip().strip(".").strip()
    bare = re.sub(r"[,$€£%\s]", "", text)
    fraction = re.fullmatch(r"-?\d+/\d+", bare) and not bare.endswith("/0")
    if _NUMBER.match(bare) or fraction:
        value = Fraction(bare)
        return str(value.numerator if value.denominator == 1 else float(value))
    return " ".join(text.casefold().split())


def vote(branches: Sequence[LumosState]) -> tuple[int, list[Sample]]:
    """The index of the chosen branch and a summary of every branch.

    Without any answered branch, the first branch (greedy) is chosen: its state says why it
    failed.
    """
    keys = [
        answer_key(b["answer"]) if b.get("status") == "answered" and b.get("answer") else None
        for b in branches
    ]
    counts = Counter(k for k in keys if k is not None)
    chosen = 0
    if counts:
        chosen = max(
            (i for i, k in enumerate(keys) if k is not None),
            key=lambda i: (counts[keys[i]], branches[i].get("logprob", 0.0), -i),  # type: ignore[index]
        )
    summary: list[Sample] = [
        {
            "answer": b.get("answer"),
            "status": b.get("status", "failed"),
            "votes": counts[k] if k is not None else 0,
            "logprob": round(float(b.get("logprob", 0.0)), 4),
            "chosen": i == chosen,
        }
        for i, (b, k) in enumerate(zip(branches, keys, strict=True))
    ]
    return chosen, summary
