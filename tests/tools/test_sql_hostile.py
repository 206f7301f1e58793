"""Hostile SQL against the SQL tool: nothing changes, and every refusal is one line with a cause.

The hostile statements are data, ``hostile_sql.txt`` beside this module, grouped by class (DML,
DDL, ATTACH, PRAGMA writes, extensions, transactions, FTS/R-tree shadow tables, obfuscation,
several statements, pointer functions, ...). Each runs through the ``SQLQuery`` action the way
the execute node runs it (:func:`~lumos_graph.agent.execution.run_action`) on a private copy of
a real database: Chinook (``tests.sql_fixtures``) plus FTS3/FTS4/FTS5/R-tree tables, a view, an
index and a trigger (:data:`EXTRA_SCHEMA`), so that every kind of object can be attacked.

For every statement: the observation is one line starting with ``refused:``, the database
file's bytes and its folder are unchanged, and the next ordinary query answers as before.
Statements that are allowed because they only read (:data:`ALLOWED_HARMLESS`) and text SQLite
cannot parse (:data:`NOT_PARSED`) are listed here, apart, with what is checked for them.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from lumos_graph.agent import protocol
from lumos_graph.agent.actions import ActionSet
from lumos_graph.agent.execution import run_action
from lumos_graph.agent.state import ActionRecord
from lumos_graph.tools.sql._guard import ALLOWED_FUNCTIONS, function_allowed
from lumos_graph.tools.sql._sqlite import split_statements
from lumos_graph.tools.sql.actions import sql_actions
from tests.sql_fixtures import chinook_database

HOSTILE_FILE = Path(__file__).with_name("hostile_sql.txt")
BOTH_MODES = " [both modes]"  # a class marked so is refused with --allow-writes too
EXTRA_SCHEMA = """
CREATE TABLE audit_log (id INTEGER PRIMARY KEY, note TEXT);
CREATE VIEW long_track AS SELECT id, name FROM track WHERE milliseconds > 300000;
CREATE INDEX track_name_idx ON track (name);
CREATE TRIGGER artist_audit AFTER INSERT ON artist
  BEGIN INSERT INTO audit_log (note) VALUES (new.name); END;
CREATE VIRTUAL TABLE doc3 USING fts3(body);
CREATE VIRTUAL TABLE doc4 USING fts4(title, body);
CREATE VIRTUAL TABLE doc5 USING fts5(title, body);
CREATE VIRTUAL TABLE box USING rtree(id, x0, x1, y0, y1);
INSERT INTO doc3 (body) VALUES ('hello world');
INSERT INTO doc4 (title, body) VALUES ('greeting', 'hello world');
INSERT INTO doc5 (title, body) VALUES ('greeting', 'hello world');
INSERT INTO box VALUES (1, 0, 5, 0, 5);
"""
# what the next ordinary query sees: rows, schema objects, temporary objects, attached
# databases and the user version, in one cell
STATE = (
    "SELECT (SELECT COUNT(*) FROM artist) || '/' || (SELECT COUNT(*) FROM sqlite_master) || '/'"
    " || (SELECT COUNT(*) FROM sqlite_temp_master) || '/'"
    " || (SELECT group_concat(name) FROM pragma_database_list) || '/'"
    " || (SELECT user_version FROM pragma_user_version)"
)
FTS3_TOKENIZER = "refused: the function fts3_tokenizer is not allowed (it exposes native pointers)"
# SQLite's own words for a refusal, which must never reach the model
RAW_REFUSALS = ("not authorized", "authorization denied", "no such function", "unsafe use")


@dataclass(frozen=True)
class Hostile:
    """One statement of ``hostile_sql.txt``."""

    kind: str
    text: str
    both_modes: bool

    def sql(self, folder: Path) -> str:
        """The statement as sent, naming files in ``folder`` (beside the database)."""
        return self.text.replace("\\n", "\n").replace("$DIR", str(folder))


def load_hostile(path: Path = HOSTILE_FILE) -> list[Hostile]:
    """The statements of the data file, with their class (see the file's header)."""
    found: list[Hostile] = []
    kind, both = "", False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            kind, both = line[3:].removesuffix(BOTH_MODES), line.endswith(BOTH_MODES)
        elif line.strip() and not line.startswith("#"):
            assert kind, f"{path.name}: a statement before the first class: {line!r}"
            found.append(Hostile(kind, line, both))
    return found


HOSTILE = load_hostile()

# Read-only and harmless: allowed, and still nothing changes. Some look like writes but are
# no-ops SQLite never asks the authorizer about (the object is absent, or exists already).
ALLOWED_HARMLESS = [
    "SELECT COUNT(*) FROM artist",
    "SELECT name FROM artist WHERE name = 'DROP TABLE artist'",
    "SELECT 1 -- ; DROP TABLE artist",
    "SELECT 1 /* ; DROP TABLE artist */",
    "SELECT 1; -- DROP TABLE artist",
    "SELECT '; DROP TABLE artist; --'",
    "SELECT 'ＤＲＯＰ ＴＡＢＬＥ artist'",
    "WITH x AS (SELECT 1) SELECT * FROM x",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n FROM r",
    "PRAGMA table_info(artist)",
    "PRAGMA index_list(track)",
    "PRAGMA foreign_key_list(album)",
    "PRAGMA user_version",
    "PRAGMA journal_mode",
    "PRAGMA quick_check",
    "SELECT * FROM pragma_table_info('artist')",
    "SELECT * FROM pragma_database_list",
    "SELECT name FROM pragma_function_list WHERE name = 'fts3_tokenizer'",
    "SELECT COUNT(*) FROM sqlite_master",
    "SELECT sql FROM sqlite_schema WHERE name = 'artist'",
    "SELECT COUNT(*) FROM sqlite_temp_master",
    "EXPLAIN SELECT * FROM artist",
    "EXPLAIN QUERY PLAN SELECT * FROM track WHERE name = 'x'",
    "EXPLAIN VACUUM",  # lists the program, never runs it
    "DROP TABLE IF EXISTS no_such_table",
    "DROP VIEW IF EXISTS no_such_view",
    "DROP INDEX IF EXISTS no_such_index",
    "DROP TRIGGER IF EXISTS no_such_trigger",
    "CREATE INDEX IF NOT EXISTS track_name_idx ON track (name)",
    "REINDEX NOCASE",  # no index uses NOCASE: nothing to rebuild
    "SELECT snippet(doc3) FROM doc3 WHERE doc3 MATCH 'hello'",
    "SELECT offsets(doc4), length(matchinfo(doc4)) FROM doc4 WHERE doc4 MATCH 'hello'",
    "SELECT highlight(doc5, 1, '[', ']') FROM doc5 WHERE doc5 MATCH 'hello'",
    "SELECT title, bm25(doc5) < 0 FROM doc5 WHERE doc5 MATCH 'hello' ORDER BY rank",
    "SELECT COUNT(*) FROM doc3_content",
    "SELECT COUNT(*) FROM doc5_data",
    "SELECT COUNT(*) FROM long_track",
    "SELECT note FROM audit_log",
    "SELECT json_extract('{\"a\": 1}', '$.a'), '{\"a\": [1, 2]}' -> '$.a' ->> 1",
    "SELECT * FROM json_each('[1, 2, 3]')",
    "SELECT date('2000-01-01', '+1 day'), julianday('2000-01-01'), unixepoch('1970-01-02')",
    "SELECT round(sqrt(2), 3), pi() > 3, log10(100), power(2, 10)",
    "SELECT name, row_number() OVER (ORDER BY id), lag(name) OVER (ORDER BY id) FROM genre",
    "SELECT group_concat(name, ', '), total(id), avg(id) FROM genre WHERE id < 4",
    "SELECT sqlite_version() IS NOT NULL, typeof(sqlite_source_id())",
    "SELECT length(zeroblob(1000)), length(randomblob(16)), abs(random()) >= 0",
    "SELECT printf('%d-%s', 1, 'x'), format('%5.2f', 1.5), printf('%p', 255)",
    "SELECT changes(), total_changes(), last_insert_rowid()",
    "SELECT hex('x'), quote(x'00'), unicode('a'), char(65), iif(1, 'a', 'b')",
    "SELECT COUNT(*) > 0 FROM dbstat",
]

# SQLite cannot parse these (its keywords are ASCII; dot-commands belong to its shell, and the
# other words to other databases): they fail with SQLite's own syntax error, which is not a
# refusal, and nothing changes.
NOT_PARSED = [
    "ＤＲＯＰ ＴＡＢＬＥ artist",
    "ＤＥＬＥＴＥ ＦＲＯＭ artist",
    "ＩＮＳＥＲＴ ＩＮＴＯ artist (name) VALUES ('x')",
    "ＡＴＴＡＣＨ '/tmp/x.db' AS x",
    "DRОP TABLE artist",  # a Cyrillic О
    "DROP\u00a0TABLE artist",  # a no-break space
    "DR\u200bOP TABLE artist",  # a zero-width space
    "\u202eDROP TABLE artist",  # a right-to-left override
    "DELETE artist",
    "TRUNCATE TABLE artist",
    ".load /tmp/evil",
    ".shell rm -rf /",
    "LOAD EXTENSION 'evil'",
    "GRANT ALL ON artist TO public",
    "COPY artist FROM '/etc/passwd'",
    "SHOW TABLES",
    "USE other",
]

# Built-in functions of SQLite that are not on the allow-list, and why (see tools/sql/_guard.py)
KNOWN_REFUSED_FUNCTIONS = {
    "fts3_tokenizer": "returns or registers a native pointer",
    "fts5": "exchanges the FTS5 API pointer",
    "load_extension": "loads native code",
    "optimize": "rewrites an FTS3 index",
    "sqlite_log": "writes to SQLite's error log",
    "fts5_source_id": "not needed to query",
    "rtreecheck": "not needed to query",
    "rtreedepth": "not needed to query",
    "rtreenode": "not needed to query",
}


# ---- fixtures and helpers ------------------------------------------------------------------
@pytest.fixture(scope="session")
def hostile_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Chinook with an object of every kind a statement may attack."""
    path = chinook_database(tmp_path_factory.mktemp("hostile") / "chinook.sqlite")
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(EXTRA_SCHEMA)
    return path


@pytest.fixture
def database(hostile_master: Path, tmp_path: Path) -> Path:
    """A private copy, alone in its folder, so that any file appearing beside it shows."""
    folder = tmp_path / "db"
    folder.mkdir()
    return Path(shutil.copyfile(hostile_master, folder / "chinook.sqlite"))


def observe(actions: ActionSet, query: str) -> ActionRecord:
    """``R1 = SQLQuery(query)`` as the execute node runs it."""
    record, _values = run_action(protocol.ActionCall(("R1",), "SQLQuery", query), actions, {})
    return record


def state(actions: ActionSet) -> object:
    record = observe(actions, STATE)
    assert record["error"] is None, record["error"]
    return record["result"]


def snapshot(database: Path) -> tuple[str, list[str]]:
    """The database file's hash and the names in its folder."""
    digest = hashlib.sha256(database.read_bytes()).hexdigest()
    return digest, sorted(p.name for p in database.parent.iterdir())


def assert_refused(record: ActionRecord) -> str:
    message = record["error"]
    assert message is not None, f"allowed: {record['result']}"
    assert message.startswith("refused: "), message
    assert len(message.splitlines()) == 1, message
    assert not any(raw in message for raw in RAW_REFUSALS), message
    assert record["result"] is None
    return message


def run_hostile(database: Path, statement: Hostile, *, allow_writes: bool) -> str:
    """Run ``statement``, check that nothing changed, and return the refusal."""
    actions = sql_actions(database, allow_writes=allow_writes)
    before, answer = snapshot(database), state(actions)
    message = assert_refused(observe(actions, statement.sql(database.parent)))
    assert snapshot(database) == before
    assert state(actions) == answer  # the next query works and sees the same database
    return message


def hostile_id(statement: Hostile) -> str:
    return f"{statement.kind}:{statement.text[:60]}"


# ---- the set itself ------------------------------------------------------------------------
def test_the_set_covers_every_class() -> None:
    kinds = {s.kind for s in HOSTILE}
    assert len(HOSTILE) >= 200
    assert len({s.text for s in HOSTILE}) == len(HOSTILE)  # no statement twice
    assert kinds == {
        "dml", "upsert-and-returning", "ddl-tables", "ddl-views-indexes-triggers",
        "virtual-and-shadow-tables", "attach-detach-vacuum-into", "pragma-writes",
        "process-pragmas", "vacuum-reindex-analyze", "extension-loading-and-native-functions",
        "temp-objects", "transactions", "comments-case-unicode-and-ctes", "several-statements",
        "pointer-functions", "pointer-functions-in-schema",
    }  # fmt: skip
    assert sum("fts3_tokenizer" in s.text.lower() for s in HOSTILE) >= 40
    assert not set(ALLOWED_HARMLESS) & {s.text for s in HOSTILE}


# ---- refused, read-only --------------------------------------------------------------------
@pytest.mark.parametrize("statement", HOSTILE, ids=hostile_id)
def test_hostile_statement_is_refused(database: Path, statement: Hostile) -> None:
    run_hostile(database, statement, allow_writes=False)


@pytest.mark.parametrize("statement", [s for s in HOSTILE if s.both_modes], ids=hostile_id)
def test_refused_with_allow_writes_too(database: Path, statement: Hostile) -> None:
    """ATTACH, process-wide PRAGMAs, extensions and pointer functions: writing data needs none."""
    run_hostile(database, statement, allow_writes=True)


# ---- fts3_tokenizer ------------------------------------------------------------------------
READS_OF_POINTERS = [
    s
    for s in HOSTILE
    if s.kind == "pointer-functions"
    and s.text.lstrip().upper().startswith(("SELECT", "WITH", "VALUES", "EXPLAIN"))
    and "fts3_tokenizer" in s.text.lower()
]


@pytest.mark.parametrize("allow_writes", [False, True])
@pytest.mark.parametrize("statement", READS_OF_POINTERS, ids=hostile_id)
def test_fts3_tokenizer_is_refused_as_such(
    database: Path, statement: Hostile, allow_writes: bool
) -> None:
    """Every way of reading it names the function, not some other cause, in both modes."""
    assert run_hostile(database, statement, allow_writes=allow_writes) == FTS3_TOKENIZER


def test_a_pointer_planted_in_the_schema_is_refused_when_used(database: Path) -> None:
    """With --allow-writes a view, a DEFAULT or a trigger can hold fts3_tokenizer; using them
    is refused (the authorizer, or SQLite's own direct-only rule) and no pointer is stored."""
    sql = sql_actions(database, allow_writes=True)
    for create, use in [
        ("CREATE VIEW pv AS SELECT fts3_tokenizer('simple') AS v", "SELECT hex(v) FROM pv"),
        ("CREATE TABLE pd (v DEFAULT (fts3_tokenizer('simple')))", "INSERT INTO pd DEFAULT VALUES"),
        (
            "CREATE TRIGGER pt AFTER INSERT ON artist BEGIN "
            "INSERT INTO pd VALUES (fts3_tokenizer('evil', x'4141414141414141')); END",
            "INSERT INTO artist (name) VALUES ('x')",
        ),
    ]:
        assert observe(sql, create)["result"] == ["done"]
        assert observe(sql, use)["error"] == FTS3_TOKENIZER
    generated = "CREATE TABLE pg (a, v AS (fts3_tokenizer('simple')))"
    assert observe(sql, generated)["error"] == FTS3_TOKENIZER
    assert observe(sql, "SELECT COUNT(*) FROM pd")["result"] == ["0"]
    assert observe(sql, "SELECT COUNT(*) FROM artist WHERE name = 'x'")["result"] == ["0"]


# ---- allowed, and not parsed ---------------------------------------------------------------
@pytest.mark.parametrize("query", ALLOWED_HARMLESS)
def test_harmless_reads_are_allowed(database: Path, query: str) -> None:
    actions = sql_actions(database)
    before, answer = snapshot(database), state(actions)
    record = observe(actions, query)
    assert record["error"] is None, record["error"]
    assert snapshot(database) == before
    assert state(actions) == answer


@pytest.mark.parametrize("query", NOT_PARSED)
def test_text_sqlite_cannot_parse_changes_nothing(database: Path, query: str) -> None:
    actions = sql_actions(database)
    before = snapshot(database)
    message = observe(actions, query)["error"]
    assert message is not None
    assert "syntax error" in message or "unrecognized token" in message, message
    assert len(message.splitlines()) == 1
    assert snapshot(database) == before


# ---- the pieces ----------------------------------------------------------------------------
def test_the_function_allow_list_reviews_every_builtin() -> None:
    """Each function this SQLite has is allowed or refused for a stated reason, so a newer
    SQLite's new functions are read before anyone allows them."""
    with closing(sqlite3.connect(":memory:")) as conn:
        builtins = {name for (name,) in conn.execute("SELECT name FROM pragma_function_list")}
    assert builtins - ALLOWED_FUNCTIONS <= set(KNOWN_REFUSED_FUNCTIONS)
    assert not ALLOWED_FUNCTIONS & set(KNOWN_REFUSED_FUNCTIONS)
    assert function_allowed("COUNT") and function_allowed("->>")
    assert not function_allowed("FTS3_Tokenizer")


def test_split_statements_reads_as_sqlite_does() -> None:
    trigger = "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT ';'; END;"
    assert split_statements(f"SELECT 1; {trigger} -- done") == [
        "SELECT 1;",
        f" {trigger}",
        " -- done",
    ]
    assert split_statements("SELECT ';' AS x") == ["SELECT ';' AS x"]
    assert split_statements("SELECT 1; /* ; */ DROP TABLE t") == [
        "SELECT 1;",
        " /* ; */ DROP TABLE t",
    ]
    assert split_statements("  ") == []
    # a long run of ';' inside a string stays cheap: splitting stops, the rest is one part
    many = "SELECT '" + ";" * 50_000 + "'; DROP TABLE t"
    assert split_statements(many) == [many]
