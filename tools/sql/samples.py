"""The schema of a database with a few rows of each table: the text-to-SQL prompt's database.

``schema_with_samples(db)`` renders every table as the ``CREATE TABLE`` line a coder model
knows, followed by its first rows (the "CreateTable + SelectRow" prompt of Rajkumar et al.
2022, the format most text-to-SQL baselines use)::

    CREATE TABLE album (AlbumId INTEGER PRIMARY KEY, Title TEXT NOT NULL, ArtistId INTEGER
    REFERENCES artist(ArtistId))
    /* 3 rows of album:
    AlbumId | Title | ArtistId
    1 | For Those About To Rock We Salute You | 1
    ...
    */

The database is opened read-only, as the SQL actions open it. The text stops growing at about
``max_chars``: later tables keep their ``CREATE TABLE`` line without rows, and tables past
the budget are counted in a last line, so a prompt never outgrows a small model's context.
"""

from __future__ import annotations

import os

from lumos_graph.errors import ConfigError
from lumos_graph.tools.sql._base import Database, QueryFailure, Table
from lumos_graph.tools.sql._open import open_database
from lumos_graph.tools.sql._text import render_cell, render_column

__all__ = ["render_schema", "schema_with_samples"]

SAMPLE_CELL_CHARS = 40
"""A sample cell longer than this is cut (with ``…``): the rows show what values look like."""

_TEXT = {
    "create": "CREATE TABLE {name} ({columns})",
    "view": "CREATE VIEW {name} ({columns})",
    "rows": "/* {count} rows of {name}:\n{rows}\n*/",
    "one_row": "/* 1 row of {name}:\n{rows}\n*/",
    "empty": "/* {name} has no rows */",
    "more": "/* ... and {count} more tables: {names} */",
    "no_tables": "/* the database has no tables */",
}


def schema_with_samples(
    db: str | os.PathLike[str], *, rows: int = 3, max_chars: int = 6000, timeout: float = 10.0
) -> str:
    """Every table's ``CREATE TABLE`` line and its first ``rows`` rows.

    Args:
        db: an SQLite file path or an SQLAlchemy URL (as :func:`~.actions.sql_actions`).
        rows: sample rows per table (0 for the columns only).
        max_chars: about how long the text may grow; see the module docstring.
        timeout: seconds each read may take.

    Raises:
        ConfigError: a missing or unreadable database, before any model runs.
    """
    return render_schema(open_database(db, allow_writes=False, timeout=timeout), rows=rows,
                         max_chars=max_chars)


def render_schema(database: Database, *, rows: int = 3, max_chars: int = 6000) -> str:
    """:func:`schema_with_samples` of a database already open (the SQL actions' own).

    Raises:
        ConfigError: the table list cannot be read.
    """
    try:
        names = database.table_names()
    except QueryFailure as failure:
        raise ConfigError(f"cannot read the database schema: {failure.detail}") from None
    if not names:
        return _TEXT["no_tables"]
    parts: list[str] = []
    length = 0
    for k, (name, _view) in enumerate(names):
        try:
            table = database.describe(name)
        except QueryFailure:
            continue  # e.g. a view over a table that no longer exists
        head = _create(table)
        if parts and length + len(head) > max_chars:
            rest = [n for n, _ in names[k:]]
            parts.append(_TEXT["more"].format(count=len(rest), names=", ".join(rest)))
            break
        sample = _sample(database, table, rows) if rows else ""
        block = f"{head}\n{sample}" if sample and length + len(head) + len(sample) <= max_chars \
            else head
        parts.append(block)
        length += len(block) + 1
    return "\n".join(parts)


def _create(table: Table) -> str:
    columns = ", ".join(render_column(c) for c in table.columns)
    return _TEXT["view" if table.view else "create"].format(name=table.name, columns=columns)


def _sample(database: Database, table: Table, rows: int) -> str:
    quoted = '"' + table.name.replace('"', '""') + '"'
    try:
        found = database.run(f"SELECT * FROM {quoted} LIMIT {int(rows)}", max_rows=rows)
    except QueryFailure:
        return ""  # the rows are a courtesy; the CREATE line still goes out
    if not found.rows:
        return _TEXT["empty"].format(name=table.name)
    lines = [" | ".join(found.columns)]
    lines += [" | ".join(_cell(v) for v in row) for row in found.rows]
    key = "one_row" if len(found.rows) == 1 else "rows"
    return _TEXT[key].format(count=len(found.rows), name=table.name, rows="\n".join(lines))


def _cell(value: object) -> str:
    text = " ".join(render_cell(value).split())  # one line per row
    return text if len(text) <= SAMPLE_CELL_CHARS else text[: SAMPLE_CELL_CHARS - 1] + "…"
