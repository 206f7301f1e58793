"""Both LUMOS roles on a real OpenAI-compatible server: ``python -m llama_cpp.server`` on the
default GGUF (through ``lumos_graph.llm.llama_server``, its AMX-safe entry point), started
here, with ``lumos-graph ask --model openai:URL``; the grammar travels with each request.
Loads the model (in the server): run under the model lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.needs import need

need("langchain_openai")
need("llama_cpp.server.app")  # pip install "llama-cpp-python[server]" (in the test extra)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


@pytest.mark.model
def test_ask_through_a_llama_cpp_server_answers(default_gguf: Path, tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    with (tmp_path / "server.log").open("w") as log, subprocess.Popen(
        # llama_cpp.server with our AMX guard (the plain server segfaults on AMX CPUs)
        [sys.executable, "-m", "lumos_graph.llm.llama_server", "--model", str(default_gguf),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "2"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    ) as server:
        try:
            deadline = time.monotonic() + 180
            while not _answers(url):
                assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the llama.cpp server did not start"
                time.sleep(0.5)
            task = "Leah had 32 dollars and spent 4 dollars on a book. How many dollars are left?"
            result = subprocess.run(
                [sys.executable, "-m", "lumos_graph", "ask", "--model", f"openai:{url}",
                 "--json", task],
                capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                check=False)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "answered"
    assert float(report["answer"]) == 32 - 4
    assert report["usage"]["model_calls"] >= 2  # planner and grounder, both on the server
