"""Web search without the web: results become passages, the disk cache, retries, and what the
model reads when the web cannot answer (a local fallback, or a one-line error).

Every test fakes the search at its boundary: an injected ``backend=`` or ``ddgs``'s
``DDGS.text``. The socket guard of the conftest cannot catch ddgs (its HTTP client, primp, is
native code that opens its own sockets), so no test may let the real ``DDGS.text`` run.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lumos_graph.errors import ConfigError, ToolError
from lumos_graph.tools.qa import websearch
from lumos_graph.tools.qa.knowledge import KnowledgeBase
from lumos_graph.tools.qa.websearch import RateLimitError, WebSearch, default_cache_dir

Result = list[dict[str, Any]]

RESULTS: Result = [
    {"title": "Eiffel Tower - Wikipedia", "href": "https://en.wikipedia.org/wiki/Eiffel_Tower",
     "body": "The Eiffel Tower is a wrought-iron  lattice tower\non the Champ de Mars."},
    {"title": "Eiffel Tower height", "href": "https://example.org/height",
     "body": "It is 330 metres tall."},
    {"title": "Duplicate", "href": "https://example.org/height", "body": "Same URL again."},
    {"title": "Empty", "href": "https://example.org/empty", "body": ""},
]


class FakeBackend:
    """Answers with scripted results or raises scripted exceptions, recording every call."""

    def __init__(self, *script: Result | BaseException) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, query: str, max_results: int) -> Result:
        self.calls.append((query, max_results))
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, BaseException):
            raise step
        return step


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., WebSearch]:
    def make(backend: Callable[[str, int], Result] | None = None, **options: Any) -> WebSearch:
        options.setdefault("backoff", 0.0)
        return WebSearch(cache_dir=tmp_path / "cache", backend=backend, **options)

    return make


@pytest.fixture
def local_kb(tmp_path: Path) -> KnowledgeBase:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "eiffel.md").write_text(
        "# Eiffel Tower\n\nThe Eiffel Tower in Paris was completed in 1889.", encoding="utf-8"
    )
    (docs / "rome.md").write_text("# Rome\n\nRome is the capital of Italy.", encoding="utf-8")
    kb = KnowledgeBase(tmp_path / "local.sqlite")
    kb.index_path(docs)
    return kb


# ---------------------------------------------------------------------- results and the cache


def test_results_become_titled_passages_crediting_their_url(make: Callable[..., WebSearch]) -> None:
    backend = FakeBackend(RESULTS)
    passages = make(backend, max_results=3).search("  eiffel   tower ")

    assert backend.calls == [("eiffel tower", 3)]
    assert [(p.title, p.source) for p in passages] == [
        ("Eiffel Tower - Wikipedia", "https://en.wikipedia.org/wiki/Eiffel_Tower"),
        ("Eiffel Tower height", "https://example.org/height"),
    ]  # one passage per URL, none without text
    assert passages[0].render() == (
        "Eiffel Tower - Wikipedia: The Eiffel Tower is a wrought-iron lattice tower on the "
        "Champ de Mars."
    )


def test_a_repeated_query_is_answered_from_the_disk_cache(
    make: Callable[..., WebSearch],
) -> None:
    backend = FakeBackend(RESULTS)
    first = make(backend).search("Eiffel Tower")
    again = make(backend).search("eiffel  TOWER")  # a new instance: the cache is on disk

    assert len(backend.calls) == 1
    assert again == first


def test_cached_answers_expire_after_the_ttl(
    make: Callable[..., WebSearch], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = FakeBackend(RESULTS)
    clock = [1_000_000.0]
    monkeypatch.setattr(websearch, "_now", lambda: clock[0])
    search = make(backend)
    search.search("Eiffel Tower")
    clock[0] += 6 * 24 * 3600
    search.search("Eiffel Tower")
    assert len(backend.calls) == 1
    clock[0] += 2 * 24 * 3600  # eight days: older than the default week
    search.search("Eiffel Tower")
    assert len(backend.calls) == 2


def test_a_cache_ttl_of_zero_disables_the_cache(
    make: Callable[..., WebSearch], tmp_path: Path
) -> None:
    backend = FakeBackend(RESULTS)
    search = make(backend, cache_ttl=0)
    search.search("Eiffel Tower")
    search.search("Eiffel Tower")
    assert len(backend.calls) == 2
    assert not (tmp_path / "cache").exists()


def test_a_broken_cache_file_does_not_break_searching(
    make: Callable[..., WebSearch], tmp_path: Path
) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "websearch.sqlite").write_bytes(b"garbage " * 1000)
    assert make(FakeBackend(RESULTS)).search("Eiffel Tower")[0].title.startswith("Eiffel")


def test_failures_are_not_cached(make: Callable[..., WebSearch]) -> None:
    backend = FakeBackend(RateLimitError("429"), RESULTS)
    with pytest.raises(ToolError):
        make(backend).search("Eiffel Tower")
    assert make(backend).search("Eiffel Tower")
    assert len(backend.calls) == 2


# ---------------------------------------------------------------------- retries


def test_transient_failures_are_retried_with_backoff(
    make: Callable[..., WebSearch], monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(websearch.time, "sleep", sleeps.append)
    backend = FakeBackend(TimeoutError("read timed out"), ConnectionError("reset"), RESULTS)

    passages = make(backend, retries=2, backoff=0.5).search("Eiffel Tower")

    assert passages and len(backend.calls) == 3
    assert sleeps == [0.5, 1.0]


def test_retries_are_bounded_and_end_in_a_clear_message(make: Callable[..., WebSearch]) -> None:
    backend = FakeBackend(TimeoutError("read timed out"))
    with pytest.raises(ToolError) as caught:
        make(backend, retries=1, timeout=3).search("Eiffel Tower")
    assert len(backend.calls) == 2
    assert str(caught.value) == "web search unavailable (timed out after 2 attempts of 3 s)"


# ---------------------------------------------------------------------- when the web cannot answer


def test_a_rate_limit_falls_back_to_the_local_knowledge_base(
    make: Callable[..., WebSearch], local_kb: KnowledgeBase
) -> None:
    backend = FakeBackend(RateLimitError("202 Ratelimit"))
    passages = make(backend, fallback=local_kb).search("When was the Eiffel Tower completed?")

    assert len(backend.calls) == 1  # a refusal is not retried
    assert passages[0].title == "Eiffel Tower"
    assert passages[0].note == (
        "web search unavailable (rate limited); results from the local knowledge base"
    )
    assert passages[0].render().startswith(
        "(web search unavailable (rate limited); results from the local knowledge base)\n"
        "Eiffel Tower: The Eiffel Tower in Paris"
    )
    assert all(not p.note for p in passages[1:])


def test_no_results_fall_back_to_the_local_knowledge_base(
    make: Callable[..., WebSearch], local_kb: KnowledgeBase
) -> None:
    passages = make(FakeBackend([]), fallback=local_kb).search("capital of Italy")
    assert passages[0].title == "Rome"
    assert passages[0].note == "web search found no results; results from the local knowledge base"


def test_no_results_without_a_fallback_say_so(make: Callable[..., WebSearch]) -> None:
    with pytest.raises(ToolError, match=r"^web search found no results for 'xyzzy plugh'$"):
        make(FakeBackend([])).search("xyzzy plugh")


def test_a_fallback_with_nothing_either_is_a_tool_error(
    make: Callable[..., WebSearch], local_kb: KnowledgeBase
) -> None:
    with pytest.raises(ToolError, match="local knowledge base has nothing on 'quasar'"):
        make(FakeBackend(RateLimitError("429")), fallback=local_kb).search("quasar")


def test_a_broken_backend_reaches_the_model_as_one_line(make: Callable[..., WebSearch]) -> None:
    with pytest.raises(ToolError) as caught:
        make(FakeBackend(ValueError("bad\npayload"))).search("Eiffel Tower")
    assert str(caught.value) == "web search unavailable (failed: ValueError: bad payload)"


def test_an_empty_query_is_a_tool_error(make: Callable[..., WebSearch]) -> None:
    with pytest.raises(ToolError, match="needs a query"):
        make(FakeBackend(RESULTS)).search("  \n ")


# ---------------------------------------------------------------------- the ddgs backend


@pytest.fixture
def ddgs_text(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], list[dict[str, Any]]]:
    """Replace the real ``DDGS.text`` (never let it run) with a scripted one."""
    from ddgs.ddgs import DDGS

    calls: list[dict[str, Any]] = []
    outcome: list[Any] = [RESULTS]

    def text(self: DDGS, query: str, **kwargs: Any) -> list[dict[str, Any]]:
        calls.append({"query": query, "timeout": self._timeout, **kwargs})
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return list(outcome[0])

    monkeypatch.setattr(DDGS, "text", text)

    def script(result: Any) -> list[dict[str, Any]]:
        outcome[0] = result
        return calls

    return script


def test_the_default_backend_is_ddgs(
    make: Callable[..., WebSearch], ddgs_text: Callable[[Any], list[dict[str, Any]]]
) -> None:
    calls = ddgs_text(RESULTS)
    passages = make(None, timeout=4.0, max_results=2).search("Eiffel Tower")
    assert calls == [{"query": "Eiffel Tower", "timeout": 4.0, "max_results": 2}]
    assert passages[0].source == "https://en.wikipedia.org/wiki/Eiffel_Tower"


def test_without_network_the_ddgs_backend_gives_a_clear_message(
    make: Callable[..., WebSearch], ddgs_text: Callable[[Any], list[dict[str, Any]]]
) -> None:
    from ddgs.exceptions import DDGSException

    # what ddgs 9.16 raises offline: every engine failed, the last error is a DNS failure
    calls = ddgs_text(DDGSException(
        "DNSError: DNSError('error sending request for url (https://search.brave.com/search?"
        "q=Eiffel+Tower) > error resolving DNS > DNS error: no records found')"
    ))
    with pytest.raises(ToolError) as caught:
        make(None, retries=1).search("Eiffel Tower")
    message = str(caught.value)
    assert message.startswith("web search unavailable (no connection: DNSError")
    assert "\n" not in message and len(message) < 160
    assert len(calls) == 2  # retried once


def test_ddgs_rate_limits_timeouts_and_no_results_are_told_apart(
    make: Callable[..., WebSearch],
    ddgs_text: Callable[[Any], list[dict[str, Any]]],
    local_kb: KnowledgeBase,
) -> None:
    from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

    ddgs_text(RatelimitException("https://duckduckgo.com 202 Ratelimit"))
    limited = make(None, fallback=local_kb).search("Eiffel Tower")
    assert "(rate limited)" in limited[0].note
    ddgs_text(DDGSException("No results found."))
    nothing = make(None, fallback=local_kb).search("Eiffel Tower completed")
    assert nothing[0].note.startswith("web search found no results")
    ddgs_text(TimeoutException("timed out"))
    with pytest.raises(ToolError, match="timed out after 1 attempt of 10 s"):
        make(None, retries=0).search("Eiffel Tower height")


# ---------------------------------------------------------------------- setup mistakes


@pytest.mark.parametrize(
    "option",
    [{"timeout": 0}, {"retries": -1}, {"max_results": 0}, {"cache_ttl": -1}, {"backoff": -2}],
)
def test_settings_out_of_range_are_config_errors(
    make: Callable[..., WebSearch], option: dict[str, float]
) -> None:
    with pytest.raises(ConfigError, match=next(iter(option))):
        make(FakeBackend(RESULTS), **option)


def test_an_unusable_cache_folder_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(ConfigError, match="cache folder"):
        WebSearch(cache_dir=blocker / "cache", backend=FakeBackend(RESULTS))


def test_the_cache_lives_under_lumos_graph_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LUMOS_GRAPH_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "websearch"
    WebSearch(backend=FakeBackend(RESULTS)).search("Eiffel Tower")
    with sqlite3.connect(tmp_path / "websearch" / "websearch.sqlite") as db:
        assert db.execute("SELECT query FROM results").fetchall() == [("eiffel tower",)]
    db.close()
