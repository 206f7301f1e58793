"""How an answer is scored against its gold, per kind of question, as the papers score them.

==========  ==================================================================================
kind        ``correct`` when ...
==========  ==================================================================================
``maths``   both state the same number (:func:`numeric_match`; ``$1,200.50``, ``3/4``, ``25%``)
``yesno``   both say the same yes or no (:func:`yes_no`: ``"Yes."``, ``"no, because ..."``)
``qa``      exact match after SQuAD's normalization (:func:`exact_match`); token F1 (:func:`f1`)
            reported beside it, as SQuAD and HotpotQA report both
``sql``     the agent's query returns the gold query's rows (:func:`execution_match`, Spider's
            execution accuracy)
``vqa``     exact match of the short answer (SQuAD normalization); a yes/no gold is matched by
            :func:`yes_no` so ``"Yes, there is."`` counts
==========  ==================================================================================

:func:`score` dispatches on ``item["kind"]`` and returns ``{"correct": bool, "reward": float}``
(``reward`` in 0..1 is ``1.0`` when correct, else ``0.0``: exact match, not F1, is the reward of
``qa``), plus ``"em"`` and ``"f1"`` for ``qa`` and ``vqa``. A missing answer (``None``) is never
correct.

**SQL.** The agent's answer to a SQL question is the result of its last ``SQLQuery``: when the
run's actions are given, the last ``SQLQuery`` that ran without an error is run again, read-only,
on the item's ``db`` and its rows are compared with the gold query's. Rows compare as multisets
(duplicates count), in order only when the gold query has ``ORDER BY``, and columns may come in
another order (the rule of Spider's test-suite evaluation, Zhong et al. 2020; InterCode's reward
is 1 exactly then). Without a ``SQLQuery`` the answer text is run when it is a query itself, and
otherwise compared with the gold result when that is a single cell (``"42"``, ``"Smith"``).
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import string
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import closing
from fractions import Fraction
from pathlib import Path
from typing import Any

from lumos_graph.errors import ConfigError

__all__ = [
    "KINDS",
    "exact_match",
    "execution_match",
    "f1",
    "majority_class",
    "normalize_answer",
    "numeric_match",
    "query_rows",
    "rows_match",
    "score",
    "to_number",
    "wilson_interval",
    "yes_no",
]

KINDS = ("maths", "yesno", "qa", "sql", "vqa")

# ---- numbers ------------------------------------------------------------------------------------
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)(?:/\d+)?")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_LATEX_FRAC = re.compile(r"\\d?frac\{\s*(-?\d+)\s*\}\{\s*(\d+)\s*\}")


def to_number(text: str | None) -> Fraction | None:
    """The first number a short answer states (``$1,200.50`` -> 2401/2, ``3/4``, ``-.5``,
    ``\\frac{1}{3}``), or ``None``."""
    if text is None:
        return None
    cleaned = _THOUSANDS.sub("", str(text)).replace("\u2212", "-")  # U+2212 minus sign
    cleaned = _LATEX_FRAC.sub(r"\1/\2", cleaned)
    match = _NUMBER.search(cleaned)
    if not match:
        return None
    try:
        return Fraction(match.group(0))
    except (ValueError, ZeroDivisionError):
        return None


def numeric_match(prediction: str | None, gold: str) -> bool:
    """True when both state the same number (up to 1e-6 relative)."""
    p, g = to_number(prediction), to_number(gold)
    if p is None or g is None:
        return False
    return abs(p - g) <= Fraction(1, 10**6) * max(Fraction(1), abs(g))


# ---- yes / no -----------------------------------------------------------------------------------
_YES = frozenset({"yes", "true", "correct", "yeah", "yep"})
_NO = frozenset({"no", "false", "incorrect", "nope"})
_WORD = re.compile(r"[a-z]+")


def yes_no(prediction: str | None) -> bool | None:
    """``True`` for a yes (``"Yes."``, ``"yes, because ..."``, ``"True"``), ``False`` for a no,
    ``None`` when the text says neither or both.

    The first word decides; otherwise a text that holds yes-words only or no-words only
    (``"The answer is no."``) counts as that answer.
    """
    if prediction is None:
        return None
    words = _WORD.findall(str(prediction).lower())
    if not words:
        return None
    if words[0] in _YES:
        return True
    if words[0] in _NO:
        return False
    said_yes = any(w in _YES for w in words)
    said_no = any(w in _NO for w in words)
    return said_yes if said_yes != said_no else None


# ---- short answers (SQuAD) ----------------------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalization: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", str(text).lower().translate(_PUNCTUATION)).split())


def _golds(gold: str | Sequence[str]) -> list[str]:
    return [gold] if isinstance(gold, str) else [str(g) for g in gold] or [""]


def exact_match(prediction: str | None, gold: str | Sequence[str]) -> bool:
    """SQuAD exact match: the normalized texts are equal (to any gold of a list)."""
    if prediction is None:
        return False
    return any(normalize_answer(prediction) == normalize_answer(g) for g in _golds(gold))


def f1(prediction: str | None, gold: str | Sequence[str]) -> float:
    """SQuAD token F1 of the normalized texts (the best over a list of golds).

    As in HotpotQA's scorer, a ``yes``/``no``/``noanswer`` on either side scores 0 unless both
    sides say the same.
    """
    if prediction is None:
        return 0.0
    return max(_f1(normalize_answer(prediction), normalize_answer(g)) for g in _golds(gold))


def _f1(prediction: str, gold: str) -> float:
    special = {"yes", "no", "noanswer"}
    if (prediction in special or gold in special) and prediction != gold:
        return 0.0
    p, g = prediction.split(), gold.split()
    if not p or not g:
        return float(p == g)
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


# ---- SQL execution ------------------------------------------------------------------------------
Rows = list[tuple[Any, ...]]
_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)
_QUERY_START = re.compile(r"\s*\(*\s*(select|with)\b", re.IGNORECASE)


def query_rows(db: str | os.PathLike[str], query: str, *, timeout: float = 30.0) -> Rows:
    """All rows of ``query`` on the SQLite file ``db``, opened read-only.

    Raises:
        ConfigError: ``db`` is not an existing file.
        sqlite3.Error: the query fails, writes, or runs longer than ``timeout`` seconds.
    """
    from lumos_graph.tools.sql._sqlite import Guard, open_sqlite

    path = Path(db).expanduser()
    if not path.is_file():
        raise ConfigError(f"no SQLite database file at {str(path)!r}")
    conn = open_sqlite(path, allow_writes=False, busy_timeout=timeout)
    with closing(conn):
        Guard(allow_writes=False, deadline=time.monotonic() + timeout).install(conn)
        return [tuple(row) for row in conn.execute(query).fetchall()]


def rows_match(predicted: Sequence[Sequence[Any]], gold: Sequence[Sequence[Any]], *,
               ordered: bool) -> bool:
    """Spider's test-suite rule: the same rows as multisets (as lists when ``ordered``), for
    some order of the predicted columns."""
    pred, want = [tuple(r) for r in predicted], [tuple(r) for r in gold]
    if not pred and not want:
        return True
    if len(pred) != len(want) or len(pred[0]) != len(want[0]):
        return False
    width = len(want[0])
    column = [Counter(r[i] for r in pred) for i in range(width)]
    # a gold column can only be a predicted column holding the same multiset of values
    choices = [[i for i in range(width) if column[i] == Counter(r[j] for r in want)]
               for j in range(width)]
    target: Any = want if ordered else Counter(want)

    def search(j: int, used: tuple[int, ...]) -> bool:
        if j == width:
            perm = [tuple(r[i] for i in used) for r in pred]
            return bool((perm if ordered else Counter(perm)) == target)
        return any(search(j + 1, (*used, i)) for i in choices[j] if i not in used)

    return search(0, ())


def execution_match(prediction: str | Sequence[Sequence[Any]] | None, gold_sql: str,
                    db: str | os.PathLike[str]) -> bool:
    """True when the predicted query (or its rows) gives the gold query's result on ``db``.

    Rows are compared by :func:`rows_match`, in order only when ``gold_sql`` has ``ORDER BY``.
    A predicted query that fails or writes is simply wrong.

    Raises:
        ConfigError: the gold query itself fails on ``db`` (a broken dataset).
    """
    gold = _gold_rows(gold_sql, db)
    if prediction is None:
        return False
    if isinstance(prediction, str):
        try:
            rows = query_rows(db, prediction)
        except (sqlite3.Error, sqlite3.Warning):
            return False
    else:
        rows = [tuple(r) for r in prediction]
    return rows_match(rows, gold, ordered=bool(_ORDER_BY.search(gold_sql)))


def _gold_rows(gold_sql: str, db: str | os.PathLike[str]) -> Rows:
    try:
        return query_rows(db, gold_sql)
    except (sqlite3.Error, sqlite3.Warning) as exc:
        raise ConfigError(f"the gold query fails on {db}: {exc}") from None


def _last_query(actions: Sequence[Mapping[str, Any]] | None) -> str | None:
    """The query of the last ``SQLQuery`` that ran without an error (a failed query has no
    result an answer could state). It is run again rather than its recorded ``result`` read:
    that text shows at most a few dozen rows."""
    from lumos_graph.tools.sql._lex import unwrap_query

    for action in reversed(actions or []):
        args = action.get("resolved_args") or []
        if action.get("tool") == "SQLQuery" and not action.get("error") and args:
            return str(unwrap_query(str(args[0])))
    return None


def _sql_correct(item: Mapping[str, Any], prediction: str | None,
                 actions: Sequence[Mapping[str, Any]] | None) -> bool:
    db, gold_sql = item.get("db"), str(item["answer"])
    if not db:
        raise ConfigError(f"example {item.get('id')!r} of kind 'sql' has no 'db'")
    query = _last_query(actions)
    if query is None and prediction is not None and _QUERY_START.match(prediction):
        query = prediction
    if query is not None:
        return execution_match(query, gold_sql, db)
    gold = _gold_rows(gold_sql, db)
    if prediction is None or len(gold) != 1 or len(gold[0]) != 1:
        return False
    cell = gold[0][0]
    if isinstance(cell, int | float):
        return numeric_match(prediction, str(cell))
    return exact_match(prediction, "" if cell is None else str(cell))


# ---- reporting ----------------------------------------------------------------------------------
def wilson_interval(correct: int, n: int, *, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of ``correct`` out of ``n`` (95% with the default ``z``).

    Unlike the normal approximation it stays inside 0..1 and is not zero-wide at 0/n or n/n,
    which matters for the small samples an eval on a laptop runs. ``(0.0, 1.0)`` when ``n`` is 0.
    """
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


def majority_class(items: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """What always giving the commoner gold answer scores on the ``yesno`` items.

    Returns:
        ``{"answer": "yes" | "no", "correct": int, "n": int, "accuracy": float}`` over the
        items of kind ``yesno`` whose gold says yes or no, or ``None`` when there are none.
        A tie answers ``"no"`` (either scores the same).
    """
    said = [yes_no(str(item["answer"])) for item in items if item.get("kind") == "yesno"]
    labels = [s for s in said if s is not None]
    if not labels:
        return None
    yes = sum(labels)
    answer, correct = ("yes", yes) if yes > len(labels) - yes else ("no", len(labels) - yes)
    return {"answer": answer, "correct": correct, "n": len(labels),
            "accuracy": correct / len(labels)}


# ---- the dispatcher -----------------------------------------------------------------------------
def score(item: Mapping[str, Any], prediction: str | None, *,
          actions: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Score one answer by ``item["kind"]`` (``maths`` when missing).

    Args:
        item: a dataset item (``answer``, ``kind``, and ``db`` for ``sql``).
        prediction: the agent's final answer text, or ``None``.
        actions: the run's action records (``tool``, ``resolved_args``, ``result``,
            ``error``), used by ``sql``.

    Returns:
        ``{"correct": bool, "reward": 0.0 | 1.0}``, plus ``"em"`` and ``"f1"`` for ``qa`` and
        ``vqa``.

    Raises:
        ConfigError: an unknown kind, a ``sql`` item without ``db`` or with a failing gold.
    """
    kind = item.get("kind", "maths")
    gold = item["answer"]
    extra: dict[str, Any] = {}
    if kind == "maths":
        correct = numeric_match(prediction, str(gold))
    elif kind == "yesno":
        said = yes_no(prediction)
        correct = said is not None and said == yes_no(str(gold))
    elif kind in ("qa", "vqa"):
        golds = _golds(gold if isinstance(gold, list) else str(gold))
        extra = {"em": float(exact_match(prediction, golds)), "f1": f1(prediction, golds)}
        correct = bool(extra["em"])
        if kind == "vqa" and not correct and {normalize_answer(g) for g in golds} <= {"yes", "no"}:
            said = yes_no(prediction)
            correct = said is not None and said in {yes_no(g) for g in golds}
    elif kind == "sql":
        correct = _sql_correct(item, prediction, actions)
    else:
        raise ConfigError(f"example {item.get('id')!r}: unknown kind {kind!r}; "
                          f"choose from {', '.join(KINDS)}")
    return {"correct": correct, "reward": float(correct), **extra}
