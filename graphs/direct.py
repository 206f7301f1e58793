"""The ``direct`` baseline: the model answers alone, without the LUMOS modules.

```
START -> answer -> END
```
Two forms, by task kind:

* **chain of thought** (maths, yes/no, QA): the model thinks step by step and its
  ``Answer: ...`` line is the answer (:func:`~lumos_graph.agent.protocol.direct_prompt`;
  that prompt is kept as it is: a few-shot version made the small model reason less on maths);
* **text-to-SQL** (``db=...``): the standard text-to-SQL baseline. The model writes one query
  from a schema prompt (every table's ``CREATE TABLE`` line and a few rows,
  :func:`~lumos_graph.tools.sql.samples.schema_with_samples`), the query is executed once,
  read-only, by the same ``SQLQuery`` action the LUMOS agents use, and its result is the
  answer. The run's ``actions`` hold that one query, so ``lumos-graph eval`` scores it by
  execution match like any agent's last query.

It shares the LUMOS state's output keys (``answer``, ``status``, ``reason``, ``usage``,
``actions``), so ``lumos-graph eval`` scores it the same way; ``output`` holds the model's reply.
"""

from __future__ import annotations

import operator
import os
import time
from functools import partial
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from lumos_graph.agent import protocol
from lumos_graph.agent.actions import Action, as_values
from lumos_graph.agent.execution import describe_error
from lumos_graph.agent.model_calls import call_model
from lumos_graph.agent.state import ActionRecord, Status, Usage, add_usage

__all__ = ["DirectState", "create_direct_agent", "direct_sql_prompt", "parse_sql_reply"]

def direct_sql_prompt(schema: str, question: str) -> list[dict[str, str]]:
    """The text-to-SQL conversation (:func:`~lumos_graph.agent.protocol.sql_prompt`)."""
    return protocol.sql_prompt(schema, question)


parse_sql_reply = protocol.parse_sql


# ---- the graph -------------------------------------------------------------------------------
class DirectState(TypedDict, total=False):
    """Input ``task``; output ``answer``, ``status``, ``reason``, ``output`` and ``usage``
    (and, for SQL, the executed query in ``actions``)."""

    task: str
    images: list[Any]  # accepted and ignored: the baseline has no eyes
    output: str
    answer: str | None
    status: Status
    reason: str
    usage: Annotated[Usage, add_usage]
    errors: Annotated[list[str], operator.add]
    actions: Annotated[list[ActionRecord], operator.add]


def create_direct_agent(
    model: BaseChatModel,
    *,
    max_tokens: int = 512,
    name: str = "direct",
    db: str | os.PathLike[str] | None = None,
    sample_rows: int = 3,
) -> CompiledStateGraph:
    """A one-node graph: the model's one reply is the answer.

    Args:
        model: any chat model.
        max_tokens: the reply's budget.
        name: the graph's name.
        db: a database (SQLite file or SQLAlchemy URL): the model writes one SQL query from
            the schema and ``sample_rows`` rows per table, and its executed result is the
            answer. Without ``db``: chain of thought and an ``Answer: ...`` line.
        sample_rows: rows per table in the SQL schema prompt.

    Raises:
        ConfigError: ``db`` cannot be read, before any model runs.
    """
    builder = StateGraph(DirectState)
    if db is None:
        node = partial(_answer, model=model, max_tokens=max_tokens)
    else:
        from lumos_graph.tools.sql.actions import sql_actions
        from lumos_graph.tools.sql.samples import schema_with_samples

        query_action = sql_actions(db).get("SQLQuery")
        assert query_action is not None
        schema = schema_with_samples(db, rows=sample_rows)
        node = partial(_answer_sql, model=model, max_tokens=max_tokens, schema=schema,
                       action=query_action)
    builder.add_node("answer", node)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder.compile(name=name)


def _answer(state: DirectState, model: BaseChatModel, max_tokens: int) -> dict[str, Any]:
    prompt = protocol.direct_prompt(state["task"])
    reply = call_model(model, prompt, max_tokens=max_tokens)
    if reply.text is None:
        return {"usage": reply.usage, "status": "failed", "answer": None,
                "reason": f"the model failed: {reply.error}"}
    answer = protocol.parse_direct_answer(reply.text)
    if answer is None:
        return {"usage": reply.usage, "output": reply.text, "status": "failed", "answer": None,
                "errors": ["no 'Answer: ...' line"],
                "reason": "the reply has no 'Answer: ...' line"}
    return {"usage": reply.usage, "output": reply.text, "status": "answered", "answer": answer,
            "reason": "answered in one reply"}


def _answer_sql(state: DirectState, model: BaseChatModel, max_tokens: int, schema: str,
                action: Action) -> dict[str, Any]:
    reply = call_model(model, direct_sql_prompt(schema, state["task"]), max_tokens=max_tokens)
    if reply.text is None:
        return {"usage": reply.usage, "status": "failed", "answer": None,
                "reason": f"the model failed: {reply.error}"}
    query = parse_sql_reply(reply.text)
    if query is None:
        return {"usage": reply.usage, "output": reply.text, "status": "failed", "answer": None,
                "errors": ["no SQL query"], "reason": "the reply holds no SQL query"}
    record, answer = _run_once(action, query)
    update: dict[str, Any] = {"usage": reply.usage, "output": reply.text, "actions": [record]}
    if answer is None:
        return {**update, "status": "failed", "answer": None,
                "reason": f"the query failed: {record['error']}"}
    return {**update, "status": "answered", "answer": answer,
            "reason": "the query was executed once"}


def _run_once(action: Action, query: str) -> tuple[ActionRecord, str | None]:
    """Execute ``query`` with the ``SQLQuery`` action; the record and the result text.

    The action's executor is called directly, not through the LUMOS variable substitution:
    a column called ``R1`` is a column here, not a result reference.
    """
    record: ActionRecord = {"subgoal": None, "outputs": ["R1"], "tool": action.name,
                            "args": query, "resolved_args": [query], "result": None,
                            "error": None, "seconds": 0.0}
    started = time.perf_counter()
    try:
        values = as_values(action.executor(query))
    except Exception as exc:  # noqa: BLE001 - a failing query is the baseline's answer
        record["error"] = describe_error(exc)
        return record, None
    finally:
        record["seconds"] = round(time.perf_counter() - started, 6)
    record["result"] = [v.shown() for v in values[:1]]
    return record, values[0].text if values else ""
