"""The graphs of ``langgraph.json``, served by LangGraph's own server (``langgraph dev``) in a
subprocess and driven through ``langgraph-sdk``: answers come back, and a thread's state
persists between runs.

The real-model test loads the default GGUF in the server process: run it under the model lock
(``flock /tmp/model.lock python -m pytest -m model tests/graphs/test_serve.py``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.needs import need

need("langgraph_cli")  # the serve extra: langgraph-cli[inmem] and langgraph-sdk
need("langgraph_sdk")

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "langgraph.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ok", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


class Server:
    """``langgraph dev`` on a free loopback port, stopped (process group and all) on exit."""

    def __init__(self, config: Path, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (cwd / "server.log").open("w")
        self.proc = subprocess.Popen(  # `langgraph dev`, run by this interpreter
            [sys.executable, "-m", "langgraph_cli", "dev", "--port", str(self.port), "--no-browser", "--no-reload",
             "--config", str(config)],
            cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false",
                 "PYTHONPATH": str(ROOT), **(env or {})})

    def wait_ready(self, seconds: float = 180) -> None:
        deadline = time.monotonic() + seconds
        while not _ok(self.url):
            assert self.proc.poll() is None, self.log_text()
            assert time.monotonic() < deadline, f"no server after {seconds} s\n{self.log_text()}"
            time.sleep(0.5)

    def log_text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def serve(config: Path, cwd: Path, env: dict[str, str] | None = None) -> Iterator[Any]:
    from langgraph_sdk import get_sync_client

    server = Server(config, cwd, env)
    try:
        server.wait_ready()
        with get_sync_client(url=server.url) as client:
            yield client
    finally:
        server.stop()


def test_langgraph_json_declares_the_lumos_graphs_as_compiled_graphs() -> None:
    from langgraph.pregel import Pregel

    from lumos_graph.graphs import serve as served

    graphs = json.loads(CONFIG.read_text())["graphs"]
    assert set(graphs) == {"lumos-onepass", "lumos-iterative", "lumos-chat"}
    for entry in graphs.values():
        module, variable = entry["path"].split(":")
        assert module == "lumos_graph.graphs.serve"
        graph = getattr(served, variable)
        assert isinstance(graph, Pregel)
        assert graph.checkpointer is None  # the server brings persistence; it refuses others
    assert served.onepass.name == "lumos-onepass" and served.iterative.name == "lumos-iterative"


FAKE_GRAPHS = """
from lumos_graph.graphs.chat import create_chat_graph
from tests.cli.fake_chat_agent import fake_build_agent

chat = create_chat_graph(fake_build_agent(None, ["maths"], "onepass", None, checkpointer=False))
"""


def test_the_server_keeps_a_chat_thread_between_runs(tmp_path: Path) -> None:
    """The server mechanics with a stand-in agent (no model): each run is one turn."""
    (tmp_path / "fake_graphs.py").write_text(FAKE_GRAPHS)
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"dependencies": ["."],
                                  "graphs": {"chat": "./fake_graphs.py:chat"}}))
    for client in serve(config, tmp_path):
        thread = client.threads.create()["thread_id"]
        client.runs.wait(thread, "chat", input={"message": "Tom has 3 boxes."})
        client.runs.wait(thread, "chat", input={"message": "And then?"})
        turns = client.threads.get_state(thread)["values"]["turns"]
        assert [t["message"] for t in turns] == ["Tom has 3 boxes.", "And then?"]
        # the fake agent answers with its task: the second run saw the first turn
        assert turns[1]["report"]["answer"] == (
            "Tom has 3 boxes. The answer was Tom has 3 boxes. And then?")


@pytest.mark.model
def test_langgraph_dev_serves_the_lumos_graphs(tmp_path: Path, default_gguf: Path) -> None:
    for client in serve(CONFIG, tmp_path):
        task = "Leah had 32 dollars and spent 4 dollars on a book. How many dollars are left?"
        thread = client.threads.create()["thread_id"]
        final = client.runs.wait(thread, "lumos-onepass", input={"task": task})
        assert final["status"] == "answered", final
        assert float(final["answer"]) == 32 - 4
        saved = client.threads.get_state(thread)["values"]  # the thread keeps the run's state
        assert (saved["task"], saved["answer"]) == (task, final["answer"])
        assert saved["subgoals"] and saved["actions"]

        chat = client.threads.create()["thread_id"]
        first = "Tom has 3 boxes of 12 pencils. How many pencils does he have?"
        client.runs.wait(chat, "lumos-chat", input={"message": first})
        client.runs.wait(chat, "lumos-chat", input={"message": "And if he gives away 10?"})
        turns = client.threads.get_state(chat)["values"]["turns"]
        assert [t["message"] for t in turns] == [first, "And if he gives away 10?"]
        assert turns[1]["report"]["task"].startswith(first)  # the second run saw the first
