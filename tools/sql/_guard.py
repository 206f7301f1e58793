"""The SQLite authorizer of the SQL actions: what a statement may do, and what it tried.

SQLite calls :meth:`Guard.authorize` for every action of a statement while it compiles it
(``SELECT``, reading a column, calling a function, ``INSERT`` into a table, a ``PRAGMA``, ...),
before anything runs. The guard answers allow or deny and remembers the first action it denied
(:attr:`Guard.refused`, :attr:`Guard.what`), so the refusal can name its cause.

Read-only (the default) allows only: ``SELECT``, reading columns, recursive CTEs, the functions
of :data:`ALLOWED_FUNCTIONS`, and the reading PRAGMAs of :data:`NAME_PRAGMAS` and
:data:`VALUE_PRAGMAS` (the latter without a value). Everything else is denied: every write,
``CREATE``/``DROP`` (temporary and virtual tables too), ``ALTER``, ``REINDEX``, ``ANALYZE``,
transactions and savepoints, ``ATTACH``/``DETACH`` (which also stops ``VACUUM`` and
``VACUUM INTO``: SQLite runs both by attaching a database) and PRAGMAs that set a value.

With ``allow_writes`` statements may change the database, but three rules hold in both modes:

* no ``ATTACH`` of a file (a name computed by an expression too) and no ``DETACH``: the tool
  uses its one database;
* no PRAGMA that sets a value for the whole process (:data:`PROCESS_PRAGMAS`:
  ``hard_heap_limit = 1`` would make every later SQLite call of the process fail);
* only the functions of :data:`ALLOWED_FUNCTIONS`. SQLite also registers functions that hand
  native state to SQL: ``fts3_tokenizer(name)`` returns the address of a tokenizer module and
  ``fts3_tokenizer(name, blob)`` registers any address as one (SQLite calls through it later),
  ``load_extension`` loads native code, ``fts5()`` exchanges the FTS5 API pointer. Writing
  data gives no reason to reach any of them, so the list is an allow-list: a function SQLite
  adds in a later version stays refused until someone reads what it does.
"""

from __future__ import annotations

import sqlite3
import time

from lumos_graph.tools.sql._base import FailureKind

__all__ = [
    "ALLOWED_FUNCTIONS",
    "NAME_PRAGMAS",
    "PROCESS_PRAGMAS",
    "VALUE_PRAGMAS",
    "Guard",
    "function_allowed",
]

# Authorizer action codes of the SQLite C API (stable; not all are exported by every Python).
_CODES = {
    "CREATE_INDEX": 1, "CREATE_TABLE": 2, "CREATE_TEMP_INDEX": 3, "CREATE_TEMP_TABLE": 4,
    "CREATE_TEMP_TRIGGER": 5, "CREATE_TEMP_VIEW": 6, "CREATE_TRIGGER": 7, "CREATE_VIEW": 8,
    "DELETE": 9, "DROP_INDEX": 10, "DROP_TABLE": 11, "DROP_TEMP_INDEX": 12,
    "DROP_TEMP_TABLE": 13, "DROP_TEMP_TRIGGER": 14, "DROP_TEMP_VIEW": 15, "DROP_TRIGGER": 16,
    "DROP_VIEW": 17, "INSERT": 18, "PRAGMA": 19, "READ": 20, "SELECT": 21, "TRANSACTION": 22,
    "UPDATE": 23, "ATTACH": 24, "DETACH": 25, "ALTER_TABLE": 26, "REINDEX": 27, "ANALYZE": 28,
    "CREATE_VTABLE": 29, "DROP_VTABLE": 30, "FUNCTION": 31, "SAVEPOINT": 32, "RECURSIVE": 33,
}  # fmt: skip
_INSERT, _DELETE, _UPDATE = _CODES["INSERT"], _CODES["DELETE"], _CODES["UPDATE"]
_PRAGMA, _ATTACH, _DETACH = _CODES["PRAGMA"], _CODES["ATTACH"], _CODES["DETACH"]
_FUNCTION = _CODES["FUNCTION"]
_READ_CODES = frozenset({_CODES["READ"], _CODES["SELECT"], _CODES["RECURSIVE"]})
_OK, _DENY = 0, 1
_PROGRESS_STEPS = 1000  # virtual machine instructions between deadline checks

# How a denied action is named in the refusal: the SQL that asks for it. {0} is the first
# argument SQLite passes (a table, index, trigger or view name), {1} the second.
_ACTION_NAMES = {
    _CODES["CREATE_INDEX"]: "CREATE INDEX {0}",
    _CODES["CREATE_TABLE"]: "CREATE TABLE {0}",
    _CODES["CREATE_TEMP_INDEX"]: "CREATE TEMP INDEX {0}",
    _CODES["CREATE_TEMP_TABLE"]: "CREATE TEMP TABLE {0}",
    _CODES["CREATE_TEMP_TRIGGER"]: "CREATE TEMP TRIGGER {0}",
    _CODES["CREATE_TEMP_VIEW"]: "CREATE TEMP VIEW {0}",
    _CODES["CREATE_TRIGGER"]: "CREATE TRIGGER {0}",
    _CODES["CREATE_VIEW"]: "CREATE VIEW {0}",
    _DELETE: "DELETE FROM {0}",
    _CODES["DROP_INDEX"]: "DROP INDEX {0}",
    _CODES["DROP_TABLE"]: "DROP TABLE {0}",
    _CODES["DROP_TEMP_INDEX"]: "DROP INDEX {0}",
    _CODES["DROP_TEMP_TABLE"]: "DROP TABLE {0}",
    _CODES["DROP_TEMP_TRIGGER"]: "DROP TRIGGER {0}",
    _CODES["DROP_TEMP_VIEW"]: "DROP VIEW {0}",
    _CODES["DROP_TRIGGER"]: "DROP TRIGGER {0}",
    _CODES["DROP_VIEW"]: "DROP VIEW {0}",
    _INSERT: "INSERT INTO {0}",
    _UPDATE: "UPDATE {0}",
    _CODES["ALTER_TABLE"]: "ALTER TABLE {1}",
    _CODES["REINDEX"]: "REINDEX",
    _CODES["ANALYZE"]: "ANALYZE",
    _CODES["CREATE_VTABLE"]: "CREATE VIRTUAL TABLE {0} USING {1}",
    _CODES["DROP_VTABLE"]: "DROP TABLE {0}",
}
_TRANSACTION_NAMES = {  # (code, first argument) -> the statement
    (_CODES["TRANSACTION"], "BEGIN"): "BEGIN",
    (_CODES["TRANSACTION"], "COMMIT"): "COMMIT",
    (_CODES["TRANSACTION"], "ROLLBACK"): "ROLLBACK",
    (_CODES["SAVEPOINT"], "BEGIN"): "SAVEPOINT",
    (_CODES["SAVEPOINT"], "RELEASE"): "RELEASE",
    (_CODES["SAVEPOINT"], "ROLLBACK"): "ROLLBACK TO",
}

# PRAGMAs that only read. Those in the first set take a table or index name as their argument;
# the others are allowed only without an argument (with one they set a value).
NAME_PRAGMAS = frozenset(
    "table_info table_xinfo table_list index_list index_info index_xinfo foreign_key_list "
    "foreign_key_check integrity_check quick_check".split()
)
VALUE_PRAGMAS = frozenset(
    "database_list collation_list function_list module_list pragma_list compile_options "
    "encoding user_version application_id schema_version data_version page_size page_count "
    "freelist_count foreign_keys journal_mode auto_vacuum case_sensitive_like".split()
)
# PRAGMAs that set a value for the whole process, not one connection: hard_heap_limit = 1
# makes every later SQLite call of the process fail; refused with a value in both modes
PROCESS_PRAGMAS = frozenset(
    {"hard_heap_limit", "soft_heap_limit", "temp_store_directory", "data_store_directory"}
)
_TEMPORARY_ATTACH = "ATTACH of a temporary database"
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_temp_master", "sqlite_schema"})
# what SQLite asks before the action that names a statement (see Guard's naming)
_BOOKKEEPING = frozenset({_INSERT, _DELETE, _CODES["CREATE_TABLE"]})

# The SQL functions a query may call, by the pages of the SQLite documentation that define
# them (names a given SQLite does not have yet fail as "no such function", as without a list).
# sqlite_offset(X) stays: it is the byte offset of a row in the database file, a fact about the
# data being read (and only present in builds with SQLITE_ENABLE_OFFSET_SQL_FUNC).
# load_extension, listed with the core functions, is left out: it loads native code.
ALLOWED_FUNCTIONS = frozenset(
    (  # lang_corefunc.html
        "abs changes char coalesce concat concat_ws format glob hex if ifnull iif instr "
        "last_insert_rowid length like likelihood likely lower ltrim max min nullif "
        "octet_length printf quote random randomblob replace round rtrim sign soundex "
        "sqlite_compileoption_get sqlite_compileoption_used sqlite_offset sqlite_source_id "
        "sqlite_version substr substring subtype total_changes trim typeof unhex unicode "
        "unistr unistr_quote unlikely upper zeroblob "
        # lang_aggfunc.html (median and percentile* are built in since 3.51)
        "avg count group_concat string_agg sum total median percentile percentile_cont "
        "percentile_disc "
        # windowfunctions.html
        "row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value "
        "last_value nth_value "
        # lang_datefunc.html (CURRENT_DATE and friends are functions to the authorizer)
        "date time datetime julianday unixepoch strftime timediff current_date current_time "
        "current_timestamp "
        # json1.html (-> and ->> are functions to the authorizer)
        "json json_array json_array_length json_error_position json_extract json_insert "
        "json_object json_patch json_pretty json_quote json_remove json_replace json_set "
        "json_type json_valid json_group_array json_group_object jsonb jsonb_array "
        "jsonb_extract jsonb_insert jsonb_object jsonb_patch jsonb_remove jsonb_replace "
        "jsonb_set jsonb_group_array jsonb_group_object -> ->> "
        # lang_mathfunc.html
        "acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log "
        "log10 log2 mod pi pow power radians sin sinh sqrt tan tanh trunc "
        # fts3.html and fts5.html: reading a full-text index that is already there (MATCH
        # calls match(); fts5's ORDER BY rank calls bm25()). Not FTS3's optimize(), which
        # rewrites the index.
        "match snippet highlight bm25 offsets matchinfo"
    ).split()
)


def function_allowed(name: str) -> bool:
    """True when a query may call the SQL function ``name`` (any case)."""
    return name.lower() in ALLOWED_FUNCTIONS


class Guard:
    """The authorizer and progress handler of one connection, remembering why it refused.

    Args:
        allow_writes: allow changes to the database (see the module docstring for what stays
            refused).
        deadline: ``time.monotonic()`` after which running statements are aborted.
        naming: name what :attr:`what` leaves unnamed otherwise. Changes to SQLite's own
            tables (``INSERT`` into ``sqlite_master``, creating ``sqlite_stat1``) are let
            through so that the action SQLite checks next names the statement (``CREATE
            TABLE t`` asks first to insert into ``sqlite_master``, then to create ``t``).
            Only for compiling a refused statement again under ``EXPLAIN``, which never runs
            it.

    Attributes:
        refused: the kind of the first denied action (``read_only``, ``attach``, ``function``,
            ``process``), or ``None``.
        what: that action as SQL (``DROP TABLE artist``, ``PRAGMA user_version = 7``, a
            function name) with names as the query spelled them (possibly long, or spanning
            lines: the text module shortens them), or ``""`` when the action does not say
            (a change to the schema table, attaching the temporary database).
        timed_out: the progress handler stopped a statement at the deadline.
    """

    def __init__(self, *, allow_writes: bool, deadline: float, naming: bool = False) -> None:
        self.allow_writes = allow_writes
        self.deadline = deadline
        self.naming = naming
        self.refused: FailureKind | None = None
        self.what = ""
        self.timed_out = False

    def install(self, conn: sqlite3.Connection) -> None:
        """Set this guard's authorizer and progress handler on ``conn``."""
        conn.set_authorizer(self.authorize)
        conn.set_progress_handler(self.progress, _PROGRESS_STEPS)

    def authorize(
        self, code: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None
    ) -> int:
        """SQLite's authorizer callback: ``SQLITE_OK`` or ``SQLITE_DENY`` for one action."""
        if code == _FUNCTION:  # for a function SQLite passes its name second, in lower case
            if arg2 is not None and function_allowed(arg2):
                return _OK
            return self._deny("function", arg2 or "?")
        if code == _ATTACH and arg1 == "":
            # VACUUM attaches '' (a private temporary database) and copies the database
            # through it, as does ATTACH '': harmless when writes are on
            if self.allow_writes:
                return _OK
            # unnamed: VACUUM asks this only when it runs, ATTACH when it compiles, so
            # compiling again (see Guard's Args) tells them apart
            return self._deny("read_only", _TEMPORARY_ATTACH if self.naming else "")
        if code == _ATTACH:
            # a file, or VACUUM INTO a file; None is a file name computed by an expression
            # (ATTACH 'a' || '.db'), which SQLite does not show: never the temporary database
            return self._deny("attach", "ATTACH or VACUUM INTO of another file")
        if code == _DETACH:
            return self._deny("attach", "DETACH")
        if code == _PRAGMA and arg2 is not None and (arg1 or "").lower() in PROCESS_PRAGMAS:
            return self._deny("process", f"PRAGMA {arg1} = {arg2}")
        if self.allow_writes or code in _READ_CODES:
            return _OK
        if code == _PRAGMA and arg1 is not None:
            name = arg1.lower()
            if name in NAME_PRAGMAS or (name in VALUE_PRAGMAS and arg2 is None):
                return _OK
            value = f" = {arg2}" if arg2 is not None else ""
            return self._deny("read_only", f"PRAGMA {arg1}{value}")
        if code == _UPDATE and arg1 in _SCHEMA_TABLES:
            # SQLite reports this while preparing table-valued functions
            # (pragma_table_info(...), json_each(...)); real writes to the schema table are
            # refused by SQLite itself (they need PRAGMA writable_schema, a PRAGMA with a value,
            # denied above)
            return _OK
        if self.naming and code in _BOOKKEEPING and _internal(arg1):
            # the schema table, or ANALYZE creating sqlite_stat1: let SQLite go on to the
            # action that names the statement; this name stays if none follows
            self.what = self.what or _action_name(code, arg1, arg2)
            return _OK
        if arg1 in _SCHEMA_TABLES:
            return self._deny("read_only", "")  # named by compiling again, see Guard's Args
        return self._deny("read_only", _action_name(code, arg1, arg2))

    def _deny(self, kind: FailureKind, what: str) -> int:
        if self.refused is None:  # the first denial is the cause; later ones follow from it
            self.refused = kind
            self.what = what
        return _DENY

    def progress(self) -> int:
        """SQLite's progress callback: non-zero aborts the running statement."""
        if time.monotonic() > self.deadline:
            self.timed_out = True
            return 1
        return 0


def _internal(table: str | None) -> bool:
    """A table of SQLite's own (the schema table, ``sqlite_stat1``); users cannot create one."""
    return (table or "").lower().startswith("sqlite_")


def _action_name(code: int, arg1: str | None, arg2: str | None) -> str:
    """The SQL that asks SQLite for the authorizer action ``code`` (``DROP TABLE artist``)."""
    named = _TRANSACTION_NAMES.get((code, (arg1 or "").upper()))
    if named is not None:
        return named
    template = _ACTION_NAMES.get(code)
    if template is None:
        return ""
    return template.format(arg1 or "", arg2 or "").strip()
