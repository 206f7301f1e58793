"""Typed action specs: what a grounding model may call and how the call is executed.

An :class:`Action` couples the text a model sees (name, parameters, description) with the
executor that runs it. An :class:`ActionSet` is the ordered list of enabled actions; it renders
the LUMOS action list for the grounding prompt and is the source of the grounding grammar.

Executors receive the action's arguments as strings, after earlier results (``R1``...) were
substituted, and return a :class:`Value`, a plain ``str``/number, or a list of them (one per
output variable of a multi-output action such as ``R3, R4 = SolveEquation(...)``). An executor
signals a failure the model should read by raising :class:`~lumos_graph.errors.ToolError`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from lumos_graph.errors import ConfigError

__all__ = ["Action", "ActionResult", "ActionSet", "Value", "as_values"]


@dataclass(frozen=True)
class Value:
    """One result of an action.

    Attributes:
        text: the exact form, substituted into later actions (``1/3``).
        display: the human form shown in traces and fed back to the planner
            (``1/3 ≈ 0.333333``); defaults to ``text``.
        empty: the action found nothing (an SQL query without rows): the SQL grounder then
            writes its query again, once.
    """

    text: str
    display: str = ""
    empty: bool = False

    def shown(self) -> str:
        """The form shown to people and to the planner."""
        return self.display or self.text


ActionResult = Value | str | int | float | Sequence["Value | str | int | float"]


def as_values(result: object) -> list[Value]:
    """Normalize an executor's return value into a list of :class:`Value`."""
    items = list(result) if isinstance(result, list | tuple) else [result]
    return [item if isinstance(item, Value) else Value(str(item)) for item in items]


@dataclass(frozen=True)
class Action:
    """An action a grounding model can emit, e.g. ``Calculator(formula)``.

    Attributes:
        name: the identifier the model writes (``Calculator``).
        description: one sentence for the action list (``Calculate the input formula``).
        params: parameter names as the model sees them (``("formula",)``).
        executor: called with one string per argument; see the module docstring.
        variadic: the last parameter takes any number of comma-separated arguments.
        expression_args: earlier results are substituted as expressions, parenthesized when
            compound (``2*(1/3)``), instead of as plain text. Set for maths actions.
        needs_images: the executor also takes ``images=``, the run's input images (VQA).
    """

    name: str
    description: str
    params: tuple[str, ...]
    executor: Callable[..., Any] = field(repr=False, compare=False)
    variadic: bool = False
    expression_args: bool = False
    needs_images: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ConfigError(f"action name {self.name!r} is not an identifier")
        if not self.params:
            raise ConfigError(f"action {self.name!r} needs at least one parameter")

    @property
    def signature(self) -> str:
        """``Name(param, ...)`` as listed for the model."""
        return f"{self.name}({', '.join(self.params)})"

    @property
    def doc(self) -> str:
        """``Name(params): description`` as listed for the model."""
        return f"{self.signature}: {self.description}"

    def arity(self) -> tuple[int, int | None]:
        """Minimum and maximum number of arguments (``None``: unbounded)."""
        if self.variadic:
            return len(self.params), None
        return len(self.params), len(self.params)

    @classmethod
    def from_function(
        cls, fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
    ) -> Action:
        """Make an action of a plain typed function.

        The name defaults to the function's name, the description to the first line of its
        docstring, the parameters to its positional parameters. Arguments reach the function as
        strings converted to each parameter's annotated type with pydantic.
        """
        from pydantic import TypeAdapter

        sig = inspect.signature(fn)
        params = [
            p
            for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        doc = (description or inspect.getdoc(fn) or "").strip().splitlines()
        if not doc:
            raise ConfigError(f"function {fn.__name__!r} needs a docstring or a description")
        hints = inspect.get_annotations(fn, eval_str=True)
        adapters = [TypeAdapter(hints.get(p.name, str)) for p in params]

        def run(*args: str) -> Any:
            # pydantic's lax mode turns "3" into 3 for an int parameter, keeps str as str
            return fn(*(a.validate_python(v) for a, v in zip(adapters, args, strict=True)))

        return cls(
            name=name or fn.__name__,
            description=doc[0].rstrip("."),
            params=tuple(p.name for p in params),
            executor=run,
        )

    @classmethod
    def from_tool(cls, tool: Any) -> Action:
        """Make an action of a LangChain ``BaseTool``; its argument schema gives the params.

        Arguments reach the tool by name (``tool.invoke({param: text})``); the tool's own schema
        validates and converts them, and its errors become observations for the model.
        """
        schema = tool.get_input_schema()
        params = tuple(schema.model_fields) or ("input",)
        first_line = (tool.description or tool.name).strip().splitlines()[0].rstrip(".")

        def run(*args: str) -> Any:
            return tool.invoke(dict(zip(params, args, strict=False)))

        return cls(name=tool.name, description=first_line, params=params, executor=run)


class ActionSet(Sequence[Action]):
    """An ordered, immutable set of actions with unique names.

    Args:
        actions: the actions, in the order the prompt lists them.
        listing: an exact action list text to show instead of the generated one (the released
            LUMOS checkpoints were trained on texts with quirks worth keeping byte for byte).
        notes: text the grounding prompt shows after the action list, e.g. a database schema.
    """

    def __init__(
        self, actions: Iterable[Action], *, listing: str | None = None, notes: str = ""
    ) -> None:
        self._actions = tuple(actions)
        names = [a.name for a in self._actions]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"duplicate action names: {', '.join(dupes)}")
        if not self._actions:
            raise ConfigError("an action set needs at least one action")
        self._by_name = {a.name: a for a in self._actions}
        self._listing = listing
        self.notes = notes.strip()

    def __getitem__(self, index: int) -> Action:  # type: ignore[override]
        return self._actions[index]

    def __len__(self) -> int:
        return len(self._actions)

    def __iter__(self) -> Iterator[Action]:
        return iter(self._actions)

    def __add__(self, other: Iterable[Action]) -> ActionSet:
        """Both sets' actions in order; an equal action in both (the ``Calculator`` of two tool
        sets) is kept once, two different actions of one name are a ConfigError."""
        extra = [a for a in other if self._by_name.get(a.name) != a]
        notes = [n for n in (self.notes, getattr(other, "notes", "")) if n]
        return ActionSet([*self._actions, *extra], notes="\n".join(notes))

    @property
    def names(self) -> tuple[str, ...]:
        """Action names in listing order."""
        return tuple(a.name for a in self._actions)

    def get(self, name: str) -> Action | None:
        """The action called ``name``, or ``None``."""
        return self._by_name.get(name)

    def code_functions(self) -> tuple[Action, ...]:
        """The actions a program run by this set's ``Code`` may call as functions (the names
        its executor hosts: user tools, see ``create_actions``); none without ``Code``."""
        code = self.get("Code")
        host = (getattr(code.executor, "host", None) or {}) if code is not None else {}
        return tuple(a for a in self._actions if a.name in host)

    def database_schema(self) -> str | None:
        """The schema text (tables and sample rows) of this set's ``SQLQuery`` database, read
        now; ``None`` without an SQL database."""
        query = self.get("SQLQuery")
        schema = getattr(query.executor, "schema", None) if query is not None else None
        return schema() if callable(schema) else None

    def listing(self) -> str:
        """The action list text of the grounding prompt (two lines, LUMOS format, then notes)."""
        if self._listing is not None:
            return self._listing + (f"\n{self.notes}" if self.notes else "")
        quoted = [f"'{n}'" for n in self.names]
        if len(quoted) == 1:
            names = quoted[0]
        elif len(quoted) == 2:
            names = f"{quoted[0]} and {quoted[1]}"
        else:
            names = ", ".join(quoted[:-1]) + f", and {quoted[-1]}"
        docs = "; ".join(a.doc for a in self._actions)
        text = f"The available action list is {names}.\n{docs}."
        return text + (f"\n{self.notes}" if self.notes else "")
