"""``lumos-graph bench``: how close the agent runs to llama.cpp's own speed.

Six figures, on one model and one thread count:

1. ``raw_decode_tps``: llama-cpp-python's own generation loop (``create_completion``), the
   reference;
2. ``agent_decode_tps`` / ``grammar_decode_tps``: our chat model, free and under a GBNF grammar;
3. ``prefix_reuse``: the share of prompt tokens of an Iterative run served from the KV cache;
4. ``overhead_share``: wall time of a question minus time in model calls and tools, as a share;
5. ``load_s``, ``first_token_s``, ``peak_rss_mb``: cold start and memory;
6. ``onepass_s_per_question`` / ``iterative_s_per_question`` on the first questions of
   ``maths-dev``;
7. batching: ``samples5_ratio``, the wall time of OnePass with self-consistency over five
   branches (``samples=5``) over one greedy OnePass run, and ``concurrent8_ratio``, eight
   questions run at once (``agent.batch``) over the same eight one after another, with
   ``concurrent_answers_same`` counting the questions whose answer was the same both ways.
   Batched greedy decoding is not bit-identical to one sequence at a time: llama.cpp's kernels
   reduce in another order for another batch shape (llama.cpp issues #4479 and #6583), and a
   near-tie between two tokens can then go the other way.

Decode rates count tokens after the first one, over the time from the first to the last, so
that prompt evaluation is not mixed in.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterable
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage
from langchain_core.outputs import LLMResult

__all__ = ["BENCH_KEYS", "format_table", "run_bench"]

BENCH_KEYS = (
    "raw_decode_tps", "agent_decode_tps", "grammar_decode_tps", "prefix_reuse",
    "overhead_share", "load_s", "first_token_s", "peak_rss_mb", "onepass_s_per_question",
    "iterative_s_per_question", "samples5_ratio", "concurrent8_ratio",
)
_COUNT_PROMPT = "Write the numbers from 1 to 200, separated by commas, and nothing else."
_COUNT_GRAMMAR = 'root ::= [0-9]+ (", " [0-9]+)*'


def _rate(stamps: list[float], tokens: int) -> float:
    """Tokens per second after the first token."""
    if tokens < 2 or len(stamps) < 2 or stamps[-1] <= stamps[0]:
        return 0.0
    return (tokens - 1) / (stamps[-1] - stamps[0])


def _agent_decode(model: Any, grammar: str | None, max_tokens: int) -> tuple[float, float, str]:
    """(tokens/s, seconds to the first chunk, text) of one streamed call of our chat model."""
    kwargs: dict[str, Any] = {"max_tokens": max_tokens}
    if grammar:
        kwargs["grammar"] = grammar
    started = time.perf_counter()
    stamps: list[float] = []
    text, tokens = "", 0
    for chunk in model.stream([HumanMessage(_COUNT_PROMPT)], **kwargs):
        if chunk.content:
            stamps.append(time.perf_counter())
            text += str(chunk.content)
        if chunk.usage_metadata:
            tokens = chunk.usage_metadata["output_tokens"]
    first = (stamps[0] - started) if stamps else 0.0
    return _rate(stamps, tokens), first, text


def _raw_decode(model: Any, max_tokens: int, grammar: str | None = None) -> tuple[float, str]:
    """(tokens/s, text) of llama-cpp-python's own loop on the same loaded model and prompt.

    With ``grammar``, llama-cpp-python's own grammar sampling: fully constrained greedy
    decoding, the reference our faster grammar path must reproduce token for token.
    """
    from llama_cpp import LlamaGrammar

    pooled = model.pooled()
    prompt = model.render_prompt([HumanMessage(_COUNT_PROMPT)])
    compiled = LlamaGrammar.from_string(grammar, verbose=False) if grammar else None
    stamps: list[float] = []
    text = ""
    with pooled.lock:
        pooled.llm.reset()  # no KV reuse, so the comparison starts from the same place
        for part in pooled.llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0,
                                                 grammar=compiled, stream=True):
            stamps.append(time.perf_counter())
            text += part["choices"][0]["text"]
        pooled.llm.reset()
    return _rate(stamps, len(stamps)), text


class _CallLog(BaseCallbackHandler):
    """Per model call: the graph node (role) and its prompt, evaluated and output tokens."""

    def __init__(self) -> None:
        self.nodes: dict[Any, str] = {}
        self.calls: list[tuple[str, int, int, int]] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: Any,
                            metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.nodes[run_id] = (metadata or {}).get("langgraph_node", "?")

    def on_llm_end(self, response: LLMResult, *, run_id: Any, **kwargs: Any) -> None:
        message = response.generations[0][0].message  # type: ignore[attr-defined]
        usage = message.usage_metadata or {}
        evaluated = message.response_metadata.get("prompt_tokens_evaluated", 0)
        self.calls.append((self.nodes.pop(run_id, "?"), usage.get("input_tokens", 0),
                           usage.get("output_tokens", 0), evaluated))

    def excess_evaluation(self) -> float:
        """Prompt tokens evaluated on each role's later turns over the turns' new tokens, - 1.

        A turn's new tokens are its prompt minus the previous turn's prompt and output (those
        are in the KV cache when the prefix is reused).
        """
        evaluated = new = 0
        last: dict[str, tuple[int, int]] = {}
        for node, prompt, output, done in self.calls:
            if node in last and prompt > sum(last[node]):
                evaluated += done
                new += prompt - sum(last[node])
            last[node] = (prompt, output)
        return evaluated / new - 1 if new else 0.0


def _run_questions(agent: Any, questions: Iterable[str],
                   log: _CallLog | None = None) -> list[dict[str, float]]:
    rows = []
    for question in questions:
        started = time.perf_counter()
        config = {"callbacks": [log]} if log else {}
        state = agent.invoke({"task": question}, config)  # type: ignore[arg-type]
        wall = time.perf_counter() - started
        usage = state.get("usage", {})
        tools = sum(a.get("seconds", 0.0) for a in state.get("actions", []))
        rows.append({
            "wall": wall,
            "model": usage.get("model_seconds", 0.0),
            "tools": tools,
            "prompt": usage.get("prompt_tokens", 0),
            "cached": usage.get("prompt_tokens_cached", 0),
        })
    return rows


def run_bench(model_spec: str = "default", *, questions: int = 3,
              max_tokens: int = 128) -> dict[str, Any]:
    """Measure the ten figures (see the module docstring) and return them as a dict."""
    from lumos_graph.evaluation.datasets import load_dataset
    from lumos_graph.graphs.lumos import create_lumos_agent
    from lumos_graph.llm.llama_pool import model_pool
    from lumos_graph.llm.models import create_chat_model

    model = create_chat_model(model_spec)
    started = time.perf_counter()
    model.load()
    load_s = time.perf_counter() - started

    agent_tps, first_token_s, _ = _agent_decode(model, None, max_tokens)
    raw_tps, _ = _raw_decode(model, max_tokens)
    raw_grammar_tps, reference_text = _raw_decode(model, max_tokens, _COUNT_GRAMMAR)
    # _raw_decode leaves the context reset: the agent's grammar call starts cold too
    grammar_tps, _, grammar_text = _agent_decode(model, _COUNT_GRAMMAR, max_tokens)

    items = [item["question"] for item in load_dataset("maths-dev")[:questions]]
    onepass = _run_questions(create_lumos_agent(model, mode="onepass"), items)
    calls = _CallLog()
    iterative = _run_questions(create_lumos_agent(model, mode="iterative"), items, calls)

    sampled = _run_questions(create_lumos_agent(model, mode="onepass", samples=5), items)
    eight = [item["question"] for item in load_dataset("maths-dev")[:8]]
    agent = create_lumos_agent(model, mode="onepass")
    started = time.perf_counter()
    one_by_one = [agent.invoke({"task": q}).get("answer") for q in eight]
    sequential_s = time.perf_counter() - started
    started = time.perf_counter()
    together = [s.get("answer") for s in agent.batch([{"task": q} for q in eight],
                                                     {"max_concurrency": 8})]
    concurrent_s = time.perf_counter() - started

    rows = onepass + iterative
    wall = sum(r["wall"] for r in rows)
    overhead = wall - sum(r["model"] + r["tools"] for r in rows)
    prompt = sum(r["prompt"] for r in iterative)
    return {
        "model": model_spec,
        "n_threads": model.pool_key().n_threads,
        "raw_decode_tps": round(raw_tps, 2),
        "agent_decode_tps": round(agent_tps, 2),
        "grammar_decode_tps": round(grammar_tps, 2),
        "raw_grammar_decode_tps": round(raw_grammar_tps, 2),
        "grammar_output_matches_reference": grammar_text == reference_text,
        "prefix_reuse": round(sum(r["cached"] for r in iterative) / prompt, 4) if prompt else 0.0,
        "iterative_excess_evaluation": round(calls.excess_evaluation(), 4),
        "overhead_s_per_question": round(overhead / max(1, len(rows)), 4),
        "overhead_share": round(overhead / wall, 4) if wall else 0.0,
        "load_s": round(load_s, 3),
        "first_token_s": round(first_token_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "models_loaded": len(model_pool().keys()),
        "questions": len(items),
        "onepass_s_per_question": round(sum(r["wall"] for r in onepass) / len(items), 2),
        "iterative_s_per_question": round(sum(r["wall"] for r in iterative) / len(items), 2),
        "samples5_s_per_question": round(sum(r["wall"] for r in sampled) / len(items), 2),
        "samples5_ratio": round(sum(r["wall"] for r in sampled)
                                / max(1e-9, sum(r["wall"] for r in onepass)), 2),
        "sequential8_s": round(sequential_s, 2),
        "concurrent8_s": round(concurrent_s, 2),
        "concurrent8_ratio": round(concurrent_s / sequential_s, 2) if sequential_s else 0.0,
        "concurrent_answers_same": sum(a == b for a, b in zip(one_by_one, together,
                                                              strict=True)),
    }


def format_table(figures: dict[str, Any]) -> str:
    """The figures as an aligned two-column table."""
    labels = {
        "raw_decode_tps": "raw llama-cpp-python decode (tok/s)",
        "agent_decode_tps": "agent decode, free (tok/s)",
        "grammar_decode_tps": "agent decode, GBNF grammar (tok/s)",
        "raw_grammar_decode_tps": "llama-cpp-python's own grammar decode (tok/s)",
        "grammar_output_matches_reference": "grammar output = fully constrained greedy",
        "prefix_reuse": "prompt tokens from KV cache (iterative)",
        "iterative_excess_evaluation": "evaluated / new prompt tokens - 1 (later turns)",
        "overhead_s_per_question": "framework overhead (s/question)",
        "overhead_share": "framework overhead (share of wall time)",
        "load_s": "model load (s)",
        "first_token_s": "time to first token (s)",
        "peak_rss_mb": "peak resident memory (MB)",
        "models_loaded": "GGUF files loaded in this process",
        "onepass_s_per_question": "OnePass (s/question)",
        "iterative_s_per_question": "Iterative (s/question)",
        "samples5_s_per_question": "OnePass, --samples 5 (s/question)",
        "samples5_ratio": "--samples 5 / one greedy run (wall time)",
        "sequential8_s": "8 questions one after another (s)",
        "concurrent8_s": "the same 8 at once, agent.batch (s)",
        "concurrent8_ratio": "at once / one after another",
        "concurrent_answers_same": "of the 8, same answer at once as one after another",
    }
    width = max(len(v) for v in labels.values())
    lines = [f"model {figures['model']}, {figures['n_threads']} threads, "
             f"{figures['questions']} maths-dev questions"]
    lines += [f"{label:<{width}}  {figures[key]}" for key, label in labels.items()]
    return "\n".join(lines)
