"""Web search for LUMOS's complex-QA tools, with a disk cache and a local fallback.

:class:`WebSearch` asks a backend (by default ``ddgs``, a metasearch client that needs no API
key) and turns its results into :class:`~lumos_graph.tools.qa.knowledge.Passage` s crediting the
result's URL. Answers are cached on disk for a week, keyed by the normalized query, so reruns
of an evaluation are fast and polite. Timeouts and dropped connections are retried a bounded
number of times with exponential backoff.

When the web cannot answer (rate limited, timed out, no network, no results) the search falls
back to a local :class:`~lumos_graph.tools.qa.knowledge.KnowledgeBase` if one is given, and the
first passage's ``note`` says so; without one it raises
:class:`~lumos_graph.errors.ToolError` with a one-line reason the model can read.

A backend is any ``backend(query, max_results) -> list[dict]`` returning dicts with ``title``,
``href`` and ``body``. It returns ``[]`` for no results and signals trouble by raising
:class:`RateLimitError`, ``TimeoutError`` or ``ConnectionError`` (the last two are retried);
any other exception is a failure reported as it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lumos_graph.errors import ConfigError, ToolError
from lumos_graph.llm.files import model_cache_dir
from lumos_graph.tools.qa.knowledge import KnowledgeBase, Passage

__all__ = ["Backend", "RateLimitError", "WebSearch", "ddgs_backend", "default_cache_dir"]

Backend = Callable[[str, int], list[dict[str, Any]]]

_WEEK = 7 * 24 * 3600.0
_CACHE_FILE = "websearch.sqlite"
_CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    query TEXT PRIMARY KEY,
    max_results INTEGER NOT NULL,
    passages TEXT NOT NULL,
    created REAL NOT NULL
)
"""
_DETAIL_CHARS = 100
log = logging.getLogger(__name__)


class RateLimitError(Exception):
    """A backend's signal that the search service refuses queries for now (not retried)."""


@dataclass(frozen=True)
class _Unavailable:
    """Why the web gave no passages: ``reason`` fits "web search unavailable (reason)"."""

    reason: str
    no_results: bool = False


def default_cache_dir() -> Path:
    """``$LUMOS_GRAPH_HOME/websearch`` (by default ``~/.cache/lumos-graph/websearch``)."""
    return model_cache_dir().parent / "websearch"


def _now() -> float:
    return time.time()


def _normalize(query: str) -> str:
    return " ".join(query.split())


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


def ddgs_backend(timeout: float = 10.0) -> Backend:
    """A backend on ``ddgs`` (DuckDuckGo and other engines, no API key).

    ddgs reports everything as ``DDGSException``; this turns its rate limits into
    :class:`RateLimitError`, its timeouts into ``TimeoutError``, "No results found." into
    ``[]`` and other failures (mostly network errors) into ``ConnectionError``.
    """

    def search(query: str, max_results: int) -> list[dict[str, Any]]:
        try:
            from ddgs import DDGS
            from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException
        except ImportError as error:  # pragma: no cover - ddgs is a dependency
            raise ConfigError("web search needs ddgs: pip install ddgs") from error
        try:
            # ddgs annotates timeout as int; its HTTP client (primp) takes a float
            client = DDGS(timeout=timeout)  # type: ignore[arg-type]
            return client.text(query, max_results=max_results)
        except RatelimitException as error:
            raise RateLimitError(_one_line(error)) from error
        except TimeoutException as error:
            raise TimeoutError(_one_line(error)) from error
        except DDGSException as error:
            # ddgs 9.x also says this when every engine answered non-200 (a quiet rate limit)
            if "no results" in str(error).lower():
                return []
            raise ConnectionError(_one_line(error)) from error

    return search


class WebSearch:
    """Search the web; results become passages, cached on disk, with a local fallback.

    Args:
        cache_dir: folder of the result cache; default :func:`default_cache_dir`.
        timeout: seconds one backend call may take.
        retries: further attempts after a timeout or connection error.
        max_results: passages per search at most.
        backend: ``backend(query, max_results) -> list[dict]``; default :func:`ddgs_backend`.
        fallback: a knowledge base searched when the web cannot answer.
        cache_ttl: seconds a cached answer stays valid (default a week); 0 disables the cache.
        backoff: seconds before the first retry, doubled for each further one.

    Raises:
        ConfigError: a setting is out of range or the cache folder cannot be created.
    """

    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        max_results: int = 5,
        backend: Backend | None = None,
        fallback: KnowledgeBase | None = None,
        cache_ttl: float = _WEEK,
        backoff: float = 1.0,
    ) -> None:
        checks = {
            "timeout": (timeout, timeout > 0),
            "retries": (retries, retries >= 0),
            "max_results": (max_results, max_results >= 1),
            "cache_ttl": (cache_ttl, cache_ttl >= 0),
            "backoff": (backoff, backoff >= 0),
        }
        for name, (value, ok) in checks.items():
            if not ok:
                raise ConfigError(f"WebSearch {name} is out of range: {value!r}")
        self.timeout = timeout
        self.retries = retries
        self.max_results = max_results
        self.backend = backend or ddgs_backend(timeout)
        self.fallback = fallback
        self.cache_ttl = cache_ttl
        self.backoff = backoff
        self.cache_path: Path | None = None
        if cache_ttl > 0:
            folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ConfigError(
                    f"cannot create the web search cache folder {folder}: {error}"
                ) from error
            self.cache_path = folder / _CACHE_FILE

    def search(self, query: str) -> list[Passage]:
        """Passages for ``query``: from the cache, the web, or the fallback knowledge base.

        Raises:
            ToolError: the query is empty, or the web cannot answer and there is no fallback
                (or it has nothing either); the message is one line for the model.
        """
        normalized = _normalize(query)
        if not normalized:
            raise ToolError("web search needs a query; got empty text")
        cached = self._cached(normalized)
        if cached is not None:
            return cached
        outcome = self._ask(normalized)
        if isinstance(outcome, list):
            self._remember(normalized, outcome)
            return outcome
        return self._fall_back(normalized, outcome)

    # ------------------------------------------------------------------ the backend

    def _ask(self, query: str) -> list[Passage] | _Unavailable:
        """Call the backend, retrying transient failures; passages or why there are none."""
        last = "no answer"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                results = self.backend(query, self.max_results)
            except RateLimitError:
                return _Unavailable("rate limited")
            except (TimeoutError, ConnectionError, OSError) as error:
                log.info("web search attempt %d failed: %r", attempt + 1, error)
                tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                last = (
                    f"timed out after {tries} of {self.timeout:g} s"
                    if isinstance(error, TimeoutError)
                    else f"no connection: {_one_line(error)}"
                )
                continue
            except Exception as error:  # noqa: BLE001 - a backend's bug reaches the model as text
                return _Unavailable(f"failed: {type(error).__name__}: {_one_line(error)}")
            passages = _passages(results, self.max_results)
            return passages if passages else _Unavailable("no results", no_results=True)
        return _Unavailable(last)

    def _fall_back(self, query: str, why: _Unavailable) -> list[Passage]:
        said = "web search found no results" if why.no_results else (
            f"web search unavailable ({why.reason})"
        )
        if self.fallback is None:
            raise ToolError(f"{said} for {query!r}" if why.no_results else said)
        found = self.fallback.search(query, self.max_results)
        if not found:
            raise ToolError(f"{said}, and the local knowledge base has nothing on {query!r}")
        note = f"{said}; results from the local knowledge base"
        return [dataclasses.replace(found[0], note=note), *found[1:]]

    # ------------------------------------------------------------------ the cache

    def _cached(self, query: str) -> list[Passage] | None:
        if self.cache_path is None:
            return None
        try:
            with self._cache() as db:
                row = db.execute(
                    "SELECT max_results, passages, created FROM results WHERE query = ?",
                    (query.casefold(),),
                ).fetchone()
        except sqlite3.Error as error:  # a broken cache must not break searching
            log.warning("web search cache unreadable (%s): %s", self.cache_path, error)
            return None
        if row is None or row[0] < self.max_results or _now() - row[2] > self.cache_ttl:
            return None
        return [Passage(**item) for item in json.loads(row[1])][: self.max_results]

    def _remember(self, query: str, passages: list[Passage]) -> None:
        if self.cache_path is None:
            return
        payload = json.dumps([dataclasses.asdict(p) for p in passages], ensure_ascii=False)
        try:
            with self._cache() as db:
                db.execute(
                    "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)",
                    (query.casefold(), self.max_results, payload, _now()),
                )
        except sqlite3.Error as error:
            log.warning("web search cache not written (%s): %s", self.cache_path, error)

    @contextlib.contextmanager
    def _cache(self) -> Iterator[sqlite3.Connection]:
        assert self.cache_path is not None
        db = sqlite3.connect(self.cache_path, timeout=10.0, isolation_level=None)
        try:
            db.execute(_CACHE_SCHEMA)
            yield db
        finally:
            db.close()


def _passages(results: object, limit: int) -> list[Passage]:
    """Titled passages of backend results (``title``/``href``/``body``), one per URL."""
    passages: list[Passage] = []
    seen: set[str] = set()
    for item in results if isinstance(results, list) else []:
        if not isinstance(item, dict):
            continue
        url = str(item.get("href") or item.get("url") or "").strip()
        text = " ".join(str(item.get("body") or item.get("snippet") or "").split())
        title = " ".join(str(item.get("title") or "").split())
        if not text or url in seen:
            continue
        seen.add(url)
        passages.append(Passage(title=title or url, text=text, source=url or "web"))
    return passages[:limit]
