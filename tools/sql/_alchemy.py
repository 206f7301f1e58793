"""Databases behind an SQLAlchemy URL (``postgresql://``, ``mysql+pymysql://``, ``sqlite:///``).

SQLAlchemy is an optional dependency (the ``sql`` extra), imported only here and only when a
URL is used. The engine has no pool (``NullPool``): every call opens its own connection and
closes it, so no session setting outlives a call and any thread may call.

What is enforced, per backend (see :func:`AlchemyDatabase.run`):

* ``sqlite:///path`` (the standard driver): queries run exactly as on a plain SQLite file
  (:class:`~lumos_graph.tools.sql._sqlite.SQLiteDatabase`: ``mode=ro``, the authorizer, the
  time limit, refusals that name their cause); SQLAlchemy only lists and describes tables;
* every other backend: one statement per call
  (:func:`~lumos_graph.tools.sql._lex.has_several_statements`, because some drivers run
  ``SELECT 1; DROP TABLE t`` as two), and the transaction is rolled back at the end of a
  read-only call;
* PostgreSQL: ``SET TRANSACTION READ ONLY`` (the server refuses every write, DDL included) and
  ``SET LOCAL statement_timeout``;
* MySQL / MariaDB: ``SET TRANSACTION READ ONLY`` before the statement (the server refuses
  changes to non-temporary tables) and a session statement time limit
  (``max_execution_time``, SELECT only, or MariaDB's ``max_statement_time``) where the server
  accepts it;
* any other dialect: only the rollback and a check of the deadline while rows are fetched;
  statements that commit by themselves (DDL on several databases) are NOT prevented there.

For a hard guarantee on a server database, connect as a user that may only read.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from lumos_graph.errors import ConfigError
from lumos_graph.tools.sql._base import Column, QueryFailure, Rows, Table, collect_rows
from lumos_graph.tools.sql._lex import has_several_statements
from lumos_graph.tools.sql._sqlite import SQLiteDatabase, open_sqlite

__all__ = ["AlchemyDatabase", "import_sqlalchemy"]

INSTALL_HINT = 'pip install "lumos-graph[sql]"'
_SERVER_CURSOR = re.compile(r"\s*\(*\s*(select|with)\b", re.I)
# (pattern, kind) over the first line of a server's error message; group 1 names the table
_SERVER_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.I), kind)
    for pattern, kind in (
        (r"read[- ]only transaction", "read_only"),
        (r"statement timeout|maximum statement execution time|max_statement_time", "timeout"),
        (r'relation "([^"]+)" does not exist', "no_table"),
        (r"table '(?:[^'.]+\.)?([^'.]+)' doesn't exist", "no_table"),
        (r"no such table: (\S+)", "no_table"),
        (r'column "[^"]+" (?:of relation "[^"]+" )?does not exist|unknown column', "no_column"),
    )
)


def import_sqlalchemy() -> ModuleType:
    """The ``sqlalchemy`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import sqlalchemy
    except ImportError:
        raise ConfigError(f"database URLs need SQLAlchemy: {INSTALL_HINT}") from None
    return sqlalchemy


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class AlchemyDatabase:
    """A database behind an SQLAlchemy URL.

    Args:
        url: an SQLAlchemy URL; its password never appears in messages.
        allow_writes: run statements in a normal transaction that is committed.
        timeout: seconds one call may take (see the module docstring for where it holds).

    Raises:
        ConfigError: SQLAlchemy or the URL's driver is missing, the URL is malformed, an
            SQLite file does not exist, or the database cannot be reached and read.
    """

    def __init__(self, url: str, *, allow_writes: bool, timeout: float) -> None:
        sa = import_sqlalchemy()
        from sqlalchemy.pool import NullPool

        self._sa = sa
        self.allow_writes = allow_writes
        self.timeout = timeout
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise ConfigError(f"not a database URL: {url!r} ({exc})") from None
        shown = parsed.render_as_string(hide_password=True)
        options: dict[str, Any] = {"poolclass": NullPool}
        self._file: SQLiteDatabase | None = None  # runs the queries of an SQLite URL
        if parsed.get_backend_name() == "sqlite":
            self._file = self._sqlite_file(parsed, shown)
            path, allow_writes, busy_timeout = self._file.path, self.allow_writes, self.timeout
            options["creator"] = lambda: open_sqlite(
                path, allow_writes=allow_writes, busy_timeout=busy_timeout
            )
        try:
            self.engine = sa.create_engine(parsed, **options)
        except (ImportError, sa.exc.NoSuchModuleError, sa.exc.ArgumentError) as exc:
            raise ConfigError(
                f"cannot use {shown}: {_first_line(exc)} (install the database driver the URL "
                "names, e.g. psycopg2-binary or pymysql)"
            ) from None
        try:
            self.table_names()
        except QueryFailure as failure:
            raise ConfigError(f"cannot read the database {shown}: {failure.detail}") from None

    def _sqlite_file(self, parsed: Any, shown: str) -> SQLiteDatabase:
        if parsed.get_driver_name() != "pysqlite":
            raise ConfigError(f"{shown}: SQLite URLs use the standard driver (sqlite:///path)")
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError(f"{shown}: give the path of an SQLite file (sqlite:///path)")
        given = Path(parsed.database).expanduser()
        if not given.is_file():
            raise ConfigError(f"no SQLite database file at {str(given)!r} ({shown})")
        return SQLiteDatabase(given, allow_writes=self.allow_writes, timeout=self.timeout)

    def _prepare(self, conn: Any) -> None:
        """Make the call's connection read-only and time-limited, as far as the backend can."""
        name = conn.dialect.name
        millis = max(1, int(self.timeout * 1000))
        if name == "postgresql":
            if not self.allow_writes:
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {millis}")
        elif name in ("mysql", "mariadb"):
            if not self.allow_writes:
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            if getattr(conn.dialect, "is_mariadb", False):
                limit = f"SET SESSION max_statement_time = {self.timeout:g}"
            else:
                limit = f"SET SESSION max_execution_time = {millis}"
            # an old server without the setting: the limit is best effort there
            with contextlib.suppress(self._sa.exc.DBAPIError):
                conn.exec_driver_sql(limit)

    def run(self, query: str, *, max_rows: int) -> Rows:
        """Run one statement; raises :class:`QueryFailure`."""
        if self._file is not None:
            return self._file.run(query, max_rows=max_rows)
        if has_several_statements(query):
            raise QueryFailure("several")
        query = query.rstrip().rstrip(";").rstrip()
        deadline = time.monotonic() + self.timeout
        options: dict[str, Any] = {"no_parameters": True}  # a '%' in the query stays a '%'
        if not self.allow_writes and _SERVER_CURSOR.match(query):
            options["stream_results"] = True  # a server-side cursor: rows past the cap stay there
        try:
            with self.engine.connect() as conn:
                self._prepare(conn)
                result = conn.exec_driver_sql(query, execution_options=options)
                if result.returns_rows:
                    rows = collect_rows(list(result.keys()), result.fetchmany, max_rows, deadline)
                else:
                    rows = Rows((), changed=result.rowcount)
                result.close()
                if self.allow_writes:
                    conn.commit()
                else:
                    conn.rollback()
                return rows
        except self._sa.exc.DBAPIError as exc:
            raise self._classify(exc.orig) from None
        except self._sa.exc.SQLAlchemyError as exc:
            raise QueryFailure("other", _first_line(exc)) from None

    def _classify(self, orig: BaseException) -> QueryFailure:
        text = _first_line(orig)
        for pattern, kind in _SERVER_ERRORS:
            match = pattern.search(text)
            if match:
                if kind == "no_table":
                    return QueryFailure("no_table", match.group(1))
                return QueryFailure(kind, text)  # type: ignore[arg-type]
        return QueryFailure("other", text)

    def table_names(self) -> list[tuple[str, bool]]:
        """``(name, is_view)`` of the tables and views of the default schema."""
        try:
            with self.engine.connect() as conn:
                inspector = self._sa.inspect(conn)
                tables = inspector.get_table_names()
                views = inspector.get_view_names()
        except self._sa.exc.SQLAlchemyError as exc:
            raise QueryFailure("other", _first_line(getattr(exc, "orig", None) or exc)) from None
        return [(t, False) for t in tables] + [(v, True) for v in views]

    def describe(self, name: str) -> Table:
        """The table or view called exactly ``name``: columns, types, keys."""
        try:
            with self.engine.connect() as conn:
                inspector = self._sa.inspect(conn)
                view = name in inspector.get_view_names()
                columns = inspector.get_columns(name)
                pk = set(inspector.get_pk_constraint(name).get("constrained_columns") or ())
                refs: dict[str, str] = {}
                for fk in inspector.get_foreign_keys(name):
                    pairs = zip(fk["constrained_columns"], fk["referred_columns"], strict=False)
                    for child, parent_col in pairs:
                        refs.setdefault(child, f"{fk['referred_table']}.{parent_col}")
        except self._sa.exc.SQLAlchemyError as exc:
            raise QueryFailure("other", _first_line(getattr(exc, "orig", None) or exc)) from None
        return Table(
            name,
            tuple(
                Column(
                    name=col["name"],
                    type=self._type_name(col["type"]),
                    primary_key=col["name"] in pk,
                    not_null=not col.get("nullable", True),
                    references=refs.get(col["name"], ""),
                )
                for col in columns
            ),
            view=view,
        )

    def _type_name(self, type_: Any) -> str:
        try:
            return str(type_.compile(dialect=self.engine.dialect))
        except Exception:  # noqa: BLE001 - a type the dialect cannot spell: show its class
            return type(type_).__name__.upper()
