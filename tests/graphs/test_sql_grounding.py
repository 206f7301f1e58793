"""SQL grounding: the OnePass plan grounded as one SQL query from the schema and sample rows,
with one corrected attempt after an error or an empty result, and votes on the rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lumos_graph.agent import protocol
from lumos_graph.agent.grammar import sql_grammar
from lumos_graph.agent.voting import rows_key
from lumos_graph.errors import ConfigError
from lumos_graph.graphs.lumos import create_lumos_agent
from lumos_graph.tools.sql.actions import sql_actions
from tests.agent.gbnf import accepts
from tests.fakes import scripted, toy_actions

PLAN = "Subgoal 1: Count the dogs older than 3 years"
TASK = "How many dogs are older than 3?"


@pytest.fixture
def pets(tmp_path: Path) -> Path:
    path = tmp_path / "pets.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE pet (id INTEGER PRIMARY KEY, kind TEXT, age INTEGER)")
        db.executemany("INSERT INTO pet (kind, age) VALUES (?, ?)",
                       [("dog", 5), ("dog", 2), ("cat", 7), ("dog", 9)])
    return path


def fenced(query: str) -> str:
    return f"```sql\n{query}\n```"


def agent(pets: Path, lines: list[str], **kwargs: object):
    grounder = scripted(lines)
    graph = create_lumos_agent(planner=scripted([PLAN] * 8), grounder=grounder,
                               actions=sql_actions(pets), grounding="sql", **kwargs)
    return graph, grounder


def test_the_plan_becomes_one_query_written_from_the_schema_and_sample_rows(pets: Path) -> None:
    graph, grounder = agent(pets, [fenced("SELECT count(*) FROM pet WHERE kind = 'dog' "
                                          "AND age > 3")])
    out = graph.invoke({"task": TASK})
    assert out["status"] == "answered", out["reason"]
    assert out["answer"] == "2"
    assert [a["tool"] for a in out["actions"]] == ["SQLQuery"]
    prompt = grounder.prompts[0][-1].content
    assert "CREATE TABLE pet (id INTEGER PRIMARY KEY, kind TEXT, age INTEGER)" in prompt
    assert "1 | dog | 5" in prompt  # a sample row
    assert f"Question: {TASK}" in prompt
    assert "Plan:\n1. Count the dogs older than 3 years" in prompt
    assert out["usage"]["model_calls"] == 2


def test_a_failed_query_goes_back_once_with_its_error(pets: Path) -> None:
    graph, grounder = agent(pets, [fenced("SELECT count(*) FROM pets WHERE age > 3"),
                                   fenced("SELECT count(*) FROM pet WHERE kind = 'dog' "
                                          "AND age > 3")])
    out = graph.invoke({"task": TASK})
    assert out["status"] == "answered", out["reason"]
    assert out["answer"] == "2"
    assert [bool(a["error"]) for a in out["actions"]] == [True, False]
    retry = grounder.prompts[1]
    assert retry[-1].content.startswith("The query failed: ")
    assert "no such table: pets" in retry[-1].content
    assert retry[-2].content == fenced("SELECT count(*) FROM pets WHERE age > 3")  # its reply
    assert "CREATE TABLE pet" in retry[1].content  # the same conversation, schema first


def test_an_empty_result_goes_back_once_then_the_second_query_stands(pets: Path) -> None:
    empty = fenced("SELECT count(*) FROM pet WHERE kind = 'Dog' GROUP BY kind")
    graph, grounder = agent(pets, [empty, empty, fenced("SELECT 1")])
    out = graph.invoke({"task": TASK})
    assert out["actions"][0].get("empty") is True
    assert grounder.prompts[1][-1].content.startswith("The query returned no rows.")
    assert len(out["actions"]) == 2  # one retry only: the third reply is never asked for
    assert out["status"] == "answered"
    assert "(no rows)" in out["answer"]


def test_a_second_failure_fails_the_run(pets: Path) -> None:
    graph, _ = agent(pets, [fenced("SELECT nope FROM pet"), fenced("SELECT nope2 FROM pet")])
    out = graph.invoke({"task": TASK})
    assert out["status"] == "failed"
    assert "nope2" in out["reason"]


def test_a_reply_without_a_query_is_recorded_not_raised(pets: Path) -> None:
    graph, _ = agent(pets, ["I cannot answer that."])
    out = graph.invoke({"task": TASK})
    assert out["status"] == "failed"
    assert out["errors"] and "no SQL query" in out["errors"][0]


def test_branches_vote_on_the_rows_whatever_the_column_names(pets: Path) -> None:
    # branches run in parallel and take the scripted replies in any order: the outcome must
    # not depend on which branch wrote which query
    lines = [fenced("SELECT kind AS k FROM pet WHERE age > 3 ORDER BY k"),
             fenced("SELECT kind FROM pet WHERE age > 3"),
             fenced("SELECT kind FROM pet WHERE age > 6")]
    graph, _ = agent(pets, lines, samples=3)
    out = graph.invoke({"task": "Which kinds are older than 3?"})
    assert sorted(s["votes"] for s in out["samples"]) == [1, 2, 2]
    assert sorted(out["answer"].splitlines()[1:]) == ["cat", "dog", "dog"]


def test_rows_key_ignores_the_header_and_the_order() -> None:
    assert rows_key("k\ndog\ncat\ndog") == rows_key("kind\ncat\ndog\ndog")
    assert rows_key("5") == rows_key("5.0")
    assert rows_key("k\ndog") != rows_key("k\ncat")


def test_sql_grounding_needs_the_sql_tools_and_onepass(pets: Path) -> None:
    with pytest.raises(ConfigError, match="SQLQuery"):
        create_lumos_agent(planner=scripted([PLAN]), grounder=scripted([]),
                           actions=toy_actions(), grounding="sql")
    with pytest.raises(ConfigError, match="onepass"):
        create_lumos_agent(planner=scripted([PLAN]), grounder=scripted([]),
                           actions=sql_actions(pets), grounding="sql", mode="iterative")


def test_the_sql_grammar_takes_one_fenced_query_only() -> None:
    grammar = sql_grammar()
    assert accepts(grammar, "```sql\nSELECT 1\nFROM t\n```")
    assert not accepts(grammar, "Here is the query:\n```sql\nSELECT 1\n```")


def test_parse_sql_takes_the_first_statement_of_the_block() -> None:
    assert protocol.parse_sql("```sql\nSELECT 1; DROP TABLE t;\n```") == "SELECT 1"
    assert protocol.parse_sql("no query here") is None
