"""The LUMOS agent core: the protocol (every model-facing text and every parser), grammars,
action specs and their execution, the graph state, and the nodes and routers the graphs wire.

Talks to any LangChain chat model; never imports the llama.cpp backend (:mod:`lumos_graph.llm`).
"""
