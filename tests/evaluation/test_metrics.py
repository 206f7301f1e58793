"""Metrics on hand-checked cases: numbers, yes/no, SQuAD EM/F1, SQL execution match, score()."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from lumos_graph.errors import ConfigError
from lumos_graph.evaluation.metrics import (
    exact_match,
    execution_match,
    f1,
    majority_class,
    normalize_answer,
    numeric_match,
    query_rows,
    rows_match,
    score,
    to_number,
    wilson_interval,
    yes_no,
)
from tests.evaluation.test_datasets import load_or_skip


# ---- numbers ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        ("$1,200.50", "1200.5"),
        ("1,234,567 people", "1234567"),
        ("The answer is 18 dollars.", "18"),
        ("3/4", "0.75"),
        ("\\frac{3}{4}", "0.75"),
        ("25%", "25"),
        (".5", "0.5"),
        ("\u22123", "-3"),  # a typographic minus sign
        ("12.0", "12"),
        ("0.3333333", "1/3"),  # within 1e-6
    ],
)
def test_numbers_that_match(prediction: str, gold: str) -> None:
    assert numeric_match(prediction, gold)


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [("7", "8"), ("1,5", "15"), ("0.333", "1/3"), ("no number", "3"), (None, "3"), ("3", "")],
)
def test_numbers_that_do_not_match(prediction: str | None, gold: str) -> None:
    assert not numeric_match(prediction, gold)


def test_to_number_reads_the_first_number() -> None:
    assert to_number("In 2 hours she earns 30") == 2
    assert to_number("1/0") is None
    assert to_number(None) is None


# ---- yes / no -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("Yes.", True),
        ("yes, because frost is common in December", True),
        ("True", True),
        ("**Yes**", True),
        ("The answer is yes.", True),
        ("No", False),
        ("false", False),
        ("No, it is not.", False),
        ("It would not sink, so no.", False),
        ("I don't know", None),
        ("yes and no", True),  # the first word decides
        ("Maybe yes, maybe no", None),
        ("N/A", None),
        ("", None),
        (None, None),
    ],
)
def test_yes_no(text: str | None, said: bool | None) -> None:
    assert yes_no(text) is said


# ---- SQuAD exact match and F1 -------------------------------------------------------------------
def test_squad_normalization() -> None:
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("an apple, a pear") == "apple pear"


def test_exact_match_and_f1() -> None:
    assert exact_match("the Eiffel Tower.", "Eiffel tower")
    assert not exact_match("Eiffel", "Eiffel Tower")
    assert exact_match("Shakespeare", ["William Shakespeare", "shakespeare"])
    assert f1("Barack Obama", "Obama") == pytest.approx(2 / 3)  # P 1/2, R 1
    assert f1("the cat sat", "a cat sat down") == pytest.approx(0.8)  # P 1, R 2/3
    assert f1("Obama", ["Barack Obama", "Obama"]) == 1.0  # the best gold
    assert f1("dog", "cat") == 0.0
    assert f1(None, "cat") == 0.0 and not exact_match(None, "cat")
    # HotpotQA's rule: a yes/no on either side scores only when both say the same
    assert f1("yes it is", "yes") == 0.0
    assert f1("yes", "Yes.") == 1.0


# ---- SQL execution match ------------------------------------------------------------------------
@pytest.fixture
def tiny_db(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.sqlite"
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(
            "CREATE TABLE pet (name TEXT, kind TEXT, age INTEGER);"
            "INSERT INTO pet VALUES ('Rex', 'dog', 3), ('Tom', 'cat', 5), ('Bo', 'dog', 3),"
            " ('Kit', 'cat', 1);"
        )
        conn.commit()
    return path


def test_rows_match_rules() -> None:
    assert rows_match([(1,), (2,)], [(2,), (1,)], ordered=False)
    assert not rows_match([(1,), (2,)], [(2,), (1,)], ordered=True)
    assert not rows_match([(1,), (1,), (2,)], [(1,), (2,), (2,)], ordered=False)  # duplicates
    assert rows_match([("a", 1), ("b", 2)], [(2, "b"), (1, "a")], ordered=False)  # columns
    assert not rows_match([("a", 1), ("b", 2)], [(1, "b"), (2, "a")], ordered=False)
    assert rows_match([], [], ordered=True)
    assert not rows_match([(1, 2)], [(1,)], ordered=False)
    assert rows_match([(3,)], [(3.0,)], ordered=False)  # SQLite's 3 and 3.0 are one value


def test_execution_match_on_a_tiny_database(tiny_db: Path) -> None:
    gold = "SELECT age FROM pet WHERE kind = 'dog'"  # 3, 3: duplicates count
    assert execution_match("SELECT age FROM pet WHERE name IN ('Rex', 'Bo')", gold, tiny_db)
    assert not execution_match("SELECT DISTINCT age FROM pet WHERE kind = 'dog'", gold, tiny_db)
    ordered = "SELECT name FROM pet ORDER BY age, name"
    assert execution_match("SELECT name FROM pet ORDER BY age, name", ordered, tiny_db)
    assert not execution_match("SELECT name FROM pet ORDER BY name", ordered, tiny_db)
    assert execution_match("SELECT name FROM pet ORDER BY name", "SELECT name FROM pet", tiny_db)
    assert execution_match("SELECT age, name FROM pet", "SELECT name, age FROM pet", tiny_db)
    assert execution_match([("Tom",), ("Kit",)], "SELECT name FROM pet WHERE kind = 'cat'",
                           tiny_db)
    assert not execution_match("SELECT nme FROM pet", gold, tiny_db)  # an error is wrong
    assert not execution_match(None, gold, tiny_db)
    with pytest.raises(ConfigError, match="the gold query fails"):
        execution_match("SELECT 1", "SELECT * FROM nowhere", tiny_db)


def test_execution_is_read_only(tiny_db: Path) -> None:
    assert not execution_match("DELETE FROM pet", "SELECT 1 WHERE 0", tiny_db)
    assert not execution_match("SELECT 1; DELETE FROM pet", "SELECT 1", tiny_db)
    assert query_rows(tiny_db, "SELECT count(*) FROM pet") == [(4,)]
    with pytest.raises(ConfigError, match="no SQLite database file"):
        query_rows(tiny_db.with_name("missing.sqlite"), "SELECT 1")


@pytest.fixture(scope="module")
def pets_db() -> Path:
    [item] = [i for i in load_or_skip("spider-dev") if "female" in i["question"]]
    return Path(item["db"])


def test_execution_match_on_a_real_spider_database(pets_db: Path) -> None:
    gold = ("SELECT count(*) FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.stuid = T2.stuid "
            "JOIN Pets AS T3 ON T2.petid = T3.petid WHERE T1.sex = 'F' AND T3.pettype = 'dog'")
    other = ("SELECT COUNT(*) FROM Pets WHERE PetType = 'dog' AND PetID IN (SELECT h.PetID "
             "FROM Has_Pet h JOIN Student s ON s.StuID = h.StuID WHERE s.Sex = 'F')")
    assert execution_match(other, gold, pets_db)
    assert query_rows(pets_db, gold) == [(2,)]
    assert not execution_match("SELECT count(*) FROM Pets", gold, pets_db)
    names = "SELECT Fname, LName FROM Student WHERE Age > 20"
    assert execution_match("SELECT LName, Fname FROM Student WHERE Age >= 21", names, pets_db)


# ---- score() ------------------------------------------------------------------------------------
def sql_call(query: str, error: str | None = None) -> dict[str, Any]:
    return {"tool": "SQLQuery", "args": query, "resolved_args": [query],
            "result": None if error else ["..."], "error": error}


def test_score_by_kind(tiny_db: Path) -> None:
    assert score({"kind": "maths", "answer": "18"}, "18 dollars") == {
        "correct": True, "reward": 1.0}
    assert score({"answer": "18"}, "17")["correct"] is False  # maths by default
    assert score({"kind": "yesno", "answer": "No"}, "no, it floats")["correct"]
    assert not score({"kind": "yesno", "answer": "No"}, "I cannot tell")["correct"]
    qa = score({"kind": "qa", "answer": "Barack Obama"}, "Obama")
    assert qa == {"correct": False, "reward": 0.0, "em": 0.0, "f1": pytest.approx(2 / 3)}
    assert score({"kind": "qa", "answer": ["Obama", "Barack Obama"]}, "obama.")["reward"] == 1.0
    assert score({"kind": "vqa", "answer": "circle"}, "Circle")["correct"]
    assert not score({"kind": "vqa", "answer": "circle"}, "a red circle")["correct"]
    assert score({"kind": "vqa", "answer": "yes"}, "Yes, there is.")["correct"]
    assert not score({"kind": "maths", "answer": "3"}, None)["correct"]
    with pytest.raises(ConfigError, match="unknown kind 'poetry'"):
        score({"kind": "poetry", "answer": "x"}, "x")


def test_score_sql_reruns_the_last_successful_query(tiny_db: Path) -> None:
    item = {"kind": "sql", "answer": "SELECT name FROM pet WHERE kind = 'cat'", "db": str(tiny_db)}
    right, wrong = "SELECT name FROM pet WHERE age != 3", "SELECT name FROM pet"
    assert score(item, "Tom and Kit", actions=[sql_call(wrong), sql_call(right)])["correct"]
    assert score(item, "x", actions=[sql_call(right), sql_call("SELEC", "syntax error")])[
        "correct"]
    assert not score(item, "Tom and Kit", actions=[sql_call(right), sql_call(wrong)])["correct"]
    assert score(item, right)["correct"]  # the answer is itself a query


def test_score_sql_without_queries_compares_a_single_cell(tiny_db: Path) -> None:
    count = {"kind": "sql", "answer": "SELECT count(*) FROM pet", "db": str(tiny_db)}
    assert score(count, "There are 4 pets.")["correct"]
    assert not score(count, "5")["correct"]
    name = {"kind": "sql", "answer": "SELECT name FROM pet WHERE age = 5", "db": str(tiny_db)}
    assert score(name, "tom")["correct"]
    several = {"kind": "sql", "answer": "SELECT name FROM pet", "db": str(tiny_db)}
    assert not score(several, "Rex, Tom, Bo and Kit")["correct"]
    with pytest.raises(ConfigError, match="has no 'db'"):
        score({"kind": "sql", "answer": "SELECT 1"}, "1")


# ---- reporting ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("correct", "n", "low", "high"),
    [  # reference values of the Wilson score interval at 95% (z = 1.96)
        (8, 30, 0.1418, 0.4445),
        (12, 20, 0.3866, 0.7812),
        (0, 20, 0.0, 0.1611),
        (20, 20, 0.8389, 1.0),
    ],
)
def test_wilson_interval(correct: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(correct, n)
    assert got == pytest.approx((low, high), abs=5e-4)
    assert got[0] <= correct / n <= got[1]


def test_wilson_interval_of_nothing_is_everything() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_majority_class_counts_the_gold_labels_of_yes_no_items() -> None:
    items = [{"answer": a, "kind": "yesno"} for a in ("No", "no", "Yes", "False", "yes.")]
    items.append({"answer": "5", "kind": "maths"})  # other kinds do not count
    assert majority_class(items) == {"answer": "no", "correct": 3, "n": 5, "accuracy": 0.6}
    assert majority_class(items[2:3])["answer"] == "yes"
    assert majority_class([{"answer": "5", "kind": "maths"}]) is None
