"""``lumos-graph bench --json`` prints every figure, with sane values (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lumos_graph.evaluation.bench import BENCH_KEYS

pytestmark = pytest.mark.model


def test_bench_prints_every_figure(default_gguf: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lumos_graph", "bench", "--questions", "1", "--json"],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL, check=True)
    figures = json.loads(result.stdout)
    assert set(BENCH_KEYS) <= set(figures)
    for key in ("raw_decode_tps", "agent_decode_tps", "grammar_decode_tps", "load_s",
                "first_token_s", "peak_rss_mb", "onepass_s_per_question",
                "iterative_s_per_question"):
        assert figures[key] > 0, key
    assert 0 <= figures["prefix_reuse"] <= 1
    assert figures["overhead_share"] < 1
    assert figures["models_loaded"] == 1  # planner and grounder share one loaded GGUF
    assert figures["grammar_output_matches_reference"] is True
    assert 0 <= figures["concurrent_answers_same"] <= 8
