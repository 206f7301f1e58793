"""Run tool computations in a warm child process that is killed when it overruns.

Why a process: sympy can hang or eat memory on innocent-looking input (``9**9**9**9``), and a
thread cannot be stopped. A :class:`Worker` keeps one child interpreter warm, so a call costs a
round trip over a pipe (well under a millisecond plus the computation), and kills it when a call
exceeds its time limit; the next call starts a fresh child. The host process of lumos-graph runs
llama.cpp threads, so the child is a fresh ``python -c`` interpreter, never a fork of the host,
and it never re-imports the application's ``__main__`` (as ``multiprocessing``'s spawn would).

The child imports one module, calls its ``worker_ops()`` for a mapping of operation names to
functions ``(*args: str) -> list[(text, display)]`` and serves requests until its stdin closes.
Requests and replies are JSON lines, never pickles: a child that runs untrusted code (the
``Code`` sandbox) can at worst send back wrong strings, not code for the host to run.

Host functions: a call may pass ``host``, functions of the host process (the user's tools)
that the operation may call back while it runs. The request then names them; the child's
operation gets them as ``host={name: function}``, and calling one sends
``{"call": name, "args": [...], "kwargs": {...}}`` (all text) up the pipe and blocks until the
host answers ``{"return": value}`` (a JSON value) or ``{"raise": message}``. The host runs only
the functions it was given, by name, with text arguments, inside the same deadline as the
whole call: the child gains nothing the model could not do with an action line.

Lifecycle: the child starts on first use; it is killed and reaped when it times out, when the
:class:`Worker` is closed or garbage-collected, and at interpreter exit (``weakref.finalize``).
It lives in its own session (no terminal signals) and exits by itself when its parent goes away.
POSIX only (``select`` on pipes, ``resource`` limits).
"""

from __future__ import annotations

import contextvars
import json
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lumos_graph.agent.actions import Value
from lumos_graph.errors import ToolError

__all__ = ["HostCallError", "HostFunction", "RemoteOp", "Worker", "serve"]

Pair = tuple[str, str]
Op = Callable[..., Sequence[Pair]]
# a host function: positional and keyword arguments as text -> a JSON value for the child
HostFunction = Callable[..., Any]

_START_TIMEOUT = 60.0  # first import of sympy on a slow disk; not counted in a call's timeout
_MAX_REPLY = 4 * 2**20
_MAX_REQUEST_CHARS = 20_000
# The child skips lumos_graph/__init__ (which pulls in langgraph and langchain, about 1.5 s):
# it registers the package module without running it, then imports only what it serves.
_BOOTSTRAP = """
import importlib.util, sys
spec = importlib.util.find_spec("lumos_graph")
sys.modules["lumos_graph"] = importlib.util.module_from_spec(spec)
from lumos_graph.tools._worker import serve
serve(sys.argv[1:])
"""


class _ChildGone(Exception):
    """The child closed its pipe: it crashed, ran out of memory or was killed."""


class HostCallError(Exception):
    """A host function failed; the child's operation sees this, with the host's message."""


class Worker:
    """A warm child process serving the operations of one module.

    Args:
        module: importable module defining ``worker_ops()``.
        memory_mb: address-space limit of the child (``RLIMIT_AS``); 0 for none.
    """

    def __init__(self, module: str, *, memory_mb: int = 0) -> None:
        self._module = module
        self._memory_mb = memory_mb
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen[bytes]] = []  # the live child, if any
        # kills the child when this Worker is collected or the interpreter exits
        self._finalizer = weakref.finalize(self, _kill_all, self._procs)

    @property
    def pid(self) -> int | None:
        """Process id of the live child, if one is running."""
        return self._procs[0].pid if self._procs else None

    def call(
        self,
        op: str,
        args: Sequence[str],
        *,
        timeout: float,
        host: Mapping[str, HostFunction] | None = None,
    ) -> list[Pair]:
        """Run ``op(*args)`` in the child and return its ``(text, display)`` pairs.

        Args:
            op: the operation's name in the child module's ``worker_ops()``.
            args: its arguments, as text.
            timeout: seconds for the whole call, host function calls included.
            host: functions of this process the operation may call back (see the module
                docstring).

        Raises:
            ToolError: the operation failed, timed out (the child is then killed) or the
                child died.
        """
        args = [str(a) for a in args]
        if sum(map(len, args)) > _MAX_REQUEST_CHARS:
            raise ToolError(f"{op}: the input is too long (over {_MAX_REQUEST_CHARS} characters)")
        message: dict[str, Any] = {"op": op, "args": args}
        if host:
            message["host"] = sorted(host)
        request = (json.dumps(message) + "\n").encode()
        with self._lock:
            for attempt in (1, 2):
                proc = self._ensure_started()
                try:
                    _write_all(proc, request)
                    break
                except (BrokenPipeError, OSError):  # died between calls: start over once
                    _kill_all(self._procs)
                    if attempt == 2:
                        raise ToolError(f"{op} could not start its worker process") from None
            deadline = time.monotonic() + timeout
            try:
                reply = _read_reply(proc, timeout)
                while isinstance(reply, dict) and "call" in reply:
                    answer = _answer_call(host or {}, reply, deadline)
                    _write_all(proc, (json.dumps(answer) + "\n").encode())
                    reply = _read_reply(proc, deadline - time.monotonic())
            except TimeoutError:
                _kill_all(self._procs)
                raise ToolError(f"{op} timed out after {timeout:g} s") from None
            except (_ChildGone, BrokenPipeError):
                _kill_all(self._procs)
                raise ToolError(f"{op} crashed (out of memory or too deeply nested?)") from None
            except BaseException:  # e.g. KeyboardInterrupt: never leave a stale reply behind
                _kill_all(self._procs)
                raise
            return self._unpack(op, reply)

    def close(self) -> None:
        """Kill the child now; a later call starts a new one."""
        with self._lock:
            _kill_all(self._procs)

    def _ensure_started(self) -> subprocess.Popen[bytes]:
        if self._procs and self._procs[0].poll() is None:
            return self._procs[0]
        _kill_all(self._procs)
        env = dict(os.environ)
        # the child imports from exactly where this interpreter does (-P: and not from its
        # working directory on top), so it finds lumos_graph and sympy wherever we found them
        env["PYTHONPATH"] = os.pathsep.join(p or os.getcwd() for p in sys.path)
        safe_path = ["-P"] if sys.version_info >= (3, 11) else []
        proc = subprocess.Popen(
            [sys.executable, *safe_path, "-c", _BOOTSTRAP, self._module, str(self._memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
            start_new_session=True,
        )
        self._procs.append(proc)
        try:
            ready = _read_reply(proc, _START_TIMEOUT)
        except (TimeoutError, _ChildGone):
            _kill_all(self._procs)
            raise ToolError(f"the worker process for {self._module} failed to start") from None
        if ready != {"ready": True}:
            _kill_all(self._procs)
            raise ToolError(f"the worker process for {self._module} failed to start")
        return proc

    def _unpack(self, op: str, reply: Any) -> list[Pair]:
        # the child may run untrusted code: check the shape, trust nothing else
        if isinstance(reply, dict) and isinstance(reply.get("error"), str):
            if reply.get("restart"):
                _kill_all(self._procs)
            raise ToolError(reply["error"])
        ok = reply.get("ok") if isinstance(reply, dict) else None
        if (
            isinstance(ok, list)
            and ok
            and all(isinstance(p, list) and len(p) == 2 for p in ok)
            and all(isinstance(s, str) for p in ok for s in p)
        ):
            return [(t, d) for t, d in ok]
        _kill_all(self._procs)
        raise ToolError(f"{op} returned a malformed result")


class RemoteOp:
    """An action executor that runs one operation of a :class:`Worker`.

    Returns one :class:`Value`, or a list of them when the operation has several outputs.
    ``host``: functions of this process the operation may call back (the user's tools inside
    ``Code``), within the same ``timeout``.
    """

    def __init__(
        self,
        worker: Worker,
        op: str,
        *,
        timeout: float,
        host: Mapping[str, HostFunction] | None = None,
    ) -> None:
        self.worker = worker
        self.op = op
        self.timeout = timeout
        self.host = dict(host or {})

    def __call__(self, *args: str) -> Value | list[Value]:
        pairs = self.worker.call(self.op, args, timeout=self.timeout, host=self.host)
        values = [Value(t, d) for t, d in pairs]
        return values[0] if len(values) == 1 else values

    def __repr__(self) -> str:
        return f"RemoteOp({self.op!r}, timeout={self.timeout:g})"


def _answer_call(
    host: Mapping[str, HostFunction], request: dict[str, Any], deadline: float
) -> dict[str, Any]:
    """Run one host function the child asked for, within the call's deadline.

    The function runs in a thread of its own so that the deadline holds even when it hangs
    (the thread cannot be stopped; it is left to finish in the background).

    Raises:
        TimeoutError: the deadline passed before the function returned.
    """
    name, args, kwargs = request.get("call"), request.get("args"), request.get("kwargs", {})
    fn = host.get(name) if isinstance(name, str) else None
    if fn is None:
        return {"raise": f"{name!r} is not a tool"}
    if not (
        isinstance(args, list) and all(isinstance(a, str) for a in args)
        and isinstance(kwargs, dict) and all(isinstance(v, str) for v in kwargs.values())
    ):
        return {"raise": f"{name}: arguments must be text"}
    outcome: list[dict[str, Any]] = []

    def run() -> None:
        try:
            value = fn(*args, **kwargs)
            outcome.append({"return": value})
            if len(json.dumps(value)) > _MAX_REPLY:
                outcome[0] = {"raise": f"{name} returned too large a result"}
        except Exception as exc:  # noqa: BLE001 - a tool failure is text for the snippet
            if isinstance(exc, ToolError):  # already says what to fix
                outcome[:] = [{"raise": str(exc)}]
                return
            text = str(exc).strip().splitlines()
            detail = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
            outcome[:] = [{"raise": f"{name} failed: {detail}"}]

    context = contextvars.copy_context()  # LangChain callbacks and config travel along
    thread = threading.Thread(target=context.run, args=(run,), name=f"lumos-host-{name}",
                              daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive() or not outcome:
        raise TimeoutError
    return outcome[0]


def _kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    while procs:
        proc = procs.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait()  # reap: no zombies
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def _write_all(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    proc.stdin.write(data)
    proc.stdin.flush()


def _read_reply(proc: subprocess.Popen[bytes], timeout: float) -> Any:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError
        chunk = os.read(fd, 65536)
        if not chunk:
            raise _ChildGone
        buf += chunk
        if len(buf) > _MAX_REPLY:
            raise _ChildGone
    try:
        return json.loads(buf.split(b"\n", 1)[0])
    except ValueError:
        return None


# ---------------------------------------------------------------- child side


def serve(argv: Sequence[str]) -> None:
    """Child entry point: ``serve([module, memory_mb])``; answers requests until EOF."""
    module_name, memory_mb = argv[0], int(argv[1])
    # keep the protocol pipes private: stray prints and input() go to /dev/null
    requests = os.fdopen(os.dup(0), "rb")
    out_fd = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    _limit_resources(memory_mb)
    _exit_with_parent()
    import importlib
    import warnings

    # compiler warnings about model-written code (SyntaxWarning) would land on the user's
    # terminal: the child's stderr is the host's
    warnings.simplefilter("ignore")

    ops: Mapping[str, Op] = importlib.import_module(module_name).worker_ops()
    _send(out_fd, {"ready": True})
    for line in requests:
        try:
            request = json.loads(line)
            op, args = request["op"], request["args"]
            names = [str(n) for n in request.get("host", [])]
        except (ValueError, KeyError, TypeError):
            _send(out_fd, {"error": "malformed request"})
            continue
        host = {name: _host_function(name, requests, out_fd) for name in names}
        _send(out_fd, _run(ops, op, args, host))


def _host_function(name: str, requests: Any, out_fd: int) -> Callable[..., Any]:
    """A function of the child that has the host run its function ``name`` and waits."""

    def call(*args: object, **kwargs: object) -> Any:
        _send(out_fd, {"call": name, "args": [_as_text(a) for a in args],
                       "kwargs": {k: _as_text(v) for k, v in kwargs.items()}})
        line = requests.readline()
        if not line:  # the host went away
            os._exit(0)
        reply = json.loads(line)
        if "raise" in reply:
            raise HostCallError(str(reply["raise"]))
        return reply.get("return")

    call.__name__ = call.__qualname__ = name
    return call


def _as_text(value: object) -> str:
    """An argument as the text an action line would carry (``3``, ``2.5``, ``apple``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def _run(
    ops: Mapping[str, Op], op: str, args: list[str], host: Mapping[str, Callable[..., Any]]
) -> dict[str, Any]:
    fn = ops.get(op)
    if fn is None:
        return {"error": f"unknown operation {op}"}
    try:
        pairs = fn(*args, host=host) if host else fn(*args)
        return {"ok": [[str(t), str(d)] for t, d in pairs]}
    except (ToolError, HostCallError) as exc:
        return {"error": str(exc)}
    except MemoryError:
        return {"error": f"{op} ran out of memory", "restart": True}
    except RecursionError:
        return {"error": f"{op}: the input is too deeply nested"}
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message for the model
        return {"error": f"{op} failed: {type(exc).__name__}: {exc}"}


def _send(fd: int, message: dict[str, Any]) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def _limit_resources(memory_mb: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_mb > 0:
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        limit = memory_mb * 2**20
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _exit_with_parent() -> None:
    # PR_SET_PDEATHSIG would fire when the *thread* that started us ends; poll instead
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="lumos-parent-watch", daemon=True).start()
