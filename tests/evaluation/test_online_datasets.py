"""The benchmarks downloaded at run time (GSM8K, SVAMP, HotpotQA), against a local server.

No test reaches the real sources: small files in their published formats are served from
``127.0.0.1`` and ``$LUMOS_GRAPH_DATASET_MIRROR`` points the loaders there. The records follow
the first ones of the real files (HotpotQA's with 2-3 of their 10 paragraphs), plus a few
written in the same schema to cover a case; they were written without access to the sources.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lumos_graph.errors import ConfigError
from lumos_graph.evaluation._online_datasets import GSM8K_TEST, HOTPOTQA_DEV, SVAMP, source_url
from lumos_graph.evaluation.datasets import datasets_dir, list_datasets, load_dataset
from lumos_graph.evaluation.metrics import numeric_match, score

# ---- the fixture files, in the published formats -----------------------------------------------
GSM8K_LINES = [
    {"question": "Janet\u2019s ducks lay 16 eggs per day. She eats three for breakfast every "
                 "morning and bakes muffins for her friends every day with four. She sells the "
                 "remainder at the farmers' market daily for $2 per fresh duck egg. How much in "
                 "dollars does she make every day at the farmers' market?",
     "answer": "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = "
               "$<<9*2=18>>18 every day at the farmer\u2019s market.\n#### 18"},
    {"question": "A robe takes 2 bolts of blue fiber and half that much white fiber.  How many "
                 "bolts in total does it take?",
     "answer": "It takes 2/2=<<2/2=1>>1 bolt of white fiber\nSo the total amount of fabric is "
               "2+1=<<2+1=3>>3 bolts of fabric\n#### 3"},
    {"question": "Josh decides to try flipping a house.  He buys a house for $80,000 and then "
                 "puts in $50,000 in repairs.  This increased the value of the house by 150%.  "
                 "How much profit did he make?",
     "answer": "The cost of the house and repairs came out to 80,000+50,000=$<<80000+50000="
               "130000>>130,000\nHe increased the value of the house by 80,000*1.5=<<80000*1.5="
               "120000>>120,000\nSo the new value of the house is 120,000+80,000=$<<120000+80000"
               "=200000>>200,000\nSo he made a profit of 200,000-130,000=$<<200000-130000=70000"
               ">>70,000\n#### 70000"},
    # written for the test, in the same schema: a gold with a thousands separator
    {"question": "A shop sells 40 chairs for $30 each. How much money does it make?",
     "answer": "It makes 40*30=$<<40*30=1200>>1,200\n#### 1,200"},
]

SVAMP_RECORDS = [
    {"ID": "chal-1",
     "Body": "Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each "
             "pack",
     "Question": "How much do you have to pay to buy each pack?",
     "Equation": "( 76.0 - 25.0 )", "Answer": 51.0, "Type": "Subtraction"},
    {"ID": "chal-2",
     "Body": "Dan had $ 3 left with him after he bought a candy bar. If he had a total of $ 4 at "
             "the start",
     "Question": "How much did the candy bar cost?",
     "Equation": "( 4.0 - 3.0 )", "Answer": 1.0, "Type": "Subtraction"},
    # written for the test, in the same schema: an answer that is not a whole number
    {"ID": "chal-3",
     "Body": "Paco had 10 cookies. He shared them equally among 4 friends. ",
     "Question": " How many cookies did each friend get?",
     "Equation": "( 10.0 / 4.0 )", "Answer": 2.5, "Type": "Common-Division"},
]

HOTPOTQA_RECORDS = [
    {"_id": "5a8b57f25542995d1e6f1371",
     "answer": "yes",
     "question": "Were Scott Derrickson and Ed Wood of the same nationality?",
     "supporting_facts": [["Scott Derrickson", 0], ["Ed Wood", 0]],
     "context": [
         ["Ed Wood (film)", [("Ed Wood is a 1994 American biographical period comedy-drama film "
                              "directed and produced by Tim Burton, and starring Johnny Depp as "
                              "cult filmmaker Ed Wood."),
                             (" The film concerns the period in Wood's life when he made his "
                              "best-known films.")]],
         ["Scott Derrickson", [("Scott Derrickson (born July 16, 1966) is an American director, "
                                "screenwriter and producer."),
                               " He lives in Los Angeles, California."]],
         ["Ed Wood", [("Edward Davis Wood Jr. (October 10, 1924 \u2013 December 10, 1978) was "
                       "an American filmmaker, actor, writer, producer, and director.")]],
     ],
     "type": "comparison", "level": "hard"},
    {"_id": "5a8c7595554299585d9e36b6",
     "answer": "Chief of Protocol",
     "question": "What government position was held by the woman who portrayed Corliss Archer "
                 "in the film Kiss and Tell?",
     "supporting_facts": [["Kiss and Tell (1945 film)", 0], ["Shirley Temple", 0],
                          ["Shirley Temple", 1]],
     "context": [
         ["Kiss and Tell (1945 film)", [("Kiss and Tell is a 1945 American comedy film starring "
                                         "then 17-year-old Shirley Temple as Corliss Archer.")]],
         ["Shirley Temple", [("Shirley Temple Black (April 23, 1928 \u2013 February 10, 2014) "
                              "was an American actress, singer, dancer, businesswoman, and "
                              "diplomat."),
                             (" As an adult, she was named United States ambassador to Ghana and "
                              "to Czechoslovakia and also served as Chief of Protocol of the "
                              "United States.")]],
     ],
     "type": "bridge", "level": "hard"},
    {"_id": "5a85ea095542994775f606a8",
     "answer": "Animorphs",
     "question": "What science fantasy young adult series, told in first person, has a set of "
                 "companion books narrating the stories of enslaved worlds and alien species?",
     "supporting_facts": [["The Hork-Bajir Chronicles", 0], ["Animorphs", 0]],
     "context": [
         ["Animorphs", [("Animorphs is a science fantasy series of youth books written by "
                         "Katherine Applegate and her husband Michael Grant."), ""]],
         ["The Hork-Bajir Chronicles", [("The Hork-Bajir Chronicles is the second companion "
                                         "book to the \"Animorphs\" series.")]],
     ],
     "type": "bridge", "level": "medium"},
]


def _files() -> dict[str, bytes]:
    """The fixture files by their original names (what the mirror serves)."""
    jsonl = "\n".join(json.dumps(line) for line in GSM8K_LINES) + "\n"
    return {
        "test.jsonl": jsonl.encode(),
        "SVAMP.json": json.dumps(SVAMP_RECORDS, indent=4).encode(),
        "hotpot_dev_distractor_v1.json": json.dumps(HOTPOTQA_RECORDS).encode(),
    }


# ---- a local server standing in for GitHub and the HotpotQA site -------------------------------
@dataclass
class Mirror:
    url: str
    files: dict[str, bytes]
    requests: Counter[str] = field(default_factory=Counter)
    torn: set[str] = field(default_factory=set)  # sent cut short: half the announced bytes


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    state = Mirror("", _files())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            state.requests[name] += 1
            if name not in state.files:
                self.send_error(404)
                return
            body = state.files[name]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if name in state.torn else body)
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/"
    monkeypatch.setenv("LUMOS_GRAPH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LUMOS_GRAPH_DATASET_MIRROR", state.url)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _online() -> Path:
    return datasets_dir() / "online"


# ---- the registry -------------------------------------------------------------------------------
def test_the_online_sets_are_listed_with_their_official_sizes_and_sources() -> None:
    infos = {info.name: info for info in list_datasets()}
    got = {name: (infos[name].split, infos[name].kind, infos[name].size, infos[name].download)
           for name in ("gsm8k-test", "svamp-test", "hotpotqa-dev", "hotpotqa-distractor-dev")}
    assert got == {
        "gsm8k-test": ("test", "maths", 1319, GSM8K_TEST),
        "svamp-test": ("test", "maths", 1000, SVAMP),
        "hotpotqa-dev": ("dev", "qa", 7405, HOTPOTQA_DEV),
        "hotpotqa-distractor-dev": ("dev", "qa", 7405, HOTPOTQA_DEV),
    }
    assert GSM8K_TEST == ("https://raw.githubusercontent.com/openai/grade-school-math/master/"
                          "grade_school_math/data/test.jsonl")
    assert SVAMP == "https://raw.githubusercontent.com/arkilpatel/SVAMP/main/SVAMP.json"
    assert HOTPOTQA_DEV == "http://curtis.ml.cmu.edu/datasets/hotpot/hotpot_dev_distractor_v1.json"


def test_a_mirror_serves_the_same_file_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LUMOS_GRAPH_DATASET_MIRROR", raising=False)
    assert source_url(SVAMP) == SVAMP
    monkeypatch.setenv("LUMOS_GRAPH_DATASET_MIRROR", "file:///data/benchmarks/")
    assert source_url(SVAMP) == "file:///data/benchmarks/SVAMP.json"
    assert source_url(GSM8K_TEST) == "file:///data/benchmarks/test.jsonl"


# ---- conversion ---------------------------------------------------------------------------------
def test_gsm8k_gold_is_the_number_after_the_hashes(mirror: Mirror) -> None:
    items = load_dataset("gsm8k-test")
    by_id = {item["id"]: item for item in items}
    assert sorted(by_id) == [f"gsm8k-test-{n:04d}" for n in range(4)]
    assert [by_id[f"gsm8k-test-{n:04d}"]["answer"] for n in range(4)] == ["18", "3", "70000",
                                                                         "1200"]
    first = by_id["gsm8k-test-0000"]
    assert first["kind"] == "maths"
    assert first["question"].startswith("Janet\u2019s ducks lay 16 eggs per day.")
    assert first["solution"] == GSM8K_LINES[0]["answer"]
    assert score(first, "She makes $18.")["correct"]
    assert score(by_id["gsm8k-test-0003"], "$1,200")["correct"]


def test_svamp_joins_body_and_question_and_drops_the_trailing_zero(mirror: Mirror) -> None:
    by_id = {item["id"]: item for item in load_dataset("svamp-test")}
    assert set(by_id) == {"svamp-chal-1", "svamp-chal-2", "svamp-chal-3"}
    first = by_id["svamp-chal-1"]
    assert first == {
        "id": "svamp-chal-1",
        "question": "Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on "
                    "each pack How much do you have to pay to buy each pack?",
        "answer": "51",
        "kind": "maths",
        "solution": "( 76.0 - 25.0 )",
        "type": "Subtraction",
    }
    third = by_id["svamp-chal-3"]
    assert third["answer"] == "2.5" and numeric_match("5/2", third["answer"])
    assert third["question"] == ("Paco had 10 cookies. He shared them equally among 4 friends. "
                                 "How many cookies did each friend get?")


def test_hotpotqa_is_open_domain_unless_the_distractor_set_is_asked_for(mirror: Mirror) -> None:
    open_domain = load_dataset("hotpotqa-dev")
    distractor = load_dataset("hotpotqa-distractor-dev")
    assert [i["id"] for i in open_domain] == [i["id"] for i in distractor]  # same order
    assert {i["id"] for i in open_domain} == {f"hotpotqa-{r['_id']}" for r in HOTPOTQA_RECORDS}
    assert all(i["kind"] == "qa" and "context" not in i for i in open_domain)
    by_id = {item["id"]: item for item in distractor}
    yes = by_id["hotpotqa-5a8b57f25542995d1e6f1371"]
    assert (yes["answer"], yes["type"], yes["level"]) == ("yes", "comparison", "hard")
    assert yes["context"] == (
        "Ed Wood (film): Ed Wood is a 1994 American biographical period comedy-drama film "
        "directed and produced by Tim Burton, and starring Johnny Depp as cult filmmaker Ed "
        "Wood. The film concerns the period in Wood's life when he made his best-known films."
        "\n\n"
        "Scott Derrickson: Scott Derrickson (born July 16, 1966) is an American director, "
        "screenwriter and producer. He lives in Los Angeles, California."
        "\n\n"
        "Ed Wood: Edward Davis Wood Jr. (October 10, 1924 \u2013 December 10, 1978) was an "
        "American filmmaker, actor, writer, producer, and director.")
    # an empty sentence leaves no stray space
    animorphs = by_id["hotpotqa-5a85ea095542994775f606a8"]["context"]
    assert animorphs.startswith("Animorphs: Animorphs is a science fantasy series of youth "
                                "books written by Katherine Applegate and her husband Michael "
                                "Grant.\n\nThe Hork-Bajir Chronicles: ")
    # the qa metric scores a yes/no gold as it scores other short answers
    assert score(yes, "Yes")["correct"]
    chief = by_id["hotpotqa-5a8c7595554299585d9e36b6"]
    assert score(chief, "the Chief of Protocol")["correct"]
    assert 0 < score(chief, "Chief of Staff")["f1"] < 1


def test_items_come_in_hash_order_so_a_limit_is_a_fair_sample(mirror: Mirror) -> None:
    items = load_dataset("gsm8k-test")
    assert [i["id"] for i in items] != sorted(i["id"] for i in items)  # not the file's order
    assert load_dataset("gsm8k-test", limit=2) == items[:2]


# ---- downloads and the cache --------------------------------------------------------------------
def test_a_file_is_downloaded_once_and_then_read_from_the_cache(mirror: Mirror) -> None:
    first = load_dataset("hotpotqa-dev")
    load_dataset("hotpotqa-distractor-dev")  # the same file
    assert load_dataset("hotpotqa-dev") == first
    load_dataset("gsm8k-test")
    load_dataset("gsm8k-test")
    assert mirror.requests == {"hotpot_dev_distractor_v1.json": 1, "test.jsonl": 1}
    assert sorted(p.name for p in _online().iterdir()) == ["gsm8k_test.jsonl",
                                                           "hotpot_dev_distractor_v1.json"]


def test_offline_the_error_names_the_set_the_url_and_where_to_put_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("LUMOS_GRAPH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LUMOS_GRAPH_DATASET_MIRROR", f"http://127.0.0.1:{port}")
    with pytest.raises(ConfigError) as error:
        load_dataset("gsm8k-test")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"gsm8k-test: could not download http://127.0.0.1:{port}/test.jsonl"
                              " (")
    assert message.endswith(f"no network? Save that file as {_online() / 'gsm8k_test.jsonl'} and "
                            "run again")
    assert not any(_online().iterdir())  # nothing half-written is left


def test_a_missing_file_says_which_http_error(mirror: Mirror) -> None:
    del mirror.files["SVAMP.json"]
    with pytest.raises(ConfigError, match=r"^svamp-test: could not download \S+/SVAMP.json "
                                          r"\(HTTP 404 Not Found\)"):
        load_dataset("svamp-test")


def test_a_torn_download_is_never_used(mirror: Mirror) -> None:
    # a .part left by an earlier interrupted run is not mistaken for the file
    _online().mkdir(parents=True)
    (_online() / "SVAMP.json.abc.part").write_text('[{"ID": "chal-1"')
    mirror.torn.add("SVAMP.json")
    with pytest.raises(ConfigError, match="the connection closed before the whole file arrived"):
        load_dataset("svamp-test")
    assert not (_online() / "SVAMP.json").exists()
    assert [p.name for p in _online().iterdir()] == ["SVAMP.json.abc.part"]  # ours is removed
    mirror.torn.clear()
    assert len(load_dataset("svamp-test")) == 3
    assert mirror.requests["SVAMP.json"] == 2


def test_a_cached_file_in_another_format_is_reported_not_deleted(mirror: Mirror) -> None:
    _online().mkdir(parents=True)
    portal = _online() / "SVAMP.json"
    portal.write_text("<html>Sign in to the hotel Wi-Fi</html>")
    with pytest.raises(ConfigError, match=r"^svamp-test: .*SVAMP.json is not the file https://"
                                          r"raw.githubusercontent.com/\S+ serves \(JSONDecode"
                                          r"Error: .*\); delete it to download it again$"):
        load_dataset("svamp-test")
    assert portal.is_file() and not mirror.requests
