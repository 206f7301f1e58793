"""Every text the SQL actions show a model: result tables, table lists, schemas, failures.

Result tables are compact: a header line of column names, then one line per row, cells joined
by ``" | "``; cells are shortened to :data:`CELL_CHARS` and their line breaks written ``\\n``. A
single-cell result is the bare value, so ``R1 = SQLQuery(SELECT COUNT(*) ...)`` gives
``R1 = 42`` for a later ``Calculator``. ``NULL`` is written ``NULL``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from lumos_graph.errors import LumosError
from lumos_graph.tools.sql._base import Column, Rows, Table

__all__ = [
    "CELL_CHARS",
    "NOTES_CHARS",
    "SINGLE_CELL_CHARS",
    "failure_text",
    "mentioned_names",
    "render_cell",
    "render_rows",
    "render_table",
    "render_table_list",
    "schema_entry",
    "schema_notes",
    "unknown_table_text",
]

CELL_CHARS = 100
"""A table cell longer than this is cut (with ``…``)."""
SINGLE_CELL_CHARS = 4000
"""A single-cell result longer than this is cut, with a note of how much is missing."""
NOTES_CHARS = 2000
"""The schema notes of the grounding prompt stop adding tables at about this length."""
_TABLE_LIST_NAMES = 60
_COLUMN_HINT_CHARS = 600
_SHOWN_CHARS = 80  # what a refusal names (a table, a PRAGMA and its value) is cut to this

# ---- templates: all model-facing sentences ----------------------------------------------------
_TEXT = {
    # refusals: one line, "refused: " and the cause
    "read_only": (
        "refused: the SQL tool is read-only ({what} is not allowed); use --allow-writes to "
        "change the database"
    ),
    "attach": (
        "refused: the SQL tool uses only its one database ({what} is not allowed, with or "
        "without --allow-writes)"
    ),
    "function": "refused: the function {name} is not allowed ({why})",
    "process": (
        "refused: {what} is not allowed (it changes SQLite for the whole process, with or "
        "without --allow-writes)"
    ),
    "several": (
        "refused: only one SQL statement per SQLQuery (the query holds several statements "
        "separated by ';')"
    ),
    "refused": "refused: the SQL tool does not allow this statement",
    "unnamed_write": "this statement",
    "unnamed_attach": "ATTACH",
    "timeout": (
        "the query ran longer than {seconds:g} seconds and was stopped; simplify it or add a LIMIT"
    ),
    "no_table": "no such table: {detail}. Tables: {tables}",
    "no_column": "{detail}. Columns: {columns}",
    "empty": "the query is empty",
    "other": "{detail}",
    "no_table_described": "no such table: {name}. Tables: {tables}",
    "no_tables": "the database has no tables",
    "more_rows": "({count} more {rows} not shown)",
    "at_least_more_rows": "(at least {count} more {rows} not shown)",
    "no_rows": "(no rows)",
    "changed": "done: {count} {rows} changed",
    "done": "done",
    "cut": "… ({count} more characters)",
    "notes": "Database schema: {entries}",
    "notes_more": "; ... and {count} more tables (ListTables lists them all)",
    "view": "{name} (view)",
}
# why a function is refused; any other function outside the allow-list gets "other"
_FUNCTION_WHY = {
    "fts3_tokenizer": "it exposes native pointers",
    "fts5": "it exposes native pointers",
    "load_extension": "it loads native code",
    "optimize": "it rewrites a full-text index",
    "sqlite_log": "it writes to SQLite's error log",
    "readfile": "it reads files",
    "writefile": "it writes files",
    "edit": "it starts an editor",
    "other": (
        "the SQL tool allows SQLite's core, aggregate, window, date, JSON, math and full-text "
        "functions"
    ),
}


def _fill(key: str, **values: Any) -> str:
    try:
        return _TEXT[key].format(**values)
    except KeyError as exc:  # a missing variable is a bug in our code: fail loudly
        raise LumosError(f"SQL message template {key!r} needs {exc.args[0]!r}") from None


def _one_line(text: str) -> str:
    """Names and values from a query, as one short printable line inside a refusal."""
    flat = "".join(ch if ch.isprintable() else " " for ch in " ".join(text.split()))
    return flat if len(flat) <= _SHOWN_CHARS else flat[: _SHOWN_CHARS - 1] + "…"


def _rows(count: int) -> str:
    return "row" if count == 1 else "rows"


# ---- results ----------------------------------------------------------------------------------
def render_cell(value: object) -> str:
    """The exact text of one value (``NULL``, ``42``, ``0.5``, ``<blob of 3 bytes>``)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<blob of {len(bytes(value))} bytes>"
    return str(value)


def _table_cell(value: object) -> str:
    text = render_cell(value).replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def render_rows(rows: Rows) -> str:
    """The text of a query result; see the module docstring."""
    if not rows.columns:
        if rows.changed is None or rows.changed < 0:
            return _fill("done")
        return _fill("changed", count=rows.changed, rows=_rows(rows.changed))
    if len(rows.columns) == 1 and len(rows.rows) == 1 and rows.more == 0:
        text = render_cell(rows.rows[0][0])
        if len(text) > SINGLE_CELL_CHARS:
            text = text[:SINGLE_CELL_CHARS] + _fill("cut", count=len(text) - SINGLE_CELL_CHARS)
        return text
    lines = [" | ".join(rows.columns)]
    lines += [" | ".join(_table_cell(v) for v in row) for row in rows.rows]
    if not rows.rows:
        lines.append(_fill("no_rows"))
    if rows.more:
        note = "more_rows" if rows.more_is_exact else "at_least_more_rows"
        lines.append(_fill(note, count=rows.more, rows=_rows(rows.more)))
    return "\n".join(lines)


# ---- schema -----------------------------------------------------------------------------------
def render_table_list(names: Sequence[tuple[str, bool]]) -> str:
    """``artists, albums, top_tracks (view)`` or a note that there are no tables."""
    if not names:
        return _fill("no_tables")
    return ", ".join(_fill("view", name=name) if view else name for name, view in names)


def _short_list(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_TABLE_LIST_NAMES])
    extra = len(names) - _TABLE_LIST_NAMES
    return shown + (f", ... ({extra} more)" if extra > 0 else "") if names else "(none)"


def render_table(table: Table) -> str:
    """One line: ``album: id INTEGER PRIMARY KEY, title TEXT NOT NULL, artist_id INTEGER
    REFERENCES artist(id)``."""
    parts = [render_column(col) for col in table.columns]
    name = _fill("view", name=table.name) if table.view else table.name
    return f"{name}: {', '.join(parts)}"


def schema_entry(table: Table) -> str:
    """``albums(AlbumId, Title, ArtistId -> artists.ArtistId)``: one table of the notes."""
    cols = [c.name + (f" -> {c.references}" if c.references else "") for c in table.columns]
    return f"{table.name}({', '.join(cols)})"


def schema_notes(entries: Iterable[str], total: int) -> str:
    """The notes text of the action set: as many entries as fit in about :data:`NOTES_CHARS`.

    Args:
        entries: :func:`schema_entry` texts, in table order (possibly fewer than ``total``).
        total: how many tables the database has.
    """
    if not total:
        return _fill("notes", entries=_fill("no_tables"))
    shown: list[str] = []
    length = len(_fill("notes", entries=""))
    for entry in entries:
        if shown and length + len(entry) + 2 > NOTES_CHARS:
            break
        shown.append(entry)
        length += len(entry) + 2
    text = _fill("notes", entries="; ".join(shown))
    if len(shown) < total:
        text += _fill("notes_more", count=total - len(shown))
    return text


# ---- failures ---------------------------------------------------------------------------------
def mentioned_names(query: str, names: Sequence[str]) -> list[str]:
    """The table names that appear as words in ``query`` (for the unknown-column hint)."""
    return [n for n in names if re.search(rf"(?<!\w){re.escape(n)}(?!\w)", query, re.IGNORECASE)]


def failure_text(
    kind: str,
    detail: str,
    *,
    seconds: float,
    table_names: Sequence[str] = (),
    mentioned_tables: Sequence[Table] = (),
) -> str:
    """One line for the model about a failed query.

    Args:
        kind: a :data:`~lumos_graph.tools.sql._base.FailureKind`.
        detail: the database's message (for ``no_table``: the table name; for a refusal:
            what was refused, see :class:`~lumos_graph.tools.sql._base.QueryFailure`).
        seconds: the time limit, for the timeout message.
        table_names: all table names, listed after an unknown table.
        mentioned_tables: the tables a query names, whose columns follow an unknown column.
    """
    if kind == "no_table":
        return _fill(kind, detail=detail, tables=_short_list(table_names))
    if kind == "no_column":
        columns = "; ".join(schema_entry(t) for t in mentioned_tables)
        if not columns:
            return detail
        if len(columns) > _COLUMN_HINT_CHARS:
            columns = columns[: _COLUMN_HINT_CHARS - 1] + "…"
        return _fill(kind, detail=detail, columns=columns)
    if kind == "timeout":
        return _fill(kind, seconds=seconds)
    if kind == "read_only":
        return _fill(kind, what=_one_line(detail) or _fill("unnamed_write"))
    if kind == "attach":
        return _fill(kind, what=_one_line(detail) or _fill("unnamed_attach"))
    if kind == "process":
        return _fill(kind, what=_one_line(detail))
    if kind == "function":
        why = _FUNCTION_WHY.get(detail.lower(), _FUNCTION_WHY["other"])
        return _fill(kind, name=_one_line(detail), why=why)
    if kind in ("several", "refused", "empty"):
        return _fill(kind)
    return detail


def unknown_table_text(name: str, table_names: Sequence[str]) -> str:
    """The DescribeTable observation for a table that does not exist."""
    return _fill("no_table_described", name=name, tables=_short_list(table_names))


def render_column(col: Column) -> str:
    """``artist_id INTEGER NOT NULL REFERENCES artist(id)``: a column as SQL declares it."""
    words = [col.name]
    if col.type:
        words.append(col.type)
    if col.primary_key:
        words.append("PRIMARY KEY")
    if col.not_null and not col.primary_key:
        words.append("NOT NULL")
    if col.references:
        target, _, column = col.references.rpartition(".")
        words.append(f"REFERENCES {target}({column})" if target else f"REFERENCES {column}")
    return " ".join(words)
