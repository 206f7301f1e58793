"""What the commands print while they work: the trace of a run (plan, actions, answer), a
spinner for slow steps, the progress of an evaluation. On a terminal they redraw one line;
otherwise (a log, a pipe) they print plain lines without escape codes."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, TextIO

from typing_extensions import Self

__all__ = ["Progress", "Spinner", "TraceView"]


class Progress:
    """A progress bar on stderr (a line per result when stderr is not a terminal)."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.tty = err.isatty()
        self.started = time.perf_counter()

    def update(self, done: int, total: int, row: dict[str, Any], resumed: bool) -> None:
        mark = "ok" if row["correct"] else "--"
        note = " (saved)" if resumed else f" {row['seconds']:.1f} s"
        if not self.tty:
            print(f"[{done}/{total}] {row['agent']} {row['id']}: {mark} "
                  f"{row['answer']!s:.40}{note}", file=self.err, flush=True)
            return
        width = 28
        filled = round(width * done / max(1, total))
        elapsed = time.perf_counter() - self.started
        self.err.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                       f"{elapsed:.0f} s  {row['agent']:<16} {mark}")
        self.err.flush()

    def close(self) -> None:
        if self.tty:
            self.err.write("\n")
            self.err.flush()


class TraceView:
    """Prints a run as it happens: plan, actions with results, answer."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.subgoals = 0

    def _p(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def task(self, question: str) -> None:
        self._p(f"Task: {question}")

    def update(self, node: str, delta: dict[str, Any]) -> None:
        if node == "vote":  # self-consistency: the chosen branch's trace, then the votes
            self.update("plan", {"subgoals": delta.get("subgoals", [])})
            self.update("execute", {"actions": delta.get("actions", [])})
            votes = [s for s in delta.get("samples", [])]
            chosen = next((s for s in votes if s["chosen"]), None)
            if chosen is not None and chosen["votes"]:
                self._p(f"  Samples: {chosen['votes']} of {len(votes)} agree on "
                        f"{chosen['answer']} ({', '.join(str(s['answer']) for s in votes)})")
            return
        if node == "plan" and delta.get("subgoals"):
            for text in delta["subgoals"]:
                self.subgoals += 1
                self._p(f"  Subgoal {self.subgoals}: {text}")
        elif node == "plan" and delta.get("planning_done"):
            self._p("  Planner: Yes, I will stop planning.")
        elif node == "execute":
            for action in delta.get("actions", []):
                self._p(f"    {_action_line(action)}")
        elif node == "ground" and delta.get("actions"):  # an unparseable grounding
            for action in delta["actions"]:
                self._p(f"    ! {action['error']} Model wrote: {action['args']}")

    def finish(self, result: dict[str, Any]) -> None:
        usage = result["usage"]
        tail = (f"{usage['model_calls']} model calls, {usage['prompt_tokens']} prompt + "
                f"{usage['completion_tokens']} completion tokens, {result['seconds']:.1f} s")
        if result["status"] == "answered":
            self._p(f"Answer: {result['answer']}")
        else:
            self._p(f"No answer ({result['status']}): {result['reason']}")
        self._p(f"  [{result['mode']}; {tail}]")


def _action_line(action: dict[str, Any]) -> str:
    args = action["args"]
    if "\n" in args:  # a grounded program: one indented line per program line
        args = "\n" + "".join(f"        {line}\n" for line in args.splitlines()) + "    "
    call = f"{', '.join(action['outputs'])} = {action['tool']}({args})"
    if action["error"]:
        return f"{call}  ->  error: {action['error']}"
    return f"{call}  ->  {', '.join(action['result'] or [])}"


class Spinner:
    """A spinner on stderr while a slow step runs. When stderr is not a terminal (a log, a
    pipe), a step that lasts longer than ``after`` seconds gets two plain lines instead: its
    start, and its end with the seconds it took (``plain=False``: nothing). Quick steps and
    steps that fail at once (a user's mistake, one error line) print nothing. ``after=0``
    prints the start line at once, before the step runs (loading a model: llama.cpp silences
    the stderr file descriptor while it loads, which would swallow a later line)."""

    def __init__(self, err: TextIO | None, label: str, *, plain: bool = True,
                 after: float = 1.0) -> None:
        self.err = err if err is not None and err.isatty() else None
        self.log = err if plain and err is not None and self.err is None else None
        self.label = label
        self.after = after
        self.announced = False
        self.started = time.perf_counter()
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run if self.err else self._announce,
                                       daemon=True)

    def __enter__(self) -> Self:
        self.started = time.perf_counter()
        if self.log and self.after <= 0:  # now, before work that may silence stderr's fd
            self._announce()
        elif self.err or self.log:
            self.thread.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join()
        if self.log and self.announced and exc_type is None:
            print(f"lumos-graph: {self.label}: done in {time.perf_counter() - self.started:.1f} s",
                  file=self.log, flush=True)
        self.clear()

    def clear(self) -> None:
        """Erase the spinner line before other output is printed."""
        if self.err:
            with self.lock:
                self.err.write("\r" + " " * (len(self.label) + 8) + "\r")
                self.err.flush()

    def _announce(self) -> None:
        if not self.done.wait(max(0.0, self.after)):
            print(f"lumos-graph: {self.label}...", file=self.log, flush=True)
            self.announced = True

    def _run(self) -> None:
        assert self.err is not None
        for frame in itertools.cycle("|/-\\"):
            if self.done.wait(0.12):
                return
            with self.lock:
                self.err.write(f"\r{frame} {self.label}...")
                self.err.flush()
