"""``examples/bring_your_own_tool.py``, run as a user runs it with the real default model,
prints the true answer: its tools' prices and discount, computed here without the agent."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lumos_graph.evaluation.metrics import numeric_match

pytestmark = pytest.mark.model

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bring_your_own_tool.py"


def example_truth() -> float:
    """The cost the example's task asks for, from the example's own price table."""
    tree = ast.parse(EXAMPLE.read_text(encoding="utf-8"))
    prices = next(
        ast.literal_eval(node.value) for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "PRICES"
                                                for t in node.targets)
    )
    task = next(
        node.value.value for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "task"
                                                for t in node.targets)
    )
    match = re.fullmatch(r"What do (\d+) (\w+?)s cost with a (\d+) percent discount\?", task)
    assert match, f"the example's task changed: {task!r}; update this test"
    count, item, percent = int(match[1]), match[2], float(match[3])
    return count * prices[item] * (1 - percent / 100)


def test_the_example_prints_the_true_answer(default_gguf: Path) -> None:
    truth = example_truth()
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                            check=False, cwd=EXAMPLE.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    answers = re.findall(r"^answer: (.*?) \((\w+): ", result.stdout, re.MULTILINE)
    assert answers, result.stdout
    answer, status = answers[-1]
    assert status == "answered", result.stdout
    assert numeric_match(answer, str(truth)), f"{answer} != {truth}\n{result.stdout}"
