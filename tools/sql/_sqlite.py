"""SQLite through the standard library: read-only enforced by SQLite itself, time-limited.

Each call opens its own connection (cheap for SQLite, and safe from any thread) and closes it.

Read-only, two independent layers, both inside SQLite:

1. The file is opened with the URI ``file:...?mode=ro``: the pager refuses every write
   (``attempt to write a readonly database``), whatever the statement.
2. An authorizer (:class:`~lumos_graph.tools.sql._guard.Guard`) allows only reading, and only
   SQLite's own SQL functions minus those that reach native state (``fts3_tokenizer``,
   ``load_extension``). It denies the rest when the statement is compiled, before it runs.

With ``allow_writes`` the file is opened ``mode=rw`` (an existing file, never created) in
autocommit mode; the authorizer still refuses ``ATTACH``/``DETACH``, PRAGMAs that set a value
for the whole process, and the functions outside its allow-list.

A refusal names its cause. When the first denied action does not say what the statement is
(``CREATE TABLE`` first asks to insert into ``sqlite_master``), or the query holds several
statements (Python compiles only the first), the statements are compiled again under
``EXPLAIN``, which never runs them, until one is refused: ``SELECT 1; DROP TABLE t`` is refused
as ``DROP TABLE t``, not as two statements.

A progress handler aborts a statement when its deadline passes; ``max_rows + 1`` rows are fetched
and the rest only counted.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lumos_graph.errors import ConfigError
from lumos_graph.tools.sql._base import Column, QueryFailure, Rows, Table, collect_rows
from lumos_graph.tools.sql._guard import Guard, function_allowed

__all__ = [
    "Guard",
    "SQLiteDatabase",
    "classify_sqlite_error",
    "explain_refusal",
    "open_sqlite",
    "split_statements",
]

_UNSAFE_USE = re.compile(r"unsafe use of (.+)\(\)$")
_NO_SUCH_FUNCTION = re.compile(r"no such function: (.+)$")
_AUTHORIZER_TEXTS = ("not authorized", "authorization denied")
# a statement that is already an EXPLAIN is compiled without it (EXPLAIN EXPLAIN is no SQL)
_EXPLAIN = re.compile(r"\s*explain(\s+query\s+plan)?\s", re.IGNORECASE)
_SPLIT_CHECKS = 1000  # sqlite3.complete_statement calls at most, to split one query
_EXPLAINED = 50  # statements of one query compiled at most to find the refused one


def open_sqlite(path: Path, *, allow_writes: bool, busy_timeout: float) -> sqlite3.Connection:
    """Open an existing SQLite file read-only (``mode=ro``) or read-write (``mode=rw``).

    The connection is in autocommit mode and may be used from any thread (it is used by one
    call at a time). Text that is not UTF-8 is decoded with replacement characters.
    """
    mode = "rw" if allow_writes else "ro"
    uri = f"file:{quote(str(path.absolute()))}?mode={mode}"
    conn = sqlite3.connect(
        uri, uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    conn.text_factory = lambda data: data.decode("utf-8", "replace")
    return conn


def classify_sqlite_error(exc: Exception, guard: Guard) -> QueryFailure:
    """The :class:`QueryFailure` for an exception of ``sqlite3`` under ``guard``.

    SQLite's own words for a refusal (``not authorized``) never become the detail: a refusal's
    detail names what was refused.
    """
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if guard.refused is not None:
        return QueryFailure(guard.refused, guard.what)
    if guard.timed_out:
        return QueryFailure("timeout", text)
    unsafe = _UNSAFE_USE.match(text)
    if unsafe:
        # a function SQLite marks direct-only (fts3_tokenizer, load_extension) reached from a
        # view, trigger or DEFAULT, where SQLite refuses it before the authorizer is asked
        return QueryFailure("function", unsafe.group(1))
    missing = _NO_SUCH_FUNCTION.match(text)
    if missing and not function_allowed(missing.group(1)):
        # readfile(), writefile() and the like: refused whether or not this build has them
        return QueryFailure("function", missing.group(1))
    if "readonly database" in text and not guard.allow_writes:
        return QueryFailure("read_only", "")
    if "one statement at a time" in text:
        return QueryFailure("several", "")
    if text.startswith(_AUTHORIZER_TEXTS):
        return QueryFailure("refused", "")
    if text.startswith("no such table:"):
        return QueryFailure("no_table", text.partition(":")[2].strip())
    if text.startswith("no such column:"):
        return QueryFailure("no_column", text)
    return QueryFailure("other", text)


def split_statements(sql: str) -> list[str]:
    """The statements of ``sql`` as SQLite's tokenizer reads them, each with its ``;``.

    Text after the last complete statement (blanks, a comment, an unfinished statement) is the
    last item unless it is blank. Splitting stops after :data:`_SPLIT_CHECKS` semicolons (the
    rest is one item), so a long run of ``;`` inside a string cannot make it slow.
    """
    parts: list[str] = []
    start = checks = 0
    end = sql.find(";")
    while end >= 0 and checks < _SPLIT_CHECKS:
        checks += 1
        if sqlite3.complete_statement(sql[start : end + 1]):
            parts.append(sql[start : end + 1])
            start = end + 1
        end = sql.find(";", end + 1)
    if sql[start:].strip():
        parts.append(sql[start:])
    return parts


def _compile(conn: sqlite3.Connection, statement: str, guard: Guard) -> list[tuple[Any, ...]]:
    """Compile ``statement`` under ``guard`` without running it: the rows of ``EXPLAIN``, or
    ``[]`` when it does not compile."""
    guard.install(conn)
    try:
        return conn.execute("EXPLAIN " + _EXPLAIN.sub("", statement, count=1)).fetchall()
    except (sqlite3.Error, sqlite3.Warning):
        return []


def explain_refusal(
    conn: sqlite3.Connection, statement: str, *, allow_writes: bool, deadline: float
) -> QueryFailure | None:
    """Why the authorizer refuses ``statement``, found by compiling it (never running it).

    Returns:
        The refusal, with what was refused named, or ``None`` when ``statement`` would be
        allowed (or does not compile).
    """
    strict = Guard(allow_writes=allow_writes, deadline=deadline)
    rows = _compile(conn, statement, strict)
    if strict.refused is not None:
        if strict.what:
            return QueryFailure(strict.refused, strict.what)
        named = Guard(allow_writes=allow_writes, deadline=deadline, naming=True)
        _compile(conn, statement, named)
        return QueryFailure(named.refused or strict.refused, named.what)
    for row in rows:  # EXPLAIN: addr, opcode, p1, p2, ...
        # VACUUM reaches the authorizer only when it runs (it attaches a database then);
        # its opcode's p2 is the register of the INTO file name, 0 without INTO
        if row[1] == "Vacuum" and row[3]:
            return QueryFailure("attach", "VACUUM INTO")
        if row[1] == "Vacuum" and not allow_writes:
            return QueryFailure("read_only", "VACUUM")
    return None


class SQLiteDatabase:
    """An SQLite file, queried through the standard library's :mod:`sqlite3`.

    Args:
        path: an existing SQLite database file.
        allow_writes: open read-write instead of read-only.
        timeout: seconds one call may take.

    Raises:
        ConfigError: the file does not exist or is not an SQLite database.
    """

    def __init__(self, path: Path, *, allow_writes: bool, timeout: float) -> None:
        given = Path(path).expanduser()
        if not given.is_file():
            raise ConfigError(f"no SQLite database file at {str(given)!r}")
        self.path = given.resolve()  # later calls do not depend on the working directory
        self.allow_writes = allow_writes
        self.timeout = timeout
        try:
            self.table_names()
        except QueryFailure as failure:
            raise ConfigError(
                f"{str(given)!r} cannot be read as an SQLite database: {failure.detail}"
            ) from None

    def _open(self) -> tuple[sqlite3.Connection, Guard]:
        guard = Guard(allow_writes=self.allow_writes, deadline=time.monotonic() + self.timeout)
        try:
            conn = open_sqlite(self.path, allow_writes=self.allow_writes, busy_timeout=self.timeout)
        except sqlite3.Error as exc:
            raise classify_sqlite_error(exc, guard) from None
        guard.install(conn)
        return conn, guard

    def run(self, query: str, *, max_rows: int) -> Rows:
        """Run one statement; raises :class:`QueryFailure`."""
        conn, guard = self._open()
        with closing(conn):
            try:
                cursor = conn.execute(query)
                if cursor.description is None:
                    return Rows((), changed=cursor.rowcount)
                columns = [d[0] for d in cursor.description]
                return collect_rows(columns, cursor.fetchmany, max_rows, guard.deadline)
            except (sqlite3.Error, sqlite3.Warning) as exc:  # Warning: several statements, 3.10
                failure = classify_sqlite_error(exc, guard)
                if failure.kind == "several" or (
                    failure.kind == "read_only" and not failure.detail
                ):
                    failure = self._name_refusal(conn, query, failure, guard.deadline)
                raise failure from None

    def _name_refusal(
        self, conn: sqlite3.Connection, query: str, failure: QueryFailure, deadline: float
    ) -> QueryFailure:
        """``failure`` with what was refused named, from compiling the query's statements
        again (see the module docstring); ``failure`` itself when none is refused."""
        statements = split_statements(query) if failure.kind == "several" else [query]
        for statement in statements[:_EXPLAINED]:
            if time.monotonic() > deadline:
                break
            refusal = explain_refusal(
                conn, statement, allow_writes=self.allow_writes, deadline=deadline
            )
            if refusal is not None:
                return refusal
        return failure

    def table_names(self) -> list[tuple[str, bool]]:
        """``(name, is_view)`` of every table and view, in creation order."""
        conn, guard = self._open()
        with closing(conn):
            try:
                found = conn.execute(
                    "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
                    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid"
                ).fetchall()
            except sqlite3.Error as exc:
                raise classify_sqlite_error(exc, guard) from None
        return [(name, kind == "view") for name, kind in found]

    def describe(self, name: str) -> Table:
        """The table or view called exactly ``name``: columns, types, keys."""
        conn, guard = self._open()
        with closing(conn):
            try:
                kind = conn.execute(
                    "SELECT type FROM sqlite_master WHERE name = ?", (name,)
                ).fetchone()
                info = conn.execute(f"PRAGMA table_info({_quoted(name)})").fetchall()
                keys = conn.execute(f"PRAGMA foreign_key_list({_quoted(name)})").fetchall()
                refs: dict[str, str] = {}
                for _id, seq, parent, child, target, *_actions in keys:
                    if target is None:  # "REFERENCES parent": the parent's primary key
                        pk = _primary_key(conn.execute(f"PRAGMA table_info({_quoted(parent)})"))
                        target = pk[seq] if seq < len(pk) else "?"  # noqa: PLW2901
                    refs.setdefault(child, f"{parent}.{target}")
            except sqlite3.Error as exc:
                raise classify_sqlite_error(exc, guard) from None
        columns = tuple(
            Column(
                name=col_name,
                type=col_type or "",
                primary_key=bool(pk),
                not_null=bool(notnull),
                references=refs.get(col_name, ""),
            )
            for _cid, col_name, col_type, notnull, _default, pk in info
        )
        return Table(name, columns, view=bool(kind and kind[0] == "view"))


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _primary_key(table_info: Iterable[Sequence[Any]]) -> list[str]:
    """Primary key column names of ``PRAGMA table_info`` rows, in key order."""
    return [row[1] for row in sorted((r for r in table_info if r[5]), key=lambda r: r[5])]
