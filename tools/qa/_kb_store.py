"""The SQLite layout of a knowledge base and the statements that change it.

One file holds ``documents`` (one row per source, with the content hash that makes indexing
incremental and the *root* it was indexed under), ``passages`` (the searchable pieces of each
document) and ``passages_fts``, an FTS5 index kept in step with ``passages`` by triggers.
Writers change the index only inside :func:`transaction`, a batch at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lumos_graph.errors import ConfigError
from lumos_graph.tools.qa._kb_sources import Document
from lumos_graph.tools.qa._kb_text import split_passages

__all__ = [
    "SEARCH",
    "TOKENIZER",
    "Tally",
    "check_schema",
    "delete",
    "store",
    "transaction",
]

APPLICATION_ID = 0x4C4B4231  # "LKB1" in the SQLite header marks a lumos-graph knowledge base
SCHEMA_VERSION = 1
TOKENIZER = "porter unicode61 remove_diacritics 2"
TITLE_WEIGHT = 3.0  # a query word in the title counts this many times one in the text
SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    root TEXT NOT NULL,
    hash TEXT NOT NULL,
    title TEXT NOT NULL,
    url TEXT NOT NULL
);
CREATE INDEX documents_root ON documents (root);
CREATE TABLE passages (
    id INTEGER PRIMARY KEY,
    document INTEGER NOT NULL REFERENCES documents (id),
    title TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX passages_document ON passages (document);
CREATE VIRTUAL TABLE passages_fts USING fts5 (
    title, text, content = 'passages', content_rowid = 'id', tokenize = '{TOKENIZER}'
);
CREATE TRIGGER passages_added AFTER INSERT ON passages BEGIN
    INSERT INTO passages_fts (rowid, title, text) VALUES (new.id, new.title, new.text);
END;
CREATE TRIGGER passages_removed AFTER DELETE ON passages BEGIN
    INSERT INTO passages_fts (passages_fts, rowid, title, text)
    VALUES ('delete', old.id, old.title, old.text);
END;
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
"""
SEARCH = f"""
SELECT p.title, p.text, d.url, d.source, bm25(passages_fts, {TITLE_WEIGHT}, 1.0) AS rank
FROM passages_fts
JOIN passages AS p ON p.id = passages_fts.rowid
JOIN documents AS d ON d.id = p.document
WHERE passages_fts MATCH ?
ORDER BY rank
LIMIT ?
"""


@dataclass
class Tally:
    """What one indexing run did so far (documents seen, counts, skipped ones and why)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    seen: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def check_schema(db: sqlite3.Connection, path: Path) -> None:
    """Accept a knowledge base of this schema version; turn an empty file into one."""
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    empty = app_id == 0 and is_empty(db)
    if empty:
        try:
            with transaction(db):  # IMMEDIATE: two processes never both create it
                if is_empty(db):
                    create_schema(db)
            # WAL: searches go on while an index is being built
            db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as error:
            raise ConfigError(f"cannot create a knowledge base at {path}: {error}") from error
        return
    if app_id != APPLICATION_ID:
        raise ConfigError(
            f"{path} is an SQLite database but not a lumos-graph knowledge base; "
            "give another path"
        )
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        raise ConfigError(
            f"{path} was built by another version of lumos-graph (schema {version}, "
            f"this one reads {SCHEMA_VERSION}); delete it and index again"
        )


def is_empty(db: sqlite3.Connection) -> bool:
    """Whether the database has no tables yet (a new or zero-byte file)."""
    return db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: committed when the block ends, rolled back on any exception
    (``KeyboardInterrupt`` included), so the index only ever holds whole batches."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def create_schema(db: sqlite3.Connection) -> None:
    """Create the tables, index and triggers (inside the caller's transaction)."""
    try:
        for statement in statements(SCHEMA):
            db.execute(statement)
    except sqlite3.OperationalError as error:
        if "fts5" in str(error):
            raise ConfigError(
                "this Python's SQLite has no FTS5 full-text search; use a Python build "
                "with a newer SQLite"
            ) from error
        raise


def statements(script: str) -> list[str]:
    """The statements of a script (``CREATE TRIGGER ... END;`` kept whole)."""
    out: list[str] = []
    buffer = ""
    for line in script.strip().splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            out.append(buffer.strip())
            buffer = ""
    return out


def content_hash(doc: Document) -> str:
    """What decides whether a document changed: its title, credit and text."""
    content = "\x00".join((doc.title, doc.credit, doc.text)).encode("utf-8", "surrogatepass")
    return hashlib.sha256(content).hexdigest()


def store(db: sqlite3.Connection, doc: Document, root: str, tally: Tally) -> None:
    """Add, replace or skip one document (inside the caller's transaction)."""
    if doc.source in tally.seen:
        tally.problems.append(f"{doc.source}: skipped, the same source came twice")
        return
    passages = split_passages(doc.text)
    if not passages:
        tally.problems.append(f"{doc.source}: skipped, no text")
        return
    tally.seen.add(doc.source)
    fingerprint = content_hash(doc)
    row = db.execute(
        "SELECT id, hash, root FROM documents WHERE source = ?", (doc.source,)
    ).fetchone()
    if row is not None and row[1] == fingerprint:
        if root and row[2] != root:
            db.execute("UPDATE documents SET root = ? WHERE id = ?", (root, row[0]))
        tally.unchanged += 1
        return
    if row is None:
        cursor = db.execute(
            "INSERT INTO documents (source, root, hash, title, url) VALUES (?, ?, ?, ?, ?)",
            (doc.source, root, fingerprint, doc.title, doc.url),
        )
        doc_id = cursor.lastrowid
        tally.added += 1
    else:
        doc_id = row[0]
        db.execute("DELETE FROM passages WHERE document = ?", (doc_id,))
        db.execute(
            "UPDATE documents SET root = ?, hash = ?, title = ?, url = ? WHERE id = ?",
            (root or row[2], fingerprint, doc.title, doc.url, doc_id),
        )
        tally.updated += 1
    db.executemany(
        "INSERT INTO passages (document, title, text) VALUES (?, ?, ?)",
        [(doc_id, doc.title, text) for text in passages],
    )


def delete(db: sqlite3.Connection, doc_id: int) -> None:
    """Remove one document and its passages (inside the caller's transaction)."""
    db.execute("DELETE FROM passages WHERE document = ?", (doc_id,))
    db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
