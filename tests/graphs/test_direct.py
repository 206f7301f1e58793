"""The ``direct`` baseline with scripted models: chain of thought, and text-to-SQL on a database."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from lumos_graph.errors import ConfigError
from lumos_graph.evaluation.run import run_eval
from lumos_graph.graphs.direct import create_direct_agent, parse_sql_reply
from tests.fakes import rule_model, scripted


@pytest.fixture
def shop_db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.sqlite"
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(
            "CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT);"
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES"
            " customer(id), total REAL);"
            "INSERT INTO customer VALUES (1, 'Ada', 'London'), (2, 'Linus', 'Helsinki'),"
            " (3, 'Grace', 'New York'), (4, 'Alan', 'London');"
            "INSERT INTO orders VALUES (1, 1, 10.5), (2, 1, 4.5), (3, 3, 99.0);")
        conn.commit()
    return path


def test_the_sql_prompt_holds_the_schema_and_a_few_rows_of_each_table(shop_db: Path) -> None:
    model = scripted(["```sql\nSELECT COUNT(*) FROM customer WHERE city = 'London';\n```"])
    agent = create_direct_agent(model, db=shop_db, sample_rows=2)
    out = agent.invoke({"task": "How many customers live in London?"})
    system, user = model.prompts[0]
    assert "one SQLite query" in system.text
    assert "CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT)" \
        in user.text
    assert "customer_id INTEGER REFERENCES customer(id)" in user.text
    assert "1 | Ada | London\n2 | Linus | Helsinki\n*/" in user.text  # two rows, not three
    assert "Grace" not in user.text
    assert user.text.endswith("Question: How many customers live in London?\n"
                              "Write one SQLite query that answers the question.")
    # executed once: the result is the answer, and the query is the run's one action
    assert out["status"] == "answered" and out["answer"] == "2"
    assert [a["tool"] for a in out["actions"]] == ["SQLQuery"]
    assert out["actions"][0]["resolved_args"] == [
        "SELECT COUNT(*) FROM customer WHERE city = 'London'"]
    assert out["usage"]["model_calls"] == 1


def test_a_failing_query_is_executed_once_and_the_run_fails(shop_db: Path) -> None:
    model = scripted(["SELECT COUNT(*) FROM clients"])
    out = create_direct_agent(model, db=shop_db).invoke({"task": "How many clients?"})
    assert out["status"] == "failed" and out["answer"] is None
    assert out["reason"].startswith("the query failed: no such table: clients")
    assert len(out["actions"]) == 1 and out["usage"]["model_calls"] == 1


def test_a_reply_without_a_query_has_no_answer(shop_db: Path) -> None:
    out = create_direct_agent(scripted(["I cannot answer that."]), db=shop_db).invoke(
        {"task": "How many customers?"})
    assert (out["status"], out["answer"], out["reason"]) == (
        "failed", None, "the reply holds no SQL query")
    assert out["errors"] == ["no SQL query"]


def test_the_sql_baseline_is_read_only(shop_db: Path) -> None:
    out = create_direct_agent(scripted(["DELETE FROM customer"]), db=shop_db).invoke(
        {"task": "Remove every customer"})
    assert out["status"] == "failed"  # "DELETE" is not even read as a query
    out = create_direct_agent(
        scripted(["WITH x AS (SELECT 1) SELECT * FROM x; DELETE FROM customer"]), db=shop_db
    ).invoke({"task": "Remove every customer"})
    assert out["answer"] == "1"  # only the first statement runs
    with closing(sqlite3.connect(shop_db)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM customer").fetchone() == (4,)


@pytest.mark.parametrize(
    ("reply", "query"),
    [
        ("```sql\nSELECT name FROM customer;\n```\nThis lists the names.",
         "SELECT name FROM customer"),
        ("```\nSELECT 1\n```", "SELECT 1"),
        ("Here is the query:\n\nSELECT name\nFROM customer\nWHERE city = 'a;b';\n\nIt works.",
         "SELECT name\nFROM customer\nWHERE city = 'a;b'"),
        ("```sql\nWITH t AS (SELECT 1) SELECT * FROM t", "WITH t AS (SELECT 1) SELECT * FROM t"),
        ("```python\nprint(1)\n```\nselect 2;", "select 2"),
        ("No query here.", None),
        ("The selection is hard.", None),
    ],
)
def test_parse_sql_reply(reply: str, query: str | None) -> None:
    assert parse_sql_reply(reply) == query


def test_a_missing_database_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no SQLite database file"):
        create_direct_agent(scripted([]), db=tmp_path / "nowhere.sqlite")


def test_eval_runs_direct_sql_and_scores_its_query_by_execution(shop_db: Path,
                                                                tmp_path: Path) -> None:
    items = [
        {"id": "s1", "question": "Which customers live in London?", "kind": "sql",
         "answer": "SELECT name FROM customer WHERE city = 'London'", "db": str(shop_db)},
        {"id": "s2", "question": "What is the largest order total?", "kind": "sql",
         "answer": "SELECT MAX(total) FROM orders", "db": str(shop_db)},
    ]
    model = rule_model([
        ("Which customers", "```sql\nSELECT name FROM customer WHERE city = 'London'\n```"),
        ("largest order", "```sql\nSELECT MIN(total) FROM orders\n```"),  # wrong
    ])
    summary = run_eval("toy-sql", items, model, model_name="rules", agents=["direct"],
                       out=tmp_path / "out")
    direct = summary["agents"]["direct"]
    assert (direct["correct"], direct["n"], direct["model_calls_per_question"]) == (1, 2, 1)
    row = json.loads((tmp_path / "out" / "trajectories" / "direct.jsonl").read_text()
                     .splitlines()[0])
    assert row["correct"] and row["actions"][0]["tool"] == "SQLQuery"
