"""The AMX-safe entry point of llama-cpp-python's server (lumos_graph.llm.llama_server); the
real server runs in tests/llm/test_openai_server_end_to_end.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lumos_graph.llm import llama_server
from tests.needs import need

llama_cpp = need("llama_cpp")


class Params:
    use_extra_bufts = True


def test_on_an_amx_cpu_every_model_loads_without_extra_buffer_types(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llama_cpp, "Llama", llama_cpp.Llama)  # put back after the test
    monkeypatch.setattr(llama_server, "has_amx", lambda: False)
    assert not llama_server.guard_amx()
    assert llama_cpp.Llama is llama_cpp.llama.Llama  # untouched without AMX
    monkeypatch.setattr(llama_server, "has_amx", lambda: True)
    assert llama_server.guard_amx()
    guarded = llama_cpp.Llama
    assert issubclass(guarded, llama_cpp.llama.Llama) and guarded is not llama_cpp.llama.Llama
    # Llama.__init__ sets model_params, then loads the model from it
    assert guarded.lumos_extra_bufts is False
    holder, params = SimpleNamespace(lumos_extra_bufts=guarded.lumos_extra_bufts), Params()
    guarded.model_params.fset(holder, params)
    assert params.use_extra_bufts is False and guarded.model_params.fget(holder) is params
