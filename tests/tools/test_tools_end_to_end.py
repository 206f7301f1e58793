"""The qa, sql and vqa tool sets end to end: the real default model, real databases, a real
knowledge base and real OCR, through the command line, offline.

The model's answers are not asserted (a 0.5B model is often wrong); what a user would notice
is: the run finishes with a documented status, the tools were really called on their data, a
write is refused by the database, and nothing crashes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from lumos_graph.evaluation.sample_data import build_chinook
from tests.sql_fixtures import chinook_fixture

pytestmark = pytest.mark.model


def ask(*args: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "lumos_graph", "ask", "--json", *args],
                            capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert "Traceback" not in result.stderr, result.stderr
    doc = json.loads(result.stdout)
    assert result.returncode == (0 if doc["status"] == "answered" else 1)
    return doc


@pytest.fixture(scope="module")
def chinook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_chinook(chinook_fixture(), tmp_path_factory.mktemp("db") / "chinook.sqlite")


def test_sql_question_runs_real_sql_on_chinook(chinook: Path, default_gguf: Path) -> None:
    doc = ask("--tools", "sql", "--db", str(chinook), "How many tracks are longer than 5 minutes?")
    queries = [a for a in doc["actions"] if a["tool"] == "SQLQuery"]
    assert queries, doc["actions"]
    first = queries[0]
    if first["error"] is None:  # the observation is what the database itself returns
        with closing(sqlite3.connect(chinook)) as conn:
            rows = conn.execute(first["resolved_args"][0]).fetchall()
        if len(rows) == 1 and len(rows[0]) == 1:
            assert first["result"] == [str(rows[0][0])]
    else:
        assert first["error"].count("\n") == 0  # one readable line for the model


def test_a_write_is_refused_by_the_database(chinook: Path, default_gguf: Path) -> None:
    before = hashlib.sha256(chinook.read_bytes()).hexdigest()
    doc = ask("--tools", "sql", "--db", str(chinook),
              "Delete every track of the genre Rock from the database.")
    errors = [a["error"] or "" for a in doc["actions"]]
    if any(a["tool"] == "SQLQuery" and "DELETE" in a["args"].upper() for a in doc["actions"]):
        assert any("read-only" in e for e in errors), errors
    assert hashlib.sha256(chinook.read_bytes()).hexdigest() == before


def test_qa_answers_from_a_knowledge_base_of_ones_own_documents(
    tmp_path: Path, default_gguf: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lighthouse.md").write_text(
        "# Korsholm Lighthouse\n\nThe Korsholm Lighthouse stands on the island of Valso. It was "
        "built in 1897 by the engineer Maria Lindqvist and is 34 metres tall.\n")
    (docs / "bakery.txt").write_text("The Ostrava Bakery opened in 1921 and sells rye bread.\n")
    kb = tmp_path / "kb.sqlite"
    index = subprocess.run([sys.executable, "-m", "lumos_graph", "index", str(docs), "--kb",
                            str(kb)], capture_output=True, text=True, timeout=120)
    assert index.returncode == 0, index.stderr
    assert "2 added" in index.stdout
    doc = ask("--tools", "qa", "--kb", str(kb), "Who built the Korsholm Lighthouse?")
    queries = [a for a in doc["actions"] if a["tool"] == "KnowledgeQuery" and not a["error"]]
    assert queries, doc["actions"]
    assert "Korsholm Lighthouse" in queries[0]["result"][0]
    assert doc["mode"] == "iterative"  # the qa tools default to LUMOS-I


def test_vqa_reads_the_text_of_an_image_with_ocr(tmp_path: Path, default_gguf: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (520, 160), "white")
    ImageDraw.Draw(image).text((30, 50), "CLOSED ON SUNDAY", fill="black",
                               font=ImageFont.load_default(size=40))
    path = tmp_path / "sign.png"
    image.save(path)
    doc = ask("--tools", "vqa", "--image", str(path), "What does the sign say?")
    looks = [a for a in doc["actions"] if a["tool"] == "VQA"]
    assert looks, doc["actions"]
    assert "SUNDAY" in (looks[0]["result"] or [""])[0].upper()
