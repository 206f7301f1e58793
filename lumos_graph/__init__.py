"""lumos-graph: trainable, modular LUMOS agents as LangGraph graphs on local GGUF models.

```python
from lumos_graph import create_lumos_agent

agent = create_lumos_agent(mode="iterative")       # default local model, maths actions
state = agent.invoke({"task": "Leah had $32 and spent $4. How much is left?"})
print(state["answer"], state["status"])
```
"""

from lumos_graph.agent.actions import Action, ActionSet, Value
from lumos_graph.agent.protocol import ParseError
from lumos_graph.agent.state import ActionRecord, LumosState
from lumos_graph.errors import (
    ConfigError,
    ContextOverflowError,
    LumosError,
    ModelNotFoundError,
    RunError,
    ToolError,
)

__all__ = [
    "Action",
    "ActionRecord",
    "ActionSet",
    "AgentSpec",
    "Caps",
    "ChatLlamaCpp",
    "ConfigError",
    "ContextOverflowError",
    "DEFAULT_PRESET",
    "LumosError",
    "LumosState",
    "ModelNotFoundError",
    "ModelSpec",
    "ParseError",
    "RunError",
    "ToolError",
    "Value",
    "build_lumos_graph",
    "create_actions",
    "create_alpha_umi_agent",
    "create_chat_model",
    "create_lumos_agent",
    "list_presets",
    "math_actions",
    "qa_actions",
    "resolve_model",
    "run_report",
    "sql_actions",
]

__version__ = "0.1.0"

# Heavy modules (LangGraph, sympy, the llama.cpp native library) load on first use: the CLI
# starts fast, and an app that brings its own chat models never loads llama.cpp.
_LAZY = {
    "AgentSpec": "agent.nodes",
    "Caps": "agent.nodes",
    "build_lumos_graph": "graphs.lumos",
    "create_lumos_agent": "graphs.lumos",
    "create_alpha_umi_agent": "graphs.alpha_umi",
    "run_report": "agent.report",
    "ChatLlamaCpp": "llm.llama",
    "DEFAULT_PRESET": "llm.models",
    "ModelSpec": "llm.models",
    "create_chat_model": "llm.models",
    "list_presets": "llm.models",
    "resolve_model": "llm.models",
    "math_actions": "tools.maths.actions",
    "qa_actions": "tools.qa.actions",
    "sql_actions": "tools.sql.actions",
    "create_actions": "tools.toolsets",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
