"""``python -m lumos_graph.llm.llama_server ARGS``: llama-cpp-python's own OpenAI-compatible
server (``python -m llama_cpp.server ARGS``, the same arguments and behaviour), safe on AMX CPUs.

A native build of llama-cpp-python 0.3.36 on an AMX CPU segfaults on the first decode (see
:mod:`lumos_graph.llm.hardware`); its server exposes no setting that turns the crashing
buffers off. On such a CPU this entry point loads every model with ``use_extra_bufts=False``
(our local backend's guard), then runs the server unchanged; elsewhere it only runs the server.
Point any role at it with ``--model openai:http://HOST:PORT/v1``.
"""

from __future__ import annotations

import runpy

from lumos_graph.llm.hardware import has_amx
from lumos_graph.llm.llama_context import extra_bufts_llama

__all__ = ["guard_amx", "main"]


def guard_amx() -> bool:
    """On an AMX CPU, make ``llama_cpp.Llama`` load models without extra buffer types (the
    server creates its models through ``llama_cpp.Llama``). Returns whether it did."""
    if not has_amx():
        return False
    import llama_cpp

    class GuardedLlama(extra_bufts_llama(llama_cpp.Llama)):  # type: ignore[misc]
        lumos_extra_bufts = False

    llama_cpp.Llama = GuardedLlama  # type: ignore[misc]
    return True


def main() -> None:
    """Guard, then run ``llama_cpp.server`` as ``python -m llama_cpp.server`` would."""
    guard_amx()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
