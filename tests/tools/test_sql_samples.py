"""The text-to-SQL schema prompt: CREATE TABLE lines and sample rows, within a budget."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from lumos_graph.errors import ConfigError
from lumos_graph.tools.sql.samples import schema_with_samples


def _db(path: Path, script: str) -> Path:
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(script)
        conn.commit()
    return path


def test_tables_views_keys_and_rows(tmp_path: Path) -> None:
    db = _db(tmp_path / "a.sqlite",
             "CREATE TABLE city (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
             "CREATE TABLE person (id INTEGER PRIMARY KEY, city_id INTEGER REFERENCES city(id),"
             " bio TEXT);"
             "CREATE TABLE empty (x INTEGER);"
             "CREATE VIEW named AS SELECT name FROM city;"
             "INSERT INTO city VALUES (1, 'Paris'), (2, 'Oslo'), (3, 'Rome'), (4, 'Lima');"
             f"INSERT INTO person VALUES (7, 2, '{'very long line ' * 10}\nsecond line');")
    assert schema_with_samples(db, rows=2) == (
        "CREATE TABLE city (id INTEGER PRIMARY KEY, name TEXT NOT NULL)\n"
        "/* 2 rows of city:\nid | name\n1 | Paris\n2 | Oslo\n*/\n"
        "CREATE TABLE person (id INTEGER PRIMARY KEY, city_id INTEGER REFERENCES city(id), "
        "bio TEXT)\n"
        "/* 1 row of person:\nid | city_id | bio\n"
        "7 | 2 | very long line very long line very long…\n*/\n"
        "CREATE TABLE empty (x INTEGER)\n/* empty has no rows */\n"
        "CREATE VIEW named (name TEXT)\n/* 2 rows of named:\nname\nParis\nOslo\n*/"
    )
    assert "Paris" not in schema_with_samples(db, rows=0)


def test_a_large_schema_stops_at_the_budget_and_names_the_rest(tmp_path: Path) -> None:
    script = "".join(f"CREATE TABLE t{k} (a{k} TEXT, b{k} TEXT); INSERT INTO t{k} VALUES "
                     f"('{'x' * 30}', '{'y' * 30}');" for k in range(40))
    text = schema_with_samples(_db(tmp_path / "big.sqlite", script), max_chars=600)
    assert len(text) < 900
    assert text.startswith("CREATE TABLE t0 (a0 TEXT, b0 TEXT)\n/* 1 row of t0:")
    last = text.splitlines()[-1]
    assert last.startswith("/* ... and ") and last.endswith(", t39 */")
    shown = text.count("CREATE TABLE")
    assert last.startswith(f"/* ... and {40 - shown} more tables: t{shown}, ")


def test_an_unreadable_database_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no SQLite database file"):
        schema_with_samples(tmp_path / "missing.sqlite")
    (tmp_path / "junk.sqlite").write_text("not a database")
    with pytest.raises(ConfigError):
        schema_with_samples(tmp_path / "junk.sqlite")
