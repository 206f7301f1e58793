"""``lumos-graph chat``: piped turns, persisted sessions, follow-ups that see earlier turns,
slash commands, and a process killed mid-turn that keeps every answered turn.

The agent is a stand-in (``tests/cli/fake_chat_agent.py``: it answers with the task it got),
so these tests run no model; the sessions are real SQLite files in a temporary data folder.
The real model's chat is in ``test_chat_end_to_end.py``.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lumos_graph.cli import chat
from lumos_graph.cli.main import _parser
from tests.cli.fake_chat_agent import fake_build_agent

ROOT = Path(__file__).resolve().parents[2]
Q1 = "Tom has 3 boxes of 12 pencils. How many pencils?"
Q2 = "And if he gives away 10?"


def _env(data: Path) -> dict[str, str]:
    return {**os.environ, "XDG_DATA_HOME": str(data), "PYTHONPATH": str(ROOT)}


def fake_chat(data: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.cli.fake_chat_agent", "chat", *args],
                          input=stdin, capture_output=True, text=True, timeout=120, check=False,
                          env=_env(data), cwd=ROOT)


def answers(stdout: str) -> list[str]:
    return [line[len("Answer: "):] for line in stdout.splitlines() if line.startswith("Answer: ")]


def test_piped_turns_persist_and_a_follow_up_carries_the_earlier_turn(tmp_path: Path) -> None:
    first = fake_chat(tmp_path, "--session", "t1", stdin=f"{Q1}\n\n{Q2}\n")
    assert first.returncode == 0, first.stderr
    # the fake agent answers with its task: the follow-up's task holds the first turn
    assert answers(first.stdout) == [Q1, f"{Q1} The answer was {Q1} {Q2}"]
    assert f"> {Q1}" in first.stdout and f"> {Q2}" in first.stdout  # piped input is echoed
    assert "\x1b" not in first.stdout + first.stderr  # no escape codes without a terminal
    assert (tmp_path / "lumos-graph" / "chat.sqlite").is_file()

    again = fake_chat(tmp_path, "--session", "t1")
    assert again.returncode == 0, again.stderr
    assert "session t1: 2 earlier turns" in again.stdout
    assert answers(again.stdout) == answers(first.stdout)

    listed = fake_chat(tmp_path, "--list")
    assert listed.returncode == 0
    assert listed.stdout.split()[:3] == ["t1", "2", "turns"]


def _read_until(stream: io.TextIOBase, needle: str) -> str:
    seen = ""
    while needle not in seen:
        line = stream.readline()
        assert line, f"the chat ended before printing {needle!r}:\n{seen}"
        seen += line
    return seen


def test_sigkill_in_the_middle_of_a_turn_keeps_every_answered_turn(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "tests.cli.fake_chat_agent", "chat", "--session", "k"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=_env(tmp_path), cwd=ROOT,
    ) as proc:
        guard = threading.Timer(120, proc.kill)  # never hang the suite
        guard.start()
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(f"{Q1}\n")
            proc.stdin.flush()
            _read_until(proc.stdout, "Answer: ")
            proc.stdin.write("HANG on this one\n")
            proc.stdin.flush()
            _read_until(proc.stdout, "Subgoal 1:")  # the second turn is running
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        finally:
            guard.cancel()
    assert proc.returncode == -signal.SIGKILL

    resumed = fake_chat(tmp_path, "--session", "k", stdin=f"{Q2}\n")
    assert resumed.returncode == 0, resumed.stderr
    assert "session k: 1 earlier turn" in resumed.stdout
    # the answered turn survived; the killed one is gone; the session goes on
    assert answers(resumed.stdout) == [Q1, f"{Q1} The answer was {Q1} {Q2}"]
    assert fake_chat(tmp_path, "--list").stdout.split()[:3] == ["k", "2", "turns"]


def test_ctrl_c_cancels_the_running_turn_and_keeps_the_session(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "tests.cli.fake_chat_agent", "chat", "--session", "c"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(tmp_path), cwd=ROOT,
    ) as proc:
        guard = threading.Timer(120, proc.kill)
        guard.start()
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(f"{Q1}\nHANG on\n")
            proc.stdin.flush()
            _read_until(proc.stdout, "> HANG on")
            _read_until(proc.stdout, "Subgoal 1:")  # the second turn runs
            proc.send_signal(signal.SIGINT)
            proc.stdin.write(f"{Q2}\n")  # the session goes on after the cancelled turn
            proc.stdin.close()
            rest = proc.stdout.read()
            errors = proc.stderr.read() if proc.stderr else ""
            proc.wait()
        finally:
            guard.cancel()
    assert proc.returncode == 0, errors
    assert "(turn cancelled; the session keeps its earlier turns)" in errors
    assert answers(rest) == [f"{Q1} The answer was {Q1} {Q2}"]  # no answer for the cancelled


def _run_in_process(monkeypatch: pytest.MonkeyPatch, data: Path, stdin: str,
                    *args: str) -> tuple[int, str]:
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setattr(chat, "build_agent", fake_build_agent)
    parsed: argparse.Namespace = _parser().parse_args(["chat", *args])
    out, err = io.StringIO(), io.StringIO()
    status = chat.run(parsed, io.StringIO(stdin), out, err)
    return status, out.getvalue()


def test_slash_commands(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    script = "\n".join([
        "/help", "/mode", "/tools maths,web", "/tools maths,qa", "/tools maths", "/mode iterative",
        "/mode sideways", "/tools maths,sql", "/nonsense", "How many?", "/history", "/new",
        "Another?", "/sessions", "/exit", "never read",
    ]) + "\n"
    status, out = _run_in_process(monkeypatch, tmp_path, script, "--session", "s1")
    assert status == 0
    assert "/sessions         list the saved sessions" in out
    replies = [line for line in out.splitlines() if line.startswith(("tools:", "error:", "mode"))]
    assert replies == [
        "tools: maths; mode: onepass",
        "error: unknown tool set 'web'; choose from maths, qa, sql, vqa",
        "tools: maths,qa; mode: iterative",  # the QA default, as in ask
        "tools: maths; mode: onepass",
        "tools: maths; mode: iterative",
        "mode is onepass or iterative",
        "tools: maths,sql; mode: iterative",  # a chosen mode stays
    ]
    assert "unknown command /nonsense" in out
    assert answers(out) == ["How many?", "How many?", "Another?"]  # turn, /history, new session
    assert "never read" not in out  # /exit left
    sessions = chat._Store(chat.sessions_path())
    try:
        names = [name for name, _, _ in sessions.sessions()]
        assert max(names) == "s1" and len(names) == 2
        assert [t["message"] for t in sessions.turns("s1")] == ["How many?"]
    finally:
        sessions.close()


def test_list_without_sessions_and_a_bad_history(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    status, out = _run_in_process(monkeypatch, tmp_path, "", "--list")
    assert status == 0 and out.startswith("no saved sessions")
    result = fake_chat(tmp_path, "--history", "-1")
    assert result.returncode == 2
    assert result.stderr.strip() == "lumos-graph: error: --history must be 0 or more"
