"""The local model backend: ``ChatLlamaCpp`` over llama-cpp-python, its process-wide pool and
per-conversation KV contexts, model presets and resolution, hardware facts, LoRA GGUF files
and LangChain tool calling.
"""
