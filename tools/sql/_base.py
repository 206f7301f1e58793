"""What the SQL actions share across database backends: schema records, results, failures.

A backend (:mod:`._sqlite` for SQLite files, :mod:`._alchemy` for SQLAlchemy URLs) implements
:class:`Database`. It runs one statement per call on a fresh connection, fetches at most
``max_rows + 1`` rows and counts the rest, and reports what went wrong as a
:class:`QueryFailure` of a known kind; :mod:`lumos_graph.tools.sql.actions` turns that into the
text the model reads (see :mod:`._text`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = [
    "COUNT_LIMIT",
    "REFUSALS",
    "Column",
    "Database",
    "FailureKind",
    "QueryFailure",
    "Rows",
    "Table",
    "clean_identifier",
    "collect_rows",
    "find_table",
]

COUNT_LIMIT = 100_000
"""Rows past the shown ones that are counted for the "(N more rows not shown)" note."""

FailureKind = Literal[
    "read_only",  # refused: a change to the database without allow_writes
    "attach",  # refused: ATTACH, DETACH or VACUUM INTO (in both modes)
    "function",  # refused: a function outside the allow-list (in both modes)
    "process",  # refused: a PRAGMA that sets a value for the whole process (in both modes)
    "several",  # refused: more than one statement, none of them refused for another reason
    "refused",  # refused by SQLite's authorizer, cause unknown (a safety net)
    "timeout",
    "no_table",
    "no_column",
    "empty",
    "other",
]
REFUSALS: frozenset[FailureKind] = frozenset(
    {"read_only", "attach", "function", "process", "several", "refused"}
)
"""The failure kinds that are refusals: the tool would not run the statement."""


@dataclass(frozen=True)
class Column:
    """One column of a table.

    Attributes:
        name: the column name as the database spells it.
        type: the declared type (``INTEGER``, ``NVARCHAR(160)``), possibly empty in SQLite.
        primary_key: the column is (part of) the primary key.
        not_null: the column is declared ``NOT NULL``.
        references: ``"table.column"`` the column refers to by a foreign key, or ``""``.
    """

    name: str
    type: str = ""
    primary_key: bool = False
    not_null: bool = False
    references: str = ""


@dataclass(frozen=True)
class Table:
    """A table or view and its columns."""

    name: str
    columns: tuple[Column, ...]
    view: bool = False


@dataclass(frozen=True)
class Rows:
    """What one statement returned.

    Attributes:
        columns: column names; empty for a statement without a result set (an ``INSERT``).
        rows: at most ``max_rows`` rows.
        more: how many further rows were counted but not kept.
        more_is_exact: ``False`` when counting stopped early (at :data:`COUNT_LIMIT`, at the
            deadline, or on an error), so there are *at least* ``more`` further rows.
        changed: rows changed by a statement without a result set, when the driver knows.
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...] = ()
    more: int = 0
    more_is_exact: bool = True
    changed: int | None = None


class QueryFailure(Exception):
    """A statement failed; ``kind`` says how, ``detail`` is the database's own first line.

    For ``no_table`` the detail is the unknown table's name; for a refusal it names what was
    refused (``DROP TABLE artist``, a function name), or is ``""`` when that is unknown.
    """

    def __init__(self, kind: FailureKind, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class Database(Protocol):
    """A database the SQL actions can query; every call opens and closes its own connection."""

    def run(self, query: str, *, max_rows: int) -> Rows:
        """Run one statement; raises :class:`QueryFailure`."""
        ...

    def table_names(self) -> list[tuple[str, bool]]:
        """``(name, is_view)`` of every table and view, in the database's order."""
        ...

    def describe(self, name: str) -> Table:
        """The table or view called exactly ``name`` (see :func:`find_table`)."""
        ...


def collect_rows(
    columns: Sequence[str],
    fetchmany: Callable[[int], Sequence[Sequence[Any]]],
    max_rows: int,
    deadline: float,
) -> Rows:
    """Fetch ``max_rows + 1`` rows, keep ``max_rows``, and count the rest (bounded).

    The first fetch lets its errors through (a timeout there is a failed query). Counting the
    rest is best effort: it stops at :data:`COUNT_LIMIT` rows, at ``deadline``
    (``time.monotonic()``) or on any error, and then reports a lower bound.
    """
    first = [tuple(r) for r in fetchmany(max_rows + 1)]
    kept = tuple(first[:max_rows])
    if len(first) <= max_rows:
        return Rows(tuple(columns), kept)
    more, exact = 1, True
    try:
        while True:
            if more >= COUNT_LIMIT or time.monotonic() > deadline:
                exact = False
                break
            chunk = fetchmany(min(1000, COUNT_LIMIT - more))
            if not chunk:
                break
            more += len(chunk)
    except Exception:  # noqa: BLE001 - the shown rows stand; the count becomes a lower bound
        exact = False
    return Rows(tuple(columns), kept, more=more, more_is_exact=exact)


_QUOTES = {'"': '"', "`": "`", "'": "'", "[": "]"}


def clean_identifier(text: str) -> str:
    """A table name as a model may write it: ``"albums"``, ```albums```, ``[albums]``,
    ``main.albums`` or ``albums;`` all become ``albums``."""
    name = text.strip().rstrip(";").strip()
    if len(name) >= 2 and _QUOTES.get(name[0]) == name[-1]:
        name = name[1:-1].strip()
    for prefix in ("main.", "public.", "dbo."):
        if name.lower().startswith(prefix):
            name = name[len(prefix) :]
    return name


def find_table(text: str, names: Sequence[str]) -> str | None:
    """The name in ``names`` that ``text`` means: exact first, then ignoring case."""
    wanted = clean_identifier(text)
    if wanted in names:
        return wanted
    folded = [n for n in names if n.casefold() == wanted.casefold()]
    return folded[0] if folded else None
