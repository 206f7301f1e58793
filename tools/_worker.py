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

Lifecycle: the child starts on first use; it is killed and reaped when it times out, when the
:class:`Worker` is closed or garbage-collected, and at interpreter exit (``weakref.finalize``).
It lives in its own session (no terminal signals) and exits by itself when its parent goes away.
POSIX only (``select`` on pipes, ``resource`` limits).
"""

from __future__ import annotations

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

__all__ = ["RemoteOp", "Worker", "serve"]

Pair = tuple[str, str]
Op = Callable[..., Sequence[Pair]]

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

    def call(self, op: str, args: Sequence[str], *, timeout: float) -> list[Pair]:
        """Run ``op(*args)`` in the child and return its ``(text, display)`` pairs.

        Raises:
            ToolError: the operation failed, timed out (the child is then killed) or the
                child died.
        """
        args = [str(a) for a in args]
        if sum(map(len, args)) > _MAX_REQUEST_CHARS:
            raise ToolError(f"{op}: the input is too long (over {_MAX_REQUEST_CHARS} characters)")
        request = (json.dumps({"op": op, "args": args}) + "\n").encode()
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
            try:
                reply = _read_reply(proc, timeout)
            except TimeoutError:
                _kill_all(self._procs)
                raise ToolError(f"{op} timed out after {timeout:g} s") from None
            except _ChildGone:
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
    """

    def __init__(self, worker: Worker, op: str, *, timeout: float) -> None:
        self.worker = worker
        self.op = op
        self.timeout = timeout

    def __call__(self, *args: str) -> Value | list[Value]:
        values = [Value(t, d) for t, d in self.worker.call(self.op, args, timeout=self.timeout)]
        return values[0] if len(values) == 1 else values

    def __repr__(self) -> str:
        return f"RemoteOp({self.op!r}, timeout={self.timeout:g})"


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

    ops: Mapping[str, Op] = importlib.import_module(module_name).worker_ops()
    _send(out_fd, {"ready": True})
    for line in requests:
        try:
            request = json.loads(line)
            op, args = request["op"], request["args"]
        except (ValueError, KeyError, TypeError):
            _send(out_fd, {"error": "malformed request"})
            continue
        _send(out_fd, _run(ops, op, args))


def _run(ops: Mapping[str, Op], op: str, args: list[str]) -> dict[str, Any]:
    fn = ops.get(op)
    if fn is None:
        return {"error": f"unknown operation {op}"}
    try:
        pairs = fn(*args)
        return {"ok": [[str(t), str(d)] for t, d in pairs]}
    except ToolError as exc:
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
