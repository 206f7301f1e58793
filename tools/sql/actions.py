"""SQL actions: query a database, list its tables, describe a table.

``sql_actions(db)`` returns three actions a grounding model writes as
``R1 = SQLQuery(SELECT COUNT(*) FROM albums)``, ``R2 = ListTables(db)`` and
``R3 = DescribeTable(albums)``, and puts a compact schema in the action set's ``notes`` for the
grounding prompt (``Database schema: artists(ArtistId, Name); albums(AlbumId, Title, ArtistId
-> artists.ArtistId); ...``).

``db`` is the path of an SQLite file (read with the standard library's :mod:`sqlite3`) or an
SQLAlchemy URL (``postgresql://user@host/db``, ``mysql+pymysql://...``, ``sqlite:///path``),
which needs the optional SQLAlchemy dependency: ``pip install "lumos-graph[sql]"``.

**Read-only by default, enforced by the database, never by looking at the query text:**

* SQLite (a file, or ``sqlite:///path``): the file is opened ``mode=ro``, and an authorizer
  allows only reads (``SELECT``, reading PRAGMAs such as ``table_info``) and only SQLite's own
  core, aggregate, window, date, JSON, math and full-text functions; every write,
  ``CREATE``/``DROP``/``ALTER``, ``ATTACH``/``DETACH`` (hence ``VACUUM INTO``), PRAGMAs that
  set a value and functions that reach native state (``fts3_tokenizer``, ``load_extension``)
  are refused when the statement is compiled (details in :mod:`._guard`).
* PostgreSQL: the statement runs in a ``READ ONLY`` transaction that is rolled back.
* MySQL / MariaDB: a ``READ ONLY`` transaction, rolled back.
* other SQLAlchemy dialects: only a transaction that is always rolled back; statements that
  commit by themselves (DDL on some databases) are not prevented. Connect as a read-only user.

``allow_writes=True`` opens SQLite ``mode=rw`` (an existing file only, never created) without
the write denials (``ATTACH`` of a file and the functions outside the allow-list stay refused)
and commits on other backends.

**Limits.** A call runs one statement (``SELECT 1; SELECT 2`` is refused); at most
``max_rows`` rows are shown, with a ``(N more rows not shown)`` note; a call is stopped after
``timeout`` seconds (SQLite: a progress handler; PostgreSQL: ``statement_timeout``; MySQL:
``max_execution_time``; elsewhere only between fetched rows). Every call opens its own
connection and closes it, so the actions may run in any thread.

**Results** (:class:`~lumos_graph.agent.actions.Value`): a single cell is the bare value
(``42``), so a later ``Calculator(R1 / 2)`` can use it; anything else is a compact table, a
header line and one line per row, cells joined by ``" | "``. Failures are one-line observations
(:class:`~lumos_graph.errors.ToolError`): ``near "SELEC": syntax error``, ``no such table:
songs. Tables: albums, artists``. A refusal starts with ``refused:`` and names its cause:
``refused: the SQL tool is read-only (DROP TABLE t is not allowed); use --allow-writes to change
the database``, ``refused: the function fts3_tokenizer is not allowed (it exposes native
pointers)``; on SQLite a write among several statements (``SELECT 1; DROP TABLE t``) is refused
as that write.
"""

from __future__ import annotations

import math
import os

from lumos_graph.agent.actions import Action, ActionSet, Value
from lumos_graph.errors import ConfigError, ToolError
from lumos_graph.tools.sql._base import Database, QueryFailure, Table, clean_identifier, find_table
from lumos_graph.tools.sql._lex import unwrap_query
from lumos_graph.tools.sql._open import open_database
from lumos_graph.tools.sql._text import (
    failure_text,
    mentioned_names,
    render_rows,
    render_table,
    render_table_list,
    schema_entry,
    schema_notes,
    unknown_table_text,
)
from lumos_graph.tools.sql.samples import render_schema

__all__ = ["sql_actions"]

_HINT_TABLES = 4  # at most this many tables' columns follow an unknown-column error


def sql_actions(
    db: str | os.PathLike[str],
    *,
    allow_writes: bool = False,
    max_rows: int = 50,
    timeout: float = 10.0,
) -> ActionSet:
    """SQLQuery, ListTables and DescribeTable on one database, with its schema as notes.

    Args:
        db: an SQLite file path, or an SQLAlchemy URL (anything containing ``://``).
        allow_writes: let queries change the database (read-only otherwise, enforced by the
            database; see the module docstring for what each backend enforces).
        max_rows: rows a query result shows at most; the rest are counted in a note.
        timeout: seconds one action may run before it is stopped.

    Raises:
        ConfigError: a bad argument, a missing or unreadable database, or a URL without
            SQLAlchemy (``pip install "lumos-graph[sql]"``), before any model runs.
    """
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ConfigError(f"max_rows must be a positive integer, got {max_rows!r}")
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not (timeout > 0 and math.isfinite(timeout))
    ):
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    database = open_database(db, allow_writes=allow_writes, timeout=float(timeout))
    tools = _SQLTools(database, max_rows=max_rows, timeout=float(timeout))

    def query(text: str) -> Value:
        return tools.query(text)

    query.schema = tools.schema  # type: ignore[attr-defined]  # the SQL grounder's prompt
    return ActionSet(
        [
            Action("SQLQuery", "Run an SQL query on the database", ("query",), query),
            Action("ListTables", "List the tables of the database", ("database",), tools.tables),
            Action("DescribeTable", "Show the columns of a table", ("table",), tools.describe),
        ],
        notes=tools.notes(),
    )


class _SQLTools:
    """The executors of the three actions, sharing one database."""

    def __init__(self, database: Database, *, max_rows: int, timeout: float) -> None:
        self.database = database
        self.max_rows = max_rows
        self.timeout = timeout

    def _names(self) -> list[str]:
        try:
            return [name for name, _ in self.database.table_names()]
        except QueryFailure as failure:
            raise ToolError(failure.detail) from None

    def query(self, text: str) -> Value:
        """SQLQuery(query): the result table, or the bare value of a single cell."""
        query = unwrap_query(text)
        if not query.strip().strip(";").strip():
            raise ToolError(failure_text("empty", "", seconds=self.timeout))
        try:
            rows = self.database.run(query, max_rows=self.max_rows)
        except QueryFailure as failure:
            raise ToolError(self._explain(failure, query)) from None
        return Value(render_rows(rows), empty=not rows.rows)

    def _explain(self, failure: QueryFailure, query: str) -> str:
        names: list[str] = []
        described: list[Table] = []
        if failure.kind in ("no_table", "no_column"):
            try:
                names = [name for name, _ in self.database.table_names()]
                if failure.kind == "no_column":
                    mentioned = mentioned_names(query, names)[:_HINT_TABLES]
                    described = [self.database.describe(n) for n in mentioned]
            except QueryFailure:
                pass  # the hint is a courtesy; the error itself still goes out
        return failure_text(
            failure.kind,
            failure.detail,
            seconds=self.timeout,
            table_names=names,
            mentioned_tables=described,
        )

    def schema(self) -> str:
        """Every table's ``CREATE TABLE`` line and first rows (the text-to-SQL prompt's
        database, :func:`~.samples.schema_with_samples`)."""
        return render_schema(self.database)

    def tables(self, _database: str = "") -> str:
        """ListTables(database): the table and view names (the argument is ignored)."""
        try:
            return render_table_list(self.database.table_names())
        except QueryFailure as failure:
            raise ToolError(failure.detail) from None

    def describe(self, text: str) -> str:
        """DescribeTable(table): one line of columns, types and keys."""
        names = self._names()
        name = find_table(text, names)
        if name is None:
            raise ToolError(unknown_table_text(clean_identifier(text), names))
        try:
            return render_table(self.database.describe(name))
        except QueryFailure as failure:
            raise ToolError(failure.detail) from None

    def notes(self) -> str:
        """The schema notes of the action set (tables described until the text is full)."""
        try:
            names = self.database.table_names()
        except QueryFailure as failure:
            raise ConfigError(f"cannot read the database schema: {failure.detail}") from None
        return schema_notes((self._entry(name) for name, _ in names), total=len(names))

    def _entry(self, name: str) -> str:
        try:
            return schema_entry(self.database.describe(name))
        except QueryFailure:
            return f"{name}(?)"  # e.g. a view over a table that no longer exists
