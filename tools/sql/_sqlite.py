"""SQLite through the standard library: read-only enforced by SQLite itself, time-limited.

Each call opens its own connection (cheap for SQLite, and safe from any thread) and closes it.

Read-only, two independent layers, both inside SQLite:

1. The file is opened with the URI ``file:...?mode=ro``: the pager refuses every write
   (``attempt to write a readonly database``), whatever the statement.
2. An authorizer (:meth:`Guard.authorize`) allows only reading: ``SELECT``, reading columns,
   functions, recursive CTEs, and PRAGMAs from a fixed list of read PRAGMAs (``table_info``,
   ``foreign_key_list``, ``user_version`` without a value, ...). Everything else is denied when
   the statement is prepared, before it runs: ``INSERT``/``UPDATE``/``DELETE``, every
   ``CREATE``/``DROP`` (temporary objects too), ``ALTER``, ``REINDEX``, ``ANALYZE``,
   transactions, ``ATTACH``/``DETACH`` (which also stops ``VACUUM INTO 'file'``, otherwise
   allowed on a read-only database) and PRAGMAs that set a value.

With ``allow_writes`` the file is opened ``mode=rw`` (an existing file, never created) in
autocommit mode, and the authorizer only denies ``ATTACH`` of a file (and ``DETACH``), so the
tools never reach another database.

A progress handler aborts a statement when its deadline passes; ``max_rows + 1`` rows are fetched
and the rest only counted.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lumos_graph.tools.sql._base import (
    Column,
    FailureKind,
    QueryFailure,
    Rows,
    Table,
    collect_rows,
)

from lumos_graph.errors import ConfigError

__all__ = ["Guard", "SQLiteDatabase", "classify_sqlite_error", "open_sqlite"]

# Authorizer action codes of the SQLite C API (stable; not all are exported by every Python).
_PRAGMA, _READ, _SELECT, _UPDATE, _ATTACH, _DETACH, _FUNCTION, _RECURSIVE = (
    19, 20, 21, 23, 24, 25, 31, 33,
)  # fmt: skip
_OK, _DENY = 0, 1
_READ_CODES = frozenset({_READ, _SELECT, _FUNCTION, _RECURSIVE})
# PRAGMAs that only read. Those in the first set take a table or index name as their argument;
# the others are allowed only without an argument (with one they set a value).
_NAME_PRAGMAS = frozenset(
    "table_info table_xinfo table_list index_list index_info index_xinfo foreign_key_list "
    "foreign_key_check integrity_check quick_check".split()
)
_VALUE_PRAGMAS = frozenset(
    "database_list collation_list function_list module_list pragma_list compile_options "
    "encoding user_version application_id schema_version data_version page_size page_count "
    "freelist_count foreign_keys journal_mode auto_vacuum case_sensitive_like".split()
)
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_temp_master", "sqlite_schema"})
_PROGRESS_STEPS = 1000  # virtual machine instructions between deadline checks


class Guard:
    """The authorizer and progress handler of one connection, remembering why it refused.

    Args:
        allow_writes: allow everything but ``ATTACH`` of a file and ``DETACH``.
        deadline: ``time.monotonic()`` after which running statements are aborted.
    """

    def __init__(self, *, allow_writes: bool, deadline: float) -> None:
        self.allow_writes = allow_writes
        self.deadline = deadline
        self.refused: FailureKind | None = None
        self.timed_out = False

    def install(self, conn: sqlite3.Connection) -> None:
        """Set this guard's authorizer and progress handler on ``conn``."""
        conn.set_authorizer(self.authorize)
        conn.set_progress_handler(self.progress, _PROGRESS_STEPS)

    def authorize(
        self, code: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None
    ) -> int:
        """SQLite's authorizer callback: ``SQLITE_OK`` or ``SQLITE_DENY`` for one action."""
        if code == _ATTACH and not arg1:
            # VACUUM attaches "" (a private temporary database): harmless when writes are on
            if self.allow_writes:
                return _OK
            self.refused = "read_only"
            return _DENY
        if code in (_ATTACH, _DETACH):  # ATTACH of a file, or VACUUM INTO a file
            self.refused = "attach"
            return _DENY
        if self.allow_writes or code in _READ_CODES:
            return _OK
        if code == _PRAGMA and arg1 is not None:
            name = arg1.lower()
            if name in _NAME_PRAGMAS or (name in _VALUE_PRAGMAS and arg2 is None):
                return _OK
        if code == _UPDATE and arg1 in _SCHEMA_TABLES:
            # SQLite reports this while preparing table-valued PRAGMA functions
            # (pragma_table_info(...)); real writes to the schema table are refused by SQLite
            # itself (they need PRAGMA writable_schema, a PRAGMA with a value, denied above)
            return _OK
        self.refused = "read_only"
        return _DENY

    def progress(self) -> int:
        """SQLite's progress callback: non-zero aborts the running statement."""
        if time.monotonic() > self.deadline:
            self.timed_out = True
            return 1
        return 0


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
    """The :class:`QueryFailure` for an exception of ``sqlite3`` under ``guard``."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if guard.refused is not None:
        return QueryFailure(guard.refused, text)
    if guard.timed_out:
        return QueryFailure("timeout", text)
    if "readonly database" in text and not guard.allow_writes:
        return QueryFailure("read_only", text)
    if "one statement at a time" in text:
        return QueryFailure("several", text)
    if text.startswith("no such table:"):
        return QueryFailure("no_table", text.partition(":")[2].strip())
    if text.startswith("no such column:"):
        return QueryFailure("no_column", text)
    return QueryFailure("other", text)


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
                raise classify_sqlite_error(exc, guard) from None

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
