"""The demos a user reads first print the true answer: the README's SQL demo on Chinook and
``examples/embed_in_langgraph.py``, ``model_per_role.py`` and ``chat_model_alone.py``, run as
a user runs them, with the real default model (``bring_your_own_tool.py`` has its own test in
tests/tools).

Each true answer is computed here without the agent (the gold SQL on the database, the
arithmetic of the task), so a demo that starts printing a wrong answer fails its test instead of
teaching a user a wrong number.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from lumos_graph.evaluation.metrics import numeric_match
from lumos_graph.evaluation.sample_data import build_chinook
from tests.sql_fixtures import chinook_fixture

ROOT = Path(__file__).resolve().parents[1]

# The true answer of each demo question, computed without the agent: the SQL that answers it on
# Chinook, or the arithmetic of the task. A demo whose question is not here fails loudly: a new
# demo comes with its own independently computed answer.
SQL_GOLD = {
    "How many tracks are longer than 5 minutes?":
        "SELECT COUNT(*) FROM track WHERE milliseconds > 5 * 60 * 1000",
    "How many tracks are longer than 300000 milliseconds?":
        "SELECT COUNT(*) FROM track WHERE milliseconds > 300000",
}
TASK_ANSWERS = {
    "A baker made 24 cupcakes in the morning and 18 in the afternoon, then sold 30. "
    "How many are left?": 24 + 18 - 30,
    "Tom has 3 boxes of 12 pencils and gives away 10. How many are left?": 3 * 12 - 10,
    "Tom has 3 boxes of 12 pencils and gives away 10 pencils. How many pencils does he have "
    "now?": 3 * 12 - 10,
}
_SQL_DEMO = re.compile(r'lumos-graph ask --tools sql --db chinook\.sqlite "([^"]+)"')
_TASK = re.compile(r'^task = "([^"]+)"$', re.MULTILINE)
_ROLES_TASK = re.compile(r'agent\.invoke\(\{"task": "([^"]+)"\s*"([^"]+)"\}\)')


def readme_sql_question() -> str:
    """The question of the README's SQL demo, as the README prints it."""
    found = _SQL_DEMO.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    assert found, "the README has no Chinook SQL demo any more: update this test"
    return found[0]


def example_task() -> str:
    """The task ``examples/embed_in_langgraph.py`` runs."""
    found = _TASK.findall((ROOT / "examples" / "embed_in_langgraph.py").read_text("utf-8"))
    assert len(found) == 1, "the example's task is no longer one `task = \"...\"` line"
    return found[0]


def roles_task() -> str:
    """The task ``examples/model_per_role.py`` runs (one string over two source lines)."""
    found = _ROLES_TASK.findall((ROOT / "examples" / "model_per_role.py").read_text("utf-8"))
    assert len(found) == 1, "the example's task is no longer one agent.invoke({...}) call"
    return "".join(found[0])


def run_example(name: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)], capture_output=True, text=True,
        timeout=900, stdin=subprocess.DEVNULL, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_demo_has_an_independently_computed_answer() -> None:
    assert readme_sql_question() in SQL_GOLD
    assert example_task() in TASK_ANSWERS
    assert roles_task() in TASK_ANSWERS


@pytest.fixture(scope="module")
def chinook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # the database `lumos-graph sample-db chinook` writes, from the same PyPI fixture
    return build_chinook(chinook_fixture(), tmp_path_factory.mktemp("db") / "chinook.sqlite")


@pytest.mark.model
def test_the_readme_sql_demo_prints_what_the_database_says(chinook: Path,
                                                           default_gguf: Path) -> None:
    question = readme_sql_question()
    with closing(sqlite3.connect(chinook)) as conn:
        (truth,) = conn.execute(SQL_GOLD[question]).fetchone()
    result = subprocess.run(
        [sys.executable, "-m", "lumos_graph", "ask", "--tools", "sql", "--db", str(chinook),
         "--json", question],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "answered", doc["reason"]
    assert numeric_match(doc["answer"], str(truth)), (doc["answer"], truth, doc["actions"])
    assert result.returncode == 0
    # the default SQL agent grounds the plan into queries written from the schema prompt
    assert doc["actions"] and {a["tool"] for a in doc["actions"]} == {"SQLQuery"}


@pytest.mark.model
def test_the_langgraph_example_prints_the_true_answer(default_gguf: Path) -> None:
    truth = TASK_ANSWERS[example_task()]
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "embed_in_langgraph.py")],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL, check=False,
        cwd=ROOT)
    assert result.returncode == 0, result.stderr
    answers = re.findall(r"^answer: (.*?) \(answered: ", result.stdout, re.MULTILINE)
    assert answers, result.stdout
    assert numeric_match(answers[0], str(truth)), result.stdout


@pytest.mark.model
def test_the_model_per_role_example_prints_the_true_answer(default_gguf: Path) -> None:
    out = run_example("model_per_role.py")
    answers = re.findall(r"^answer: (.*?) \[answered\]$", out, re.MULTILINE)
    assert answers and numeric_match(answers[0], str(TASK_ANSWERS[roles_task()])), out


@pytest.mark.model
def test_the_chat_model_example_answers_its_three_questions(default_gguf: Path) -> None:
    lines = run_example("chat_model_alone.py").splitlines()
    assert "Paris" in lines[0]  # the capital of France
    assert [n.strip() for n in lines[1].split(",")] == ["1", "2", "3", "4", "5"]
    assert lines[2] == "yes"  # 17 is prime; the grammar admits only yes or no
