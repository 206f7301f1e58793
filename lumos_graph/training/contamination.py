"""AgentTuning's contamination check: training examples against the test split's texts.

Texts are lower-cased and split into word tokens (runs of letters and digits; whitespace and
punctuation separate them). A training 10-gram *matches* when some test 10-gram differs from
it in at most 4 of the 10 positions. A training example's contamination rate is the share of
its tokens covered by matching 10-grams: above 80% it is *dirty* (drop it), below 20%
*clean*, in between *uncertain* (kept, and reported).

The compared text of an example is its task: the task inside the first user turn when that
turn is a LUMOS prompt (read back with :mod:`lumos_graph.agent.protocol`'s own templates, so the
instructions and the action list are not compared), otherwise all its user turns.

Finding matches with mismatches: the 10 positions are cut into 5 blocks of 2. Two 10-grams
that differ in at most 4 positions agree exactly on at least one block (4 mismatches can
spoil at most 4 blocks), so every test 10-gram is indexed under its 5 ``(block, tokens)``
keys and only test 10-grams sharing a key with a training 10-gram are compared position by
position.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lumos_graph.agent import protocol

__all__ = [
    "CLEAN_BELOW",
    "DIRTY_ABOVE",
    "MAX_MISMATCHES",
    "NGRAM",
    "ContaminationReport",
    "Verdict",
    "check_contamination",
    "contamination_rate",
    "example_text",
    "tokens",
]

NGRAM = 10
MAX_MISMATCHES = 4
DIRTY_ABOVE = 0.8
CLEAN_BELOW = 0.2
_BLOCKS = 5
_WORD = re.compile(r"[^\W_]+")
Label = Literal["clean", "uncertain", "dirty"]


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens: runs of letters and digits."""
    return _WORD.findall(text.lower())


class _Index:
    """Test 10-grams indexed by their pigeonhole blocks."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.grams: list[tuple[str, ...]] = []
        self.keys: dict[tuple[int, tuple[str, ...]], list[int]] = defaultdict(list)
        seen: set[tuple[str, ...]] = set()
        width = NGRAM // _BLOCKS
        for text in texts:
            words = tokens(text)
            for i in range(len(words) - NGRAM + 1):
                gram = tuple(words[i: i + NGRAM])
                if gram in seen:
                    continue
                seen.add(gram)
                self.grams.append(gram)
                for b in range(_BLOCKS):
                    self.keys[(b, gram[b * width: (b + 1) * width])].append(len(self.grams) - 1)

    def matches(self, gram: tuple[str, ...]) -> bool:
        width = NGRAM // _BLOCKS
        tried: set[int] = set()
        for b in range(_BLOCKS):
            for j in self.keys.get((b, gram[b * width: (b + 1) * width]), ()):
                if j in tried:
                    continue
                tried.add(j)
                other = self.grams[j]
                if sum(x != y for x, y in zip(gram, other, strict=True)) <= MAX_MISMATCHES:
                    return True
        return False


def contamination_rate(text: str, index: _Index) -> float:
    """The share of ``text``'s tokens covered by 10-grams that match the test texts."""
    words = tokens(text)
    if len(words) < NGRAM:
        return 0.0  # too short to hold a 10-gram: AgentTuning's measure says nothing
    covered = [False] * len(words)
    for i in range(len(words) - NGRAM + 1):
        if index.matches(tuple(words[i: i + NGRAM])):
            covered[i: i + NGRAM] = [True] * NGRAM
    return sum(covered) / len(words)


def label(rate: float) -> Label:
    """``dirty`` above 80%, ``clean`` below 20%, ``uncertain`` in between."""
    if rate > DIRTY_ABOVE:
        return "dirty"
    return "clean" if rate < CLEAN_BELOW else "uncertain"


@dataclass(frozen=True)
class Verdict:
    """One training example's rate and label."""

    file: str
    id: str
    rate: float
    label: Label


@dataclass
class ContaminationReport:
    """Counts of clean, uncertain and dirty examples, and every example's :class:`Verdict`."""

    test_texts: int
    test_ngrams: int
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        found = {"clean": 0, "uncertain": 0, "dirty": 0}
        for v in self.verdicts:
            found[v.label] += 1
        return found

    def by_file(self) -> dict[str, dict[str, int]]:
        """Counts per training file."""
        files: dict[str, dict[str, int]] = {}
        for v in self.verdicts:
            files.setdefault(v.file, {"clean": 0, "uncertain": 0, "dirty": 0})[v.label] += 1
        return files

    def dirty(self) -> set[tuple[str, str]]:
        """``(file, id)`` of the dirty examples."""
        return {(v.file, v.id) for v in self.verdicts if v.label == "dirty"}

    def as_dict(self) -> dict[str, Any]:
        rates = [v.rate for v in self.verdicts]
        return {
            "test_texts": self.test_texts,
            "test_ngrams": self.test_ngrams,
            "examples": len(self.verdicts),
            "counts": self.counts,
            "by_file": self.by_file(),
            "max_rate": round(max(rates, default=0.0), 4),
            "mean_rate": round(sum(rates) / len(rates), 4) if rates else 0.0,
            "not_clean": [{"file": v.file, "id": v.id, "rate": round(v.rate, 4),
                           "label": v.label} for v in self.verdicts if v.label != "clean"],
        }


def check_contamination(
    train_examples: Sequence[dict[str, Any]] | Mapping[str, Sequence[dict[str, Any]]],
    test_texts: Iterable[str],
) -> ContaminationReport:
    """Compare training examples with the test texts (e.g. the test questions).

    Args:
        train_examples: examples (``{"id", "messages"}``), or ``{file name: examples}``.
        test_texts: the texts of the test items.
    """
    texts = list(test_texts)
    index = _Index(texts)
    files = train_examples if isinstance(train_examples, Mapping) else {"": train_examples}
    report = ContaminationReport(test_texts=len(texts), test_ngrams=len(index.grams))
    cache: dict[str, float] = {}  # the four files of a conversion share their tasks
    for name, rows in files.items():
        for n, example in enumerate(rows):
            text = example_text(example)
            if text not in cache:
                cache[text] = contamination_rate(text, index)
            rate = cache[text]
            report.verdicts.append(Verdict(name, str(example.get("id", n)), rate, label(rate)))
    return report


# ---- what is compared ---------------------------------------------------------------------
_TASK, _SLOT = "\x00task\x00", "\x00slot\x00"


def _pattern(text: str) -> re.Pattern[str]:
    """A rendered prompt as a pattern: the task slot captured, the other slots anything."""
    pieces = re.split(f"({_TASK}|{_SLOT})", text)
    parts = ["(?P<task>.*?)" if p == _TASK else ".*?" if p == _SLOT else re.escape(p)
             for p in pieces]
    return re.compile("".join(parts) + ("" if pieces[-1] else ".*"), re.DOTALL)


_PROMPTS = (
    _pattern(protocol.plan_first(_TASK)),
    _pattern(protocol.ground_first(_TASK, _SLOT, _SLOT)),
    _pattern(protocol.ground_first_onepass(_TASK, _SLOT, [_SLOT])),
)


def example_text(example: dict[str, Any]) -> str:
    """The task of a training example: see the module docstring."""
    users = [m["content"] for m in example.get("messages", []) if m.get("role") == "user"]
    if not users:
        return ""
    for pattern in _PROMPTS:
        match = pattern.fullmatch(users[0])
        if match:
            return match.group("task")
    return "\n".join(users)
