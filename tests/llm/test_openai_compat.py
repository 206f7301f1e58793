"""Roles on an OpenAI-compatible server: the grammar travels in the request body under the
field the server reads, ``max_tokens`` stays ``max_tokens``, a server that does not answer is
one line before anything runs. A stand-in server on loopback records the requests; the real
``python -m llama_cpp.server`` runs in ``test_openai_server_end_to_end.py``."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from tests.needs import need

need("langchain_openai")

from lumos_graph.errors import ConfigError, ModelNotFoundError
from lumos_graph.llm.models import create_chat_model


class _Recorder(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _json(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # http.server's name
        self._json({"object": "list", "data": [{"id": "stand-in", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.bodies.append(body)
        self._json({
            "id": "1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "R1 = Calculator(2 + 2)"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        })


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    bodies: list[dict[str, Any]] = []
    handler = type("Handler", (_Recorder,), {"bodies": bodies})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", bodies
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


GBNF = 'root ::= "R1 = Calculator(" [0-9+ ]+ ")"'


def test_the_grammar_goes_where_each_server_reads_it(
        server: tuple[str, list[dict[str, Any]]]) -> None:
    url, bodies = server
    llama = create_chat_model(f"openai:{url}", temperature=0.5, seed=3, n_ctx=2048)
    llama.load()
    reply = llama.invoke("What is 2 + 2?", grammar=GBNF, max_tokens=20, stop=["\n"])
    assert reply.content == "R1 = Calculator(2 + 2)"
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] == 7
    sent = bodies[-1]
    assert (sent["grammar"], sent["max_tokens"], sent["stop"]) == (GBNF, 20, ["\n"])
    assert (sent["temperature"], sent["seed"], sent["model"]) == (0.5, 3, "default")
    assert "max_completion_tokens" not in sent and "n_ctx" not in sent

    vllm = create_chat_model(f"vllm:{url}#qwen")
    vllm.invoke("What is 2 + 2?", grammar=GBNF)
    assert bodies[-1]["guided_grammar"] == GBNF and "grammar" not in bodies[-1]
    assert bodies[-1]["model"] == "qwen"

    plain = create_chat_model(f"openai-nogrammar:{url}")
    assert plain.accepts_grammar is False and llama.accepts_grammar is True


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_server_that_does_not_answer_is_one_line() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    with pytest.raises(ConfigError, match="does not answer"):
        create_chat_model(f"openai:{url}").load()
    result = subprocess.run(
        [sys.executable, "-m", "lumos_graph", "ask", "--model", f"openai:{url}", "What is 2+2?"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("lumos-graph: error: the OpenAI-compatible server at")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_bad_server_reference() -> None:
    with pytest.raises(ModelNotFoundError, match="expected openai:http"):
        create_chat_model("openai:127.0.0.1:8080")
