"""Self-consistency: the answer most sampled branches agree on.

A branch's answer is reduced to a key before counting: numbers by value (``"1,484"``,
``"1484.0"`` and ``"$1484"`` agree), anything else case- and space-insensitively. Only answered
branches vote. With ``negative_weight=0.5`` (the program-grounded maths agent), a negative
number counts half a vote: word problems rarely have negative answers, and a subtraction the
wrong way round is the small model's commonest slip there. Ties go to the earliest branch among
the tied: branch 0 is the greedy run, the model's likeliest output.

Both rules were chosen on ``maths-wide-val`` (70 questions of 70 unseen templates, six program
branches each, the votes recounted from the same trajectories): plain majority with ties to the
larger sum of log-probabilities was right on 24, ties to the earlier branch on 26, and with
negative answers at half a vote on 27 (the greedy branch alone: 22). A sum of log-probabilities
favours short outputs, so it is kept in the summary but does not break ties. All of this was
chosen on those 70 questions, a margin of a few questions: small evidence, and maths only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from fractions import Fraction

from lumos_graph.agent.state import LumosState, Sample

__all__ = ["answer_key", "rows_key", "vote"]

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


def rows_key(answer: str) -> str:
    """The vote key of a query result (SQL grounding): its rows without the header line and in
    any order, so that two queries that return the same rows agree whatever their column
    names (execution-guided voting); a single value as :func:`answer_key`."""
    lines = answer.strip().splitlines()
    if len(lines) <= 1:
        return answer_key(answer)
    return "\n".join(sorted(answer_key(line) for line in lines[1:]))


def vote(branches: Sequence[LumosState], *, negative_weight: float = 1.0,
         key: Callable[[str], str] = answer_key) -> tuple[int, list[Sample]]:
    """The index of the chosen branch and a summary of every branch (answers compared by
    ``key``).

    Without any answered branch, the first branch (greedy) is chosen: its state says why it
    failed.
    """
    keys = [
        key(b["answer"]) if b.get("status") == "answered" and b.get("answer") else None
        for b in branches
    ]
    counts = Counter(k for k in keys if k is not None)
    weights = {k: n * (negative_weight if k.startswith("-") and _NUMBER.match(k) else 1.0)
               for k, n in counts.items()}
    chosen = 0
    if counts:
        chosen = max(
            (i for i, k in enumerate(keys) if k is not None),
            key=lambda i: (weights[keys[i]], -i),  # type: ignore[index]
        )
    summary: list[Sample] = [
        {
            "answer": b.get("answer"),
            "status": b.get("status", "failed"),
            "votes": counts[k] if k is not None else 0,
            "logprob": round(float(b.get("logprob", 0.0)), 4),
            "chosen": i == chosen,
            "ground_turns": list(b.get("ground_turns", [])),
        }
        for i, (b, k) in enumerate(zip(branches, keys, strict=True))
    ]
    return chosen, summary
