"""The README's maths examples print the true answer with the real default model.

The set-up command's question and the Python snippet are read from the README itself, run as a
user runs them, and checked against the arithmetic of the question done here, so a README that
starts showing a wrong answer fails this test.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lumos_graph.evaluation.metrics import numeric_match

pytestmark = pytest.mark.model

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
PENCILS = 3 * 12 - 10  # "Tom has 3 boxes of 12 pencils and gives away 10 ..."


def test_the_setup_command_answers_its_question(default_gguf: Path) -> None:
    match = re.search(r'pip install \. && lumos-graph ask "([^"]+)"', README)
    assert match, "the README's set-up command is not `pip install . && lumos-graph ask ...`"
    question = match.group(1)
    assert "3 boxes of 12 pencils" in question and "gives away 10" in question
    result = subprocess.run([sys.executable, "-m", "lumos_graph", "ask", "--json", question],
                            capture_output=True, text=True, timeout=900,
                            stdin=subprocess.DEVNULL, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "answered", doc["reason"]
    assert numeric_match(doc["answer"], str(PENCILS)), (doc["answer"], doc["actions"])
    assert result.returncode == 0


def test_the_python_snippet_answers_its_question(default_gguf: Path) -> None:
    match = re.search(r"```python\n(from lumos_graph import create_lumos_agent\n.*?)```", README,
                      re.DOTALL)
    assert match, "the README's Python snippet is missing"
    snippet = match.group(1)
    assert "3 boxes of 12 pencils and gives away 10" in snippet
    result = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True,
                            timeout=900, stdin=subprocess.DEVNULL, check=False)
    assert result.returncode == 0, result.stderr
    answer, status = result.stdout.split()[:2]
    assert status == "answered"
    assert numeric_match(answer, str(PENCILS)), result.stdout
