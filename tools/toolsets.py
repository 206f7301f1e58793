"""Named tool sets (``maths``, ``qa``, ``sql``, ``vqa``) and user tools, combined into one action set.

``create_actions("maths,sql", db="chinook.sqlite")`` is what ``lumos-graph ask --tools
maths,sql --db chinook.sqlite`` builds. Items may also be LangChain tools, plain typed
functions or :class:`~lumos_graph.agent.actions.Action` s, so a user's own tools join the named sets::

    create_actions(["qa", my_langchain_tool, my_function], model=llm)

The grounding prompt and grammar list exactly the actions of the result. Where two sets share
an action (``Calculator`` is in ``maths`` and ``qa``), it is listed once. A user's tools are
also functions of the same name inside ``Code`` (``Code(unit_price("apple") * 6)``); they run
in this process under ``Code``'s time limit (details in :mod:`lumos_graph.tools.sandbox`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool

from lumos_graph.agent.actions import Action, ActionSet
from lumos_graph.errors import ConfigError

__all__ = ["SQL_ACTIONS", "TOOL_SETS", "ToolLike", "create_actions", "is_maths_only",
           "is_sql_only", "parse_tool_names", "runs_in_code"]

TOOL_SETS = ("maths", "qa", "sql", "vqa")
ToolLike = str | Action | BaseTool | Callable[..., Any]


def parse_tool_names(text: str) -> list[str]:
    """``"maths, qa"`` -> ``["maths", "qa"]``; raises ConfigError for an unknown name."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"no tool set named; choose from {', '.join(TOOL_SETS)}")
    unknown = [n for n in names if n not in TOOL_SETS]
    if unknown:
        raise ConfigError(
            f"unknown tool set {', '.join(map(repr, unknown))}; choose from {', '.join(TOOL_SETS)}"
        )
    return list(dict.fromkeys(names))


def is_maths_only(actions: ActionSet | str | Sequence[ToolLike] | None) -> bool:
    """Whether ``actions`` are the ``maths`` tool set alone (``None`` is the default: maths).

    An :class:`ActionSet` counts when it has nothing but maths actions.
    """
    if actions is None:
        return True
    if isinstance(actions, ActionSet):
        from lumos_graph.tools.maths.actions import math_actions

        return set(actions.names) <= set(math_actions().names)
    if isinstance(actions, str):
        return parse_tool_names(actions) == ["maths"]
    return len(actions) == 1 and isinstance(actions[0], str) and actions[0].strip() == "maths"


SQL_ACTIONS = ("SQLQuery", "ListTables", "DescribeTable")


def is_sql_only(actions: ActionSet | str | Sequence[ToolLike] | None) -> bool:
    """Whether ``actions`` are the ``sql`` tool set alone (an :class:`ActionSet` counts when it
    has ``SQLQuery`` and nothing but the SQL actions)."""
    if actions is None:
        return False
    if isinstance(actions, ActionSet):
        return "SQLQuery" in actions.names and set(actions.names) <= set(SQL_ACTIONS)
    if isinstance(actions, str):
        return parse_tool_names(actions) == ["sql"]
    return len(actions) == 1 and isinstance(actions[0], str) and actions[0].strip() == "sql"


def runs_in_code(actions: ActionSet | str | Sequence[ToolLike] | None) -> bool:
    """Whether a Python program can do everything ``actions`` can: the ``maths`` set (with
    ``Code``) alone or with user tools, which ``Code`` calls as functions (see
    :func:`create_actions`). Other named sets (qa, sql, vqa) need their own actions.
    """
    if actions is None or isinstance(actions, str) or is_maths_only(actions):
        return is_maths_only(actions)
    if isinstance(actions, ActionSet):
        from lumos_graph.tools.maths.actions import math_actions

        functions = {a.name for a in actions.code_functions()}
        return "Code" in actions.names and set(actions.names) <= set(math_actions().names) | functions
    names = [item for item in actions if isinstance(item, str)]
    return bool(names) and parse_tool_names(",".join(names)) == ["maths"] and all(
        not getattr(item, "needs_images", False) for item in actions)


def create_actions(
    tools: str | Sequence[ToolLike] = "maths",
    *,
    model: BaseChatModel | None = None,
    db: str | Path | None = None,
    allow_writes: bool = False,
    knowledge_base: Any = None,
    web: bool = False,
    vqa_model: str | Path | None = None,
    vqa_mmproj: str | Path | None = None,
    vqa_chat_format: str = "llava-1-5",
    timeout: float = 5.0,
    sql_timeout: float = 10.0,
) -> ActionSet:
    """Build the action set of named tool sets and user tools.

    Args:
        tools: comma-separated set names, or a list of names, actions, LangChain tools and
            typed functions.
        model: the chat model the ``QA`` action asks (needed by ``qa`` and ``vqa``).
        db: the database of ``sql``: a SQLite file or a SQLAlchemy URL.
        allow_writes: let ``sql`` write to the database (read-only otherwise, enforced by the
            database).
        knowledge_base: the local knowledge base of ``qa`` (a path or a ``KnowledgeBase``);
            ``None``: the offline Wikipedia intros.
        web: ``qa`` searches the web with DuckDuckGo first.
        vqa_model: a vision-language GGUF for ``vqa`` (with ``vqa_mmproj``, its projector);
            without it, ``vqa`` reads text in images with OCR.
        vqa_mmproj: the projector GGUF of ``vqa_model``.
        vqa_chat_format: the chat handler of ``vqa_model`` (``llava-1-5``, ``moondream``,
            ``qwen2.5-vl``, ...; see ``lumos_graph.tools.vqa.actions.CHAT_FORMATS``).
        timeout: seconds for one maths action (Calculator, Code, ...).
        sql_timeout: seconds for one SQL query.

    Raises:
        ConfigError: an unknown set name, or a set's missing requirement (``sql`` without
            ``db``, ``qa`` without a model, a missing file), before any model runs.
    """
    items: list[ToolLike] = (
        list(parse_tool_names(tools)) if isinstance(tools, str) else list(tools)
    )
    result: ActionSet | None = None
    user_tools: list[Action] = []
    for item in items:
        if isinstance(item, str):
            part = _named_set(
                parse_tool_names(item)[0], model=model, db=db, allow_writes=allow_writes,
                knowledge_base=knowledge_base, web=web, vqa_model=vqa_model,
                vqa_mmproj=vqa_mmproj, vqa_chat_format=vqa_chat_format, timeout=timeout,
                sql_timeout=sql_timeout,
            )
        else:
            user_tools.append(as_action(item))
            part = ActionSet([user_tools[-1]])
        result = part if result is None else result + part
    if result is None:
        raise ConfigError("no tools given")
    return _tools_inside_code(result, user_tools)


def _tools_inside_code(actions: ActionSet, user_tools: Sequence[Action]) -> ActionSet:
    """The user's tools also become functions inside ``Code`` (see ``tools/sandbox.py``)."""
    code = actions.get("Code")
    if code is None or not user_tools or code in user_tools:
        return actions
    from lumos_graph.tools.sandbox import code_with_tools

    inside = code_with_tools(code, user_tools)
    return ActionSet([inside if a is code else a for a in actions], notes=actions.notes)


def as_action(item: Action | BaseTool | Callable[..., Any]) -> Action:
    """An action of an Action, a LangChain tool or a typed function."""
    if isinstance(item, Action):
        return item
    if isinstance(item, BaseTool):
        return Action.from_tool(item)
    if callable(item):
        return Action.from_function(item)
    raise ConfigError(f"not an action, LangChain tool or function: {item!r}")


def _named_set(name: str, *, model: BaseChatModel | None, **options: Any) -> ActionSet:
    if name == "maths":
        from lumos_graph.tools.maths.actions import math_actions

        return math_actions(timeout=options["timeout"])
    if name == "sql":
        from lumos_graph.tools.sql.actions import sql_actions

        if options["db"] is None:
            raise ConfigError("the sql tools need a database: --db FILE.sqlite or a SQLAlchemy URL")
        return sql_actions(options["db"], allow_writes=options["allow_writes"],
                           timeout=options["sql_timeout"])
    if model is None:
        raise ConfigError(f"the {name} tools need a chat model for their QA action")
    if name == "qa":
        from lumos_graph.tools.qa.actions import qa_actions

        return qa_actions(model, knowledge_base=options["knowledge_base"], web=options["web"],
                          timeout=options["timeout"])
    from lumos_graph.tools.qa.actions import qa_action
    from lumos_graph.tools.vqa.actions import default_vqa_backend, vqa_action

    if (options["vqa_model"] is None) != (options["vqa_mmproj"] is None):
        raise ConfigError("a vision-language model needs both --vqa-model and --vqa-mmproj")
    vlm = (options["vqa_model"], options["vqa_mmproj"]) if options["vqa_model"] else None
    backend = default_vqa_backend(vlm, chat_format=options["vqa_chat_format"])
    return ActionSet([vqa_action(backend), qa_action(model)])
