"""Reading indexable documents from disk: a folder of text/markdown files, a JSONL file, one file.

Each source becomes a :class:`Scan`: the documents it holds (read lazily, one at a time, so a
large folder is never in memory), how many there will be (for progress), and the *root* every
document is filed under, which lets a later scan of the same path notice what disappeared.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lumos_graph.errors import ConfigError

__all__ = ["TEXT_SUFFIXES", "Document", "Scan", "scan_path"]

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)[ \t#]*$", re.MULTILINE)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*\n", re.DOTALL)
_FRONT_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class Document:
    """A unit of indexing: one file, one JSONL line, one encyclopedia article.

    Attributes:
        title: shown before each of its passages (``Title: text``).
        text: the full text; the knowledge base splits it into passages.
        source: the document's identity in the index (an absolute path, ``path#id``,
            ``wikipedia:Title``); adding a document with a known source replaces it.
        url: what its passages credit as their source; defaults to ``source``.
    """

    title: str
    text: str
    source: str
    url: str = ""

    @property
    def credit(self) -> str:
        """What passages of this document show as their source."""
        return self.url or self.source


@dataclass
class Scan:
    """The documents of one indexed path.

    Attributes:
        root: the key documents are filed under (the absolute path indexed).
        total: how many documents ``documents`` will yield at most (for progress).
        documents: a one-shot iterator of the documents.
        problems: what was skipped and why (filled while ``documents`` is consumed).
    """

    root: str
    total: int
    documents: Iterator[Document]
    problems: list[str]


def scan_path(path: str | os.PathLike[str]) -> Scan:
    """Open a folder, a JSONL file or a single text file for indexing.

    Raises:
        ConfigError: the path does not exist or is neither a folder nor a file.
    """
    target = Path(path).expanduser()
    if not target.exists():
        raise ConfigError(f"nothing to index: {target} does not exist")
    target = target.resolve()
    problems: list[str] = []
    if target.is_dir():
        files = _text_files(target)
        return Scan(str(target), len(files), _read_files(files, problems), problems)
    if not target.is_file():
        raise ConfigError(f"cannot index {target}: not a folder or a regular file")
    if target.suffix.lower() in _JSONL_SUFFIXES:
        total = _count_lines(target)
        return Scan(str(target), total, _read_jsonl(target, problems), problems)
    return Scan(str(target), 1, _read_files([target], problems), problems)


def _text_files(folder: Path) -> list[Path]:
    """Text and markdown files under ``folder``, hidden files and folders left out, sorted."""
    found: list[Path] = []
    for parent, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(
            Path(parent, n)
            for n in names
            if not n.startswith(".") and n.lower().endswith(TEXT_SUFFIXES)
        )
    return sorted(found)


def _read_files(files: list[Path], problems: list[str]) -> Iterator[Document]:
    for file in files:
        try:
            raw = file.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            problems.append(f"{file}: skipped, cannot read it as UTF-8 text ({error})")
            continue
        title, text = _title_and_body(raw, default=file.stem)
        if text.strip():
            yield Document(title=title, text=text, source=str(file))


def _title_and_body(raw: str, *, default: str) -> tuple[str, str]:
    """The title of a text file (front matter ``title:``, first markdown heading, ``default``)
    and its text without front matter and without a heading that opens the file."""
    text = raw.replace("\r\n", "\n")
    title = ""
    front = _FRONT_MATTER.match(text)
    if front:
        named = _FRONT_TITLE.search(front.group(1))
        title = named.group(1).strip("'\"") if named else ""
        text = text[front.end() :]
    heading = _HEADING.search(text)
    if heading and not title:
        title = heading.group(1).strip()
        if not text[: heading.start()].strip():  # the heading opens the file: it is the title
            text = text[heading.end() :]
    return " ".join(title.split()) or default, text


def _count_lines(file: Path) -> int:
    try:
        with file.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError as error:
        raise ConfigError(f"cannot read {file}: {error}") from error


def _read_jsonl(file: Path, problems: list[str]) -> Iterator[Document]:
    """Documents of a JSONL file: objects with ``text`` and optional ``title``/``id``/``url``."""

    def note(number: int, why: str) -> None:
        problems.append(f"{file}:{number}: {why}")

    with file.open(encoding="utf-8-sig", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                note(number, f"skipped, not JSON ({error.msg})")
                continue
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                note(number, 'skipped, not an object with a "text" string')
                continue
            if not item["text"].strip():
                note(number, "skipped, empty text")
                continue
            key = item.get("id")
            title = item.get("title")
            url = item.get("url")
            yield Document(
                title=" ".join(str(title).split()) if title else file.stem,
                text=item["text"],
                source=f"{file}#{key if key not in (None, '') else number}",
                url=str(url) if url else "",
            )
