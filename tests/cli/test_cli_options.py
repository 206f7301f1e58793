"""Model settings on the command line, the preset list, hub references without a network,
and progress lines when the output is not a terminal."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lumos_graph.cli._options import load_models, model_overrides
from lumos_graph.cli._view import Spinner
from lumos_graph.cli.main import _parser
from lumos_graph.llm.llama import ChatLlamaCpp
from lumos_graph.llm.models import list_presets


def lumos(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lumos_graph", *args], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, check=False,
                          env={**os.environ, **(env or {})})


def test_model_settings_reach_the_model(monkeypatch: pytest.MonkeyPatch,
                                        default_gguf: Path) -> None:
    monkeypatch.setattr(ChatLlamaCpp, "load", lambda self: None)  # settings only, no weights
    for command in (["ask", "Q?"], ["chat"], ["eval"]):
        args = _parser().parse_args([*command, "--threads", "1", "--n-ctx", "2048",
                                     "--temperature", "0.5", "--seed", "7"])
        (model,) = load_models(io.StringIO(), ["qwen2.5-coder-0.5b"],
                               overrides=model_overrides(args))
        assert (model.n_threads, model.n_ctx, model.temperature, model.seed) == (1, 2048, 0.5, 7)
    (model,) = load_models(io.StringIO(), ["qwen2.5-coder-0.5b"], overrides={})
    assert (model.n_threads, model.n_ctx, model.temperature, model.seed) == (None, 4096, 0.0, None)


@pytest.mark.parametrize("option", [["--threads", "0"], ["--n-ctx", "x"],
                                    ["--temperature", "-1"], ["--seed", "-3"]])
def test_bad_model_settings_are_usage_errors(option: list[str]) -> None:
    result = lumos("ask", *option, "Q?")
    assert result.returncode == 2
    assert f"argument {option[0]}" in result.stderr and "Traceback" not in result.stderr


def test_models_marks_what_runs_now_and_says_how_to_get_the_rest() -> None:
    result = lumos("models")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    presets = list_presets()
    for preset in presets:
        state = "ready" if preset.installed else "needs"
        row = next(i for i, line in enumerate(lines) if line.startswith(f"{state}  {preset.name}"))
        if not preset.installed:
            assert lines[row + 1].strip() == f"get it: {preset.how_to_get}"
    missing = [p for p in presets if not p.installed and p.name.startswith("lumos-maths-plan")]
    for preset in missing:  # a converted LUMOS checkpoint: where it comes from, where it goes
        assert "ai2lumos/lumos_maths_plan" in preset.how_to_get
        assert "convert_hf_to_gguf.py" in preset.how_to_get
    ready = sum(p.installed for p in presets)
    assert f"{ready} of {len(presets)} presets can run now" in result.stdout


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_hub_reference_without_a_network_fails_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", "HF_HOME": str(tmp_path)}
    started = time.monotonic()
    result = lumos("ask", "--model", "hf:someone/some-repo/model.gguf", "Q?", env=env)
    seconds = time.monotonic() - started
    assert result.returncode == 2
    assert result.stderr.startswith("lumos-graph: error: cannot download someone/some-repo/")
    assert len(result.stderr.strip().splitlines()) == 1  # no retry lines
    assert seconds < 20, f"took {seconds:.1f} s"  # huggingface-hub's own retries take ~24 s
    offline = lumos("ask", "--model", "hf:someone/some-repo/model.gguf", "Q?",
                    env={**env, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 2
    assert "HF_HUB_OFFLINE" in offline.stderr


def test_slow_steps_print_plain_lines_when_not_on_a_terminal() -> None:
    err = io.StringIO()
    with Spinner(err, "loading model", after=0.0):
        time.sleep(0.2)
    lines = err.getvalue().splitlines()
    assert lines[0] == "lumos-graph: loading model..."
    assert lines[1].startswith("lumos-graph: loading model: done in ")
    assert "\r" not in err.getvalue() and "\x1b" not in err.getvalue()
    quick = io.StringIO()
    with Spinner(quick, "indexing", after=60.0):  # done before a line is due: nothing
        pass
    quiet = io.StringIO()
    with Spinner(quiet, "thinking", plain=False, after=0.0):
        time.sleep(0.2)
    assert quick.getvalue() == quiet.getvalue() == ""


def test_temperature_zero_makes_the_default_agent_one_greedy_run(
        monkeypatch: pytest.MonkeyPatch, default_gguf: Path) -> None:
    from lumos_graph.cli._options import build_agent

    monkeypatch.setattr(ChatLlamaCpp, "load", lambda self: None)  # the agent only, no weights

    def agent(*options: str) -> str:
        args = _parser().parse_args(["ask", "Q?", *options])
        return build_agent(args, ["maths"], "onepass", io.StringIO()).get_name()

    assert agent() == "lumos-onepass-x6"  # the default: a vote over six programs
    assert agent("--temperature", "0.5") == "lumos-onepass-x6"  # the sampled branches' setting
    assert agent("--temperature", "0") == "lumos-onepass"
    assert agent("--samples", "3") == "lumos-onepass-x3"
