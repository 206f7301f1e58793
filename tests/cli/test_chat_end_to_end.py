"""``lumos-graph chat`` with the real default model (the issue's acceptance run): a follow-up
sees the earlier turn, the session survives the process, ``--list`` lists it. Loads the model:
run under the model lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def chat(data: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lumos_graph", "chat", *args], input=stdin,
                          capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "XDG_DATA_HOME": str(data)})


def answers(stdout: str) -> list[float]:
    return [float(line.split()[1]) for line in stdout.splitlines() if line.startswith("Answer: ")]


@pytest.mark.model
def test_a_follow_up_question_sees_the_earlier_turn(tmp_path: Path, default_gguf: Path) -> None:
    boxes, per_box, given = 3, 12, 10
    script = (f"Tom has {boxes} boxes of {per_box} pencils. How many pencils?\n"
              f"And if he gives away {given}?\n")
    first = chat(tmp_path, "--session", "t1", stdin=script)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr and "\x1b" not in first.stdout
    # The follow-up alone names no box or pencil count: answering it needs the first turn.
    found = answers(first.stdout)
    assert found == [boxes * per_box, boxes * per_box - given], first.stdout

    again = chat(tmp_path, "--session", "t1")
    assert "session t1: 2 earlier turns" in again.stdout
    assert answers(again.stdout) == answers(first.stdout)
    assert chat(tmp_path, "--list").stdout.split()[:3] == ["t1", "2", "turns"]
