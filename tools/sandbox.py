"""The ``Code`` action: run a small Python snippet and return its result.

What counts as the result, first match wins: the value of the last expression statement; a
variable named ``result``, ``answer`` or ``ans``; what the code printed; the value of the name
the last statement assigns; the return value of the one function it defines, called with no
arguments. LUMOS pseudo code such as
``If 141 % 1 == 0, 1, 0`` (from the training data) is read as ``1 if 141 % 1 == 0 else 0``.

**Your tools inside Code.** The tools a user registers beside the maths set (typed functions,
LangChain tools, see :func:`lumos_graph.tools.toolsets.create_actions`) are actions of their
own *and* functions of the same name inside ``Code``, the way smolagents exposes tools to code:
``Code(unit_price("apple") * 6)``. As on an action line, a bare word the snippet never defines
is text there: ``unit_price(apple)`` is ``unit_price("apple")``.

- Such a call does not run in the sandbox: the worker sends the tool's name and arguments (as
  text) to the host process, which runs the tool exactly as an action line would (text
  converted to the tool's types) and sends the result back.
- The snippet gets the tool's return value when it is a plain value (number, string, bool,
  ``None``, or lists and dicts of them), otherwise its text. A tool's error raises in the
  snippet and, uncaught, becomes the observation.
- Tool calls count against the snippet's time limit; when the time is up the worker is killed
  and ``Code`` fails with a timeout (a tool still running in the host finishes in a background
  thread).
- The host runs nothing but the registered tools, by name, with text arguments: a snippet can
  do no more through them than the model can with action lines, and every check below still
  applies to it. Not exposed: tools that need the run's images, and tools whose names the
  checks refuse (``open``, ``eval``, names starting with ``__``).

Threat model, honestly: this is a best-effort sandbox for arithmetic-style snippets written by
a small model, not a security boundary against a determined attacker.

- The snippet is parsed with :mod:`ast` and refused unless it uses only plain statements and
  expressions: no imports (``import math`` is the one exception, served by a stand-in module of
  math functions), no classes, ``with``, ``match`` or ``async``, no names starting with ``__``,
  no ``open``/``eval``/``exec``/``getattr``/... and attribute access only to a fixed list of
  public methods of ``str``, ``list``, ``dict``, ``set``, ``tuple``, ``int`` and ``float``
  (which rules out ``__class__``-walks, frame objects and ``str.format`` attribute lookups).
- It runs with a whitelist of builtins (``print`` captured) plus math functions as plain names.
- It runs in a separate process (see :mod:`lumos_graph.tools._worker`) with an address-space
  limit (``RLIMIT_AS``, 512 MB by default); it is killed when it exceeds its time limit, and its
  printed output and result are truncated or refused when they are too large.

Not protected: the worker runs as the same user as the host, with the same file system and
network access, so a CPython bug or a gap in the checks above would give the code those rights.
Do not run model output from untrusted parties on a machine that matters without an OS-level
sandbox (container, seccomp, a dedicated user) around the whole process.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import math
import re
import statistics
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lumos_graph.agent.actions import Action, Value, as_values
from lumos_graph.errors import ConfigError, ToolError
from lumos_graph.tools._worker import HostCallError, HostFunction, Pair, RemoteOp, Worker

__all__ = ["code_action", "code_with_tools"]

_MAX_PRINTED = 4000
_MAX_RESULT = 10_000
_RESULT_NAMES = ("result", "answer", "ans")
_ENTRY_NAMES = ("solution", "solve", "main", "answer", "compute", "calculate")

_MATH = {
    name: getattr(math, name)
    for name in (
        "acos asin atan atan2 ceil comb cos degrees e exp fabs factorial floor fmod fsum gcd "
        "hypot inf isqrt lcm log log10 log2 nan perm pi prod radians sin sqrt tan tau trunc"
    ).split()
}
_EXTRA: dict[str, Any] = {
    "mean": statistics.mean, "median": statistics.median, "mode": statistics.mode,
}  # fmt: skip
_BUILTINS: dict[str, Any] = {
    f.__name__: f
    for f in (
        abs, all, any, bool, chr, dict, divmod, enumerate, filter, float, format, frozenset,
        int, isinstance, iter, len, list, map, max, min, next, ord, pow, range, repr,
        reversed, round, set, slice, sorted, str, sum, tuple, zip,
        ArithmeticError, Exception, IndexError, KeyError, StopIteration, TypeError,
        ValueError, ZeroDivisionError,
    )
}  # fmt: skip
_FORBIDDEN = frozenset(
    "open exec eval compile globals locals vars getattr setattr delattr hasattr input "
    "breakpoint help type object super dir memoryview classmethod staticmethod property "
    "exit quit id __import__".split()
)
# public methods and properties of the plain value types, minus str.format(_map), which
# would read attributes named in a format string
_SAFE_ATTRS = (
    frozenset(
        name
        for t in (str, list, dict, set, frozenset, tuple, int, float, complex, range)
        for name in dir(t)
        if not name.startswith("_")
    )
    | frozenset(_MATH)
) - {"format", "format_map", "mro"}
_REFUSED_NODES = (
    ast.ClassDef, ast.AsyncFunctionDef, ast.AsyncFor, ast.AsyncWith, ast.Await, ast.With,
    ast.Match,
)  # fmt: skip


def code_action(
    *, timeout: float = 5.0, memory_mb: int = 512, expression_args: bool = True
) -> Action:
    """The ``Code(pseudo_code)`` action, run in its own sandbox worker process.

    Args:
        timeout: seconds a snippet may run before its process is killed.
        memory_mb: address-space limit of the worker process.
        expression_args: substitute earlier results as parenthesized expressions (maths).
    """
    worker = Worker("lumos_graph.tools.sandbox", memory_mb=memory_mb)
    return Action(
        name="Code",
        description="Generate a Python function that corresponds to the pseudo code",
        params=("pseudo_code",),
        executor=RemoteOp(worker, "Code", timeout=timeout),
        expression_args=expression_args,
    )


def code_with_tools(code: Action, tools: Sequence[Action]) -> Action:
    """The ``Code`` action ``code`` with ``tools`` callable inside it as functions.

    The tools run in this process when a snippet calls them (see the module docstring); the
    time limit of ``code`` covers them. Tools that need the run's images, tools the checks
    refuse by name, and ``Code`` itself are left out.
    """
    if not isinstance(code.executor, RemoteOp):
        raise ConfigError(f"{code.name} is not a sandboxed Code action")
    host = {
        tool.name: _host_tool(tool)
        for tool in tools
        if tool.name != code.name and not tool.needs_images
        and not tool.name.startswith("__") and tool.name not in _FORBIDDEN
    }
    executor = RemoteOp(code.executor.worker, code.executor.op, timeout=code.executor.timeout,
                        host={**code.executor.host, **host})
    return dataclasses.replace(code, executor=executor)


def _host_tool(tool: Action) -> HostFunction:
    """The host side of ``tool`` called from a snippet: arguments as text, a plain result."""
    low, high = tool.arity()

    def call(*args: str, **kwargs: str) -> Any:
        unknown = [k for k in kwargs if k not in tool.params]
        if unknown:
            raise ToolError(f"{tool.signature} has no parameter {unknown[0]!r}")
        values = list(args)
        for index, param in enumerate(tool.params):
            if param in kwargs:
                if index < len(values):
                    raise ToolError(f"{tool.signature} got {param!r} twice")
                if index > len(values):
                    raise ToolError(f"{tool.signature} is missing {tool.params[len(values)]!r}")
                values.append(kwargs[param])
        if len(values) < low or (high is not None and len(values) > high):
            count = f"{low}" if low == high else f"at least {low}"
            raise ToolError(f"{tool.signature} takes {count} argument{'s' * (low != 1)}, "
                            f"not {len(values)}")
        return _plain(tool.executor(*values))

    return call


def _plain(result: Any) -> Any:
    """A tool's result as a JSON value for the snippet: plain values as they are, the
    :class:`Value` s of built-in style executors as numbers when their text is one."""
    if result is None or isinstance(result, bool | int | float | str):
        return result
    if isinstance(result, Value):
        return _number(result.text)
    if isinstance(result, list | tuple):
        return [_plain(item) for item in result]
    if isinstance(result, dict) and all(isinstance(k, str) for k in result):
        return {k: _plain(v) for k, v in result.items()}
    values = as_values(result)
    return _number(values[0].text) if len(values) == 1 else [_number(v.text) for v in values]


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def worker_ops() -> dict[str, Callable[..., list[Pair]]]:
    """Operations served by the sandbox worker process."""
    return {"Code": run_code}


def run_code(*parts: str, host: Mapping[str, Callable[..., Any]] | None = None) -> list[Pair]:
    """Check and run a snippet in this process; the worker calls this, tests may too.

    ``host``: the user's tools as functions (in the worker, stubs that call the host).
    """
    tree = _parse(", ".join(parts))
    _check(tree)
    printed = _Printer()
    env = _namespace(printed)
    env.update(host or {})
    _words_as_text(tree, set(host or {}), set(env) | set(_BUILTINS))
    body = list(tree.body)
    last = body.pop() if body and isinstance(body[-1], ast.Expr) else None
    assert last is None or isinstance(last, ast.Expr)
    try:
        exec(compile(ast.Module(body=body, type_ignores=[]), "<code>", "exec"), env)
        value = None
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<code>", "eval"), env)
        if value is None:
            value = next((env[n] for n in _RESULT_NAMES if env.get(n) is not None), None)
        if value is None and printed.text.strip():
            return [(printed.text.strip(), printed.text.strip())]
        if value is None:
            value = _last_assigned(env, tree)
        if value is None:
            value = _call_entry_function(env, tree)
    except ToolError:
        raise
    except HostCallError as exc:  # the user's tool failed: its message, where it was called
        raise ToolError(f"{exc}{_where(exc)}") from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - the snippet's own error, for the model to read
        raise ToolError(f"Code raised {type(exc).__name__}: {exc}{_where(exc)}") from None
    text = _format(value)
    return [(text, text)]


def _parse(source: str) -> ast.Module:
    source = source.strip()
    fenced = re.fullmatch(r"```[\w+-]*\s*\n?(.*?)\s*```", source, re.DOTALL)
    if fenced:
        source = fenced.group(1).strip()
    if not source:
        raise ToolError("Code needs a Python snippet")
    candidates = [source]
    if_form = _if_form(source)
    if if_form:  # "If c, a, b" is also valid Python (a tuple starting with a call of If)
        candidates.insert(0 if re.match(r"I[fF]\b", source) else 1, if_form)
    if "\\n" in source:  # one-line model output with escaped newlines
        candidates.append(source.replace("\\n", "\n").replace("\\t", "    "))
    error: SyntaxError | None = None
    for candidate in candidates:
        try:
            return ast.parse(candidate, "<code>", "exec")
        except SyntaxError as exc:
            error = error or exc
        except (ValueError, MemoryError, RecursionError):
            raise ToolError("Code could not be parsed (too large or too deeply nested)") from None
    assert error is not None
    raise ToolError(f"Code has invalid Python syntax (line {error.lineno}): {error.msg}")


def _if_form(source: str) -> str | None:
    """``If cond, a, b`` / ``If cond then a else b`` (LUMOS pseudo code) as Python."""
    match = re.fullmatch(r"(?is)if\s+(.+?)\s+then\s+(.+?)\s+else\s+(.+)", source)
    if match:
        cond, yes, no = match.groups()
        return f"({yes}) if ({cond}) else ({no})"
    match = re.fullmatch(r"(?is)if\s+(.+)", source)
    if not match:
        return None
    parts = _split_top_commas(match.group(1))
    if len(parts) == 3:
        return f"({parts[1]}) if ({parts[0]}) else ({parts[2]})"
    if len(parts) == 2:
        return f"({parts[1]}) if ({parts[0]}) else None"
    return None


def _split_top_commas(text: str) -> list[str]:
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def _words_as_text(tree: ast.Module, tools: set[str], known: set[str]) -> None:
    """In a call of a tool, a bare word the snippet never defines is its text, as on an action
    line: ``unit_price(apple)`` is ``unit_price("apple")``."""
    if not tools:
        return
    defined = known | {
        name
        for node in ast.walk(tree)
        for name in (
            [node.id] if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load)
            else [node.name] if isinstance(node, ast.FunctionDef)
            else [node.arg] if isinstance(node, ast.arg)
            else [(node.asname or node.name).split(".")[0]] if isinstance(node, ast.alias)
            else []
        )
    }

    def text(arg: ast.expr) -> ast.expr:
        if isinstance(arg, ast.Name) and arg.id not in defined:
            return ast.copy_location(ast.Constant(arg.id), arg)
        return arg

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in tools:
            node.args = [text(a) for a in node.args]
            for keyword in node.keywords:
                keyword.value = text(keyword.value)


def _check(tree: ast.Module) -> None:
    for node in ast.walk(tree):
        if isinstance(node, _REFUSED_NODES):
            raise ToolError(f"Code may not use {type(node).__name__} statements")
        if isinstance(node, ast.Import):
            if any(a.name != "math" for a in node.names):
                raise ToolError("Code may not import modules (math functions are built in)")
        elif isinstance(node, ast.ImportFrom):
            if node.module != "math" or node.level:
                raise ToolError("Code may not import modules (math functions are built in)")
            unknown = [a.name for a in node.names if a.name != "*" and a.name not in _MATH]
            if unknown:
                raise ToolError(f"math has no {', '.join(unknown)} here")
        elif isinstance(node, ast.Attribute):
            if node.attr not in _SAFE_ATTRS or not isinstance(node.ctx, ast.Load):
                raise ToolError(f"Code may not use the attribute .{node.attr}")
        elif isinstance(node, ast.Name):
            _check_name(node.id)
        elif isinstance(node, ast.FunctionDef | ast.arg | ast.keyword | ast.alias):
            name = getattr(node, "name", None) or getattr(node, "arg", None)
            if name and name.startswith("__"):
                raise ToolError(f"Code may not use the name {name}")
            if isinstance(node, ast.alias) and node.asname:
                _check_name(node.asname)


def _check_name(name: str) -> None:
    if name.startswith("__") or name in _FORBIDDEN:
        raise ToolError(f"Code may not use {name}")


class _Printer:
    """A ``print`` that keeps the first few thousand characters."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0
        self.truncated = False

    def print(self, *args: object, sep: str | None = " ", end: str | None = "\n", **_: Any) -> None:
        if self._size >= _MAX_PRINTED:
            self.truncated = True
            return
        # a float prints as a result shows it (12 significant digits): 67.35 - 0.83 * 45
        # prints 30, not 29.999999999999993
        shown = (_float_text(a) if type(a) is float else str(a) for a in args)
        text = (" " if sep is None else str(sep)).join(shown)
        text += "\n" if end is None else str(end)
        room = _MAX_PRINTED - self._size
        self.truncated |= len(text) > room
        self._parts.append(text[:room])
        self._size += min(len(text), room)

    @property
    def text(self) -> str:
        return "".join(self._parts) + ("\n... (output truncated)" if self.truncated else "")


def _import(
    name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
) -> types.SimpleNamespace:
    if name != "math" or level:
        raise ImportError(f"import of {name} is not allowed")
    return types.SimpleNamespace(**_MATH)


def _namespace(printed: _Printer) -> dict[str, Any]:
    builtins = {**_BUILTINS, "print": printed.print, "__import__": _import}
    return {"__builtins__": builtins, "__name__": "sandbox", **_MATH, **_EXTRA}


def _last_assigned(env: dict[str, Any], tree: ast.Module) -> Any:
    """The value of the name a snippet's last statement assigns (``total = 4 * 12 + 5``):
    small models often stop there, and the name is what they computed."""
    last = tree.body[-1] if tree.body else None
    if isinstance(last, ast.Assign) and len(last.targets) == 1:
        target = last.targets[0]
    elif isinstance(last, (ast.AugAssign, ast.AnnAssign)):
        target = last.target
    else:
        return None
    return env.get(target.id) if isinstance(target, ast.Name) else None


def _call_entry_function(env: dict[str, Any], tree: ast.Module) -> Any:
    defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    functions = {n: env[n] for n in defined if isinstance(env.get(n), types.FunctionType)}
    if len(functions) > 1:
        functions = {n: f for n, f in functions.items() if n in _ENTRY_NAMES} or functions
    if len(functions) != 1:
        raise ToolError(
            "Code produced no result: end with an expression, assign `result`, or print it"
        )
    ((name, fn),) = functions.items()
    required = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if required:
        args = ", ".join(p.name for p in required)
        raise ToolError(f"Code defines {name}({args}) but never calls it; add e.g. {name}(...)")
    return fn()


def _format(value: Any) -> str:
    if isinstance(value, bool | int | complex):
        try:
            text = str(value)
        except ValueError:  # int too large to print
            raise ToolError("Code result is too large to print") from None
    elif isinstance(value, float):
        text = _float_text(value)
    elif isinstance(value, str):
        text = value.strip() or repr(value)
    elif isinstance(value, list | tuple | set | frozenset | dict | range):
        text = repr(value)
    elif isinstance(value, map | filter | zip | enumerate | reversed | types.GeneratorType):
        items = list(itertools.islice(value, 1001))
        if len(items) > 1000:
            raise ToolError("Code result has more than 1000 items")
        text = repr(items)
    else:
        raise ToolError(f"Code result is a {type(value).__name__}, not a value")
    if len(text) > _MAX_RESULT:
        raise ToolError(f"Code result is too large ({len(text)} characters)")
    return text


def _float_text(x: float) -> str:
    if math.isfinite(x) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return format(x, ".12g")  # 0.1 + 0.2 -> 0.3


def _where(exc: BaseException) -> str:
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<code>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" (line {line})" if line else ""
