"""``lumos-graph chat``: a conversation with a LUMOS agent, persisted in sessions.

Each message is one turn of :func:`~lumos_graph.graphs.chat.create_chat_graph` (follow-ups
carry the earlier turns in their task); a session is one LangGraph thread, checkpointed in
SQLite (``langgraph-checkpoint-sqlite``) at ``chat.sqlite`` in the user's data directory
(platformdirs: ``~/.local/share/lumos-graph`` on Linux). A turn's answer is printed after its
checkpoint is written, so a process killed at any moment keeps every turn it answered.

On a terminal the prompt has line editing and history (prompt-toolkit); Ctrl-C cancels the
running turn and keeps the session, Ctrl-D or ``/exit`` leaves. Piped stdin is read line by
line and the output has no escape codes.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from lumos_graph.cli._options import add_agent_options, add_model_options, build_agent
from lumos_graph.cli._view import TraceView
from lumos_graph.errors import ConfigError

__all__ = ["add_parser", "run", "sessions_path"]

HELP = """commands:
  /tools [SETS]     show or change the tool sets (maths, qa, sql, vqa; comma-separated)
  /mode [MODE]      show or change the formulation (onepass, iterative)
  /new              start a new session
  /sessions         list the saved sessions
  /history          show this session's turns
  /help             this help
  /exit             leave (Ctrl-D too); Ctrl-C cancels a running turn"""


def add_parser(sub: Any) -> None:
    """Add ``chat`` to the ``lumos-graph`` subcommands."""
    chat = sub.add_parser("chat", help="talk to a LUMOS agent; sessions are saved")
    add_agent_options(chat)
    add_model_options(chat, samples=True)
    group = chat.add_argument_group("sessions")
    group.add_argument("--session", default=None, metavar="NAME",
                       help="resume (or start) the session NAME (default: a new session)")
    group.add_argument("--list", action="store_true", help="list the saved sessions and exit")
    group.add_argument("--history", type=int, default=3, metavar="N",
                       help="earlier turns a follow-up question carries (default 3)")


def sessions_path() -> Path:
    """The SQLite file of the chat sessions, in the user's data directory."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("lumos-graph", appauthor=False)) / "chat.sqlite"


def run(args: argparse.Namespace, stdin: TextIO, out: TextIO, err: TextIO) -> int:
    """Run the chat command; returns the exit status."""
    if args.history < 0:
        raise ConfigError("--history must be 0 or more")
    store = _Store(sessions_path())
    try:
        if args.list:
            _print_sessions(store, out)
            return 0
        chat = _Chat(args, store, out, err, echo=not (stdin.isatty() and out.isatty()))
        chat.start(args.session or _new_name(store))
        return chat.loop(_lines(stdin, out, store.path.parent))
    finally:
        store.close()


# --------------------------------------------------------------------------- sessions


class _Store:
    """The sessions' SQLite file and LangGraph's checkpointer on it."""

    def __init__(self, path: Path) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(str(path), check_same_thread=False)
        self.saver = SqliteSaver(self.conn)
        self.saver.setup()

    def sessions(self) -> list[tuple[str, int, str]]:
        """``(name, turns, last updated)`` of every session, most recent first."""
        threads = self.conn.execute(  # the saver lists checkpoints, not threads
            "SELECT DISTINCT thread_id FROM checkpoints WHERE checkpoint_ns = ''").fetchall()
        found = []
        for (thread,) in threads:
            saved = self.saver.get_tuple({"configurable": {"thread_id": thread}})
            if saved is not None:
                turns = saved.checkpoint["channel_values"].get("turns", [])
                found.append((thread, len(turns), saved.checkpoint["ts"]))
        return sorted(found, key=lambda row: row[2], reverse=True)

    def turns(self, session: str) -> list[dict[str, Any]]:
        """The finished turns of ``session`` (none for a new one)."""
        saved = self.saver.get_tuple({"configurable": {"thread_id": session}})
        if saved is None:
            return []
        return list(saved.checkpoint["channel_values"].get("turns", []))

    def close(self) -> None:
        self.conn.close()


def _new_name(store: _Store) -> str:
    taken = {name for name, _, _ in store.sessions()}
    base = time.strftime("chat-%Y%m%d-%H%M%S")
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def _print_sessions(store: _Store, out: TextIO) -> None:
    sessions = store.sessions()
    if not sessions:
        print(f"no saved sessions ({store.path})", file=out)
        return
    for name, turns, when in sessions:
        print(f"{name}  {turns} turn{'s' * (turns != 1)}  {when[:19].replace('T', ' ')}",
              file=out)


# --------------------------------------------------------------------------- the chat


@dataclass
class _Chat:
    args: argparse.Namespace
    store: _Store
    out: TextIO
    err: TextIO
    echo: bool = False  # print each message (piped input does not show on the output)
    session: str = ""
    tools: str = ""
    mode: str = ""
    mode_chosen: bool = False  # by --mode or /mode; otherwise the mode follows the tools
    graph: Any = field(default=None, repr=False)
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self.tools = self.args.tools
        self.mode_chosen = self.args.mode is not None
        self.graph = self._build(self.tools, self.args.mode or "")

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _build(self, tools: str, mode: str) -> Any:
        """The chat graph for ``tools`` and ``mode`` (models load the first time)."""
        from lumos_graph.graphs.chat import create_chat_graph
        from lumos_graph.tools.toolsets import parse_tool_names

        names = parse_tool_names(tools)
        mode = mode or ("iterative" if {"qa", "vqa"} & set(names) else "onepass")
        # checkpointer=False: the agent keeps no checkpoints of its own; the session's
        # checkpoint holds each finished turn
        agent = build_agent(self.args, names, mode, self.err, checkpointer=False)
        self.mode = mode
        return create_chat_graph(agent, mode=mode, history=self.args.history,
                                 checkpointer=self.store.saver, cancel=self.cancel)

    def start(self, session: str) -> None:
        self.session = session
        turns = self.store.turns(session)
        if not turns:
            self._say(f"session {session} (new; resume with --session {session}); /help")
            return
        self._say(f"session {session}: {len(turns)} earlier turn{'s' * (len(turns) != 1)}")
        self._show(turns)

    def _show(self, turns: list[dict[str, Any]]) -> None:
        for turn in turns:
            report = turn["report"]
            self._say(f"> {turn['message']}")
            if report["status"] == "answered":
                self._say(f"Answer: {report['answer']}")
            else:
                self._say(f"No answer ({report['status']}): {report['reason']}")

    def loop(self, lines: Any) -> int:
        from lumos_graph.graphs.chat import TurnCancelledError

        for line in lines:
            text = line.strip()
            if not text:
                continue
            if self.echo:
                self._say(f"> {text}")
            if text.startswith("/"):
                if not self.command(text):
                    return 0
                continue
            try:
                self.turn(text)
            except (KeyboardInterrupt, TurnCancelledError):
                print("(turn cancelled; the session keeps its earlier turns)",
                      file=self.err, flush=True)
        return 0

    def turn(self, message: str) -> None:
        config = {"configurable": {"thread_id": self.session}}
        view = TraceView(self.out)
        final: dict[str, Any] = {}
        self.cancel.clear()
        with _cancel_on_sigint(self.cancel):
            for kind, chunk in self.graph.stream({"message": message}, config,
                                                 stream_mode=["custom", "values"]):
                if kind == "custom":
                    view.update(chunk["node"], chunk["delta"])
                else:
                    final = chunk
        # The stream ends after LangGraph has written the run's checkpoints, so the answer is
        # printed only once the turn is saved.
        view.finish(final["turns"][-1]["report"])

    def command(self, text: str) -> bool:
        """Run a slash command; ``False`` means leave."""
        name, _, rest = text.partition(" ")
        rest = rest.strip()
        if name in ("/exit", "/quit"):
            return False
        if name == "/help":
            self._say(HELP)
        elif name == "/new":
            self.start(_new_name(self.store))
        elif name == "/sessions":
            _print_sessions(self.store, self.out)
        elif name == "/history":
            self._show(self.store.turns(self.session))
        elif name in ("/tools", "/mode"):
            self._switch(name, rest)
        else:
            self._say(f"unknown command {name}; /help lists them")
        return True

    def _switch(self, name: str, value: str) -> None:
        tools, mode = self.tools, self.mode
        if name == "/tools" and value:
            tools = value
            mode = self.mode if self.mode_chosen else ""  # "": the tools' default formulation
        elif name == "/mode" and value:
            if value not in ("onepass", "iterative"):
                self._say("mode is onepass or iterative")
                return
            mode = value
        if (tools, mode) != (self.tools, self.mode):
            try:
                self.graph = self._build(tools, mode)
            except ConfigError as error:
                self._say(f"error: {error}")
                return
            self.tools = tools
            self.mode_chosen = self.mode_chosen or name == "/mode"
        self._say(f"tools: {self.tools}; mode: {self.mode}")


@contextlib.contextmanager
def _cancel_on_sigint(cancel: threading.Event) -> Iterator[None]:
    """Ctrl-C during a turn sets ``cancel`` before Python raises KeyboardInterrupt: LangGraph
    waits for the running node when the interrupt unwinds the stream, and the node stops at
    the agent's next step only when it sees ``cancel``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        cancel.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _lines(stdin: TextIO, out: TextIO, folder: Path) -> Any:
    """The user's lines: a prompt with editing and history on a terminal, else stdin."""
    if not (stdin.isatty() and out.isatty()):
        yield from stdin
        return
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    prompt: PromptSession[str] = PromptSession(history=FileHistory(str(folder / "chat_history")))
    while True:
        try:
            yield prompt.prompt("> ")
        except KeyboardInterrupt:  # at the prompt: clear the line, stay
            continue
        except EOFError:
            return
