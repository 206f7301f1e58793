"""``lumos-graph eval``: several agents on the same examples, side by side, resumable.

For every example, every agent runs on the same local model with the same tools (chosen by the
example's ``kind``: ``maths`` → the maths set; ``yesno``/``qa`` → the complex-QA set; ``sql`` →
the SQL set on the example's ``db``; ``vqa`` → the VQA set). Agents:

* ``lumos-onepass``, ``lumos-iterative``: :func:`~lumos_graph.graphs.lumos.create_lumos_agent`;
* ``lumos-program``: OnePass with program grounding (maths): the model's subgoals, then it
  writes them as one Python program that the ``Code`` action runs (the default maths agent);
* ``alpha-umi``: :func:`~lumos_graph.graphs.alpha_umi.create_alpha_umi_agent` (planner, caller
  and summarizer, all the run's model; its trajectories add ``history`` and ``decisions``);
* ``react``: LangChain's ``create_agent`` over our chat model's ``bind_tools`` (JSON tool calls
  under a grammar), the agent a LangChain user would build instead;
* ``direct``: the model alone with a chain-of-thought prompt; on ``sql`` examples the
  standard text-to-SQL baseline instead (one query written from the schema and a few rows of
  each table, executed once; its result is the answer).

**Output folder** (``--out``; default ``lumos-eval/<dataset>-<model>``)::

    run.json                      what was run (dataset, model, agents, samples): a resumed run must match
    trajectories/<agent>.jsonl    one trajectory per example, appended as each finishes (with
                                  ``samples``, every branch's answer, when the agent voted)
    results.json                  the summary (the object ``--json`` prints)
    results.md                    the side-by-side table
    accuracy_vs_seconds.png       accuracy against seconds per question, one point per agent

Every table shows, per agent, the accuracy with its 95% Wilson interval (``accuracy_ci95``),
seconds and model calls per question; when the examples hold yes/no questions, the rate of
always giving their commoner gold answer (``majority_class``) comes under it, the floor a
yes/no agent must clear.

An interrupted run resumes from the trajectories already written: finished examples are never
run again (a half-written last line is dropped and that example re-run).

**Trajectory format** (one JSON object per line; stable — training data is made from it)::

    {"id", "agent", "dataset", "kind", "task", "gold", "answer", "reward": 0..1, "correct": bool,
     "status": "answered" | "cap_reached" | "failed", "reason", "seconds",
     "usage": {"model_calls", "prompt_tokens", "prompt_tokens_cached", "completion_tokens",
               "model_seconds"},
     "format_errors": int, "tool_errors": int,
     "model_calls": [{"prompt": [{"role", "content"}], "output": str,
                      "tool_calls": [{"name", "args"}], "prompt_tokens", "completion_tokens",
                      "prompt_tokens_cached", "seconds"}],
     "actions": [{"tool", "args", "resolved_args", "result", "error", "outputs", "subgoal"}],
     "subgoals": [str], "plan_turns": [...], "ground_turns": [...]}

``model_calls`` holds every chat-model call of the run in order (planner, grounder, the QA
action's calls, the answer step; or the ReAct loop), recorded by a LangChain callback handler;
``plan_turns``/``ground_turns`` are the LUMOS module conversations (empty for baselines).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import LLMResult

from lumos_graph.agent.actions import ActionSet
from lumos_graph.agent.execution import describe_error
from lumos_graph.errors import ConfigError
from lumos_graph.evaluation.metrics import majority_class, wilson_interval

__all__ = ["AGENTS", "DEFAULT_AGENTS", "CallRecorder", "EvalOptions", "format_table", "run_eval"]

AGENTS = ("lumos-onepass", "lumos-iterative", "lumos-program", "alpha-umi", "react", "direct")
DEFAULT_AGENTS = ("lumos-onepass", "lumos-iterative", "react", "direct")  # lumos-graph eval's
SUMMARY_KEYS = ("accuracy", "accuracy_ci95", "correct", "seconds_per_question",
                "model_calls_per_question",
                "completion_tokens_per_question", "prompt_tokens_per_question",
                "prompt_tokens_cached_per_question", "format_errors", "tool_errors",
                "cap_reached", "answered", "n")
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


# ---- recording every model call --------------------------------------------------------------
class CallRecorder(BaseCallbackHandler):
    """A LangChain callback handler that keeps every chat-model call: prompt, output, usage."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self._open: dict[UUID, tuple[list[dict[str, str]], float]] = {}

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]],
                            *, run_id: UUID, **kwargs: Any) -> None:
        prompt = [{"role": _ROLES.get(m.type, m.type), "content": m.text} for m in messages[0]]
        self._open[run_id] = (prompt, time.perf_counter())

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        prompt, started = self._open.pop(run_id, ([], time.perf_counter()))
        generation = response.generations[0][0] if response.generations else None
        message = getattr(generation, "message", None)
        usage = getattr(message, "usage_metadata", None) or {}
        meta = getattr(message, "response_metadata", None) or {}
        self.calls.append({
            "prompt": prompt,
            "output": generation.text if generation is not None else "",
            "tool_calls": [{"name": c["name"], "args": c["args"]}
                           for c in getattr(message, "tool_calls", None) or []],
            "prompt_tokens": int(usage.get("input_tokens", 0)),
            "completion_tokens": int(usage.get("output_tokens", 0)),
            "prompt_tokens_cached": int(meta.get("prompt_tokens_cached", 0)),
            "seconds": round(time.perf_counter() - started, 3),
        })

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        prompt, started = self._open.pop(run_id, ([], time.perf_counter()))
        self.calls.append({"prompt": prompt, "output": "", "tool_calls": [],
                           "error": describe_error(error), "prompt_tokens": 0,
                           "completion_tokens": 0, "prompt_tokens_cached": 0,
                           "seconds": round(time.perf_counter() - started, 3)})

    def usage(self) -> dict[str, Any]:
        """Usage summed over the recorded calls."""
        return {
            "model_calls": len(self.calls),
            "prompt_tokens": sum(c["prompt_tokens"] for c in self.calls),
            "prompt_tokens_cached": sum(c["prompt_tokens_cached"] for c in self.calls),
            "completion_tokens": sum(c["completion_tokens"] for c in self.calls),
            "model_seconds": round(sum(c["seconds"] for c in self.calls), 3),
        }


# ---- agents ----------------------------------------------------------------------------------
@dataclass
class EvalOptions:
    """Settings of one eval run besides the dataset and the agents."""

    max_model_calls: int = 16
    max_subgoals: int = 8
    # self-consistency branches of the LUMOS agents; None: 6 for lumos-program (the default
    # agent's setting), 1 for the others
    samples: int | None = None
    knowledge_base: Any = None
    vqa_model: str | None = None
    vqa_mmproj: str | None = None
    vqa_chat_format: str = "llava-1-5"
    # the LUMOS agents' model on maths examples when it is not the run's model: with
    # ``--model default``, the default model with the shipped maths adapter, as they ship
    lumos_maths_model: BaseChatModel | None = None


@dataclass
class _Agents:
    """Builds (and caches) each agent's graph for a tool set."""

    model: BaseChatModel
    options: EvalOptions
    _tools: dict[tuple[str, str], ActionSet] = field(default_factory=dict)
    _graphs: dict[tuple[str, str, str], Any] = field(default_factory=dict)

    def actions(self, item: dict[str, Any]) -> ActionSet:
        from lumos_graph.tools.toolsets import create_actions

        kind = item.get("kind", "maths")
        names = {"maths": "maths", "yesno": "qa", "qa": "qa", "sql": "sql", "vqa": "vqa"}
        if kind not in names:
            raise ConfigError(f"example {item.get('id')!r}: unknown kind {kind!r}; "
                              f"use one of {', '.join(names)}")
        key = (names[kind], str(item.get("db") or ""))
        if key not in self._tools:
            o = self.options
            self._tools[key] = create_actions(
                names[kind], model=self.model, db=item.get("db"), knowledge_base=o.knowledge_base,
                vqa_model=o.vqa_model, vqa_mmproj=o.vqa_mmproj, vqa_chat_format=o.vqa_chat_format)
        return self._tools[key]

    def graph(self, agent: str, item: dict[str, Any]) -> Any:
        if agent == "direct" and item.get("kind") == "sql":
            return self._direct_sql(item)
        tools = self.actions(item) if agent != "direct" else None
        if agent == "react" and item.get("image"):  # its tools take the images when built
            return self._build(agent, tools, images=[item["image"]])
        key = (agent, item.get("kind", "maths"), str(item.get("db") or ""))
        if key not in self._graphs:
            self._graphs[key] = self._build(agent, tools)
        return self._graphs[key]

    def _direct_sql(self, item: dict[str, Any]) -> Any:
        """The text-to-SQL baseline on the item's database: one query from the schema prompt."""
        from lumos_graph.graphs.direct import create_direct_agent

        if not item.get("db"):
            raise ConfigError(f"example {item.get('id')!r} of kind 'sql' has no 'db'")
        key = ("direct", "sql", str(item["db"]))
        if key not in self._graphs:
            self._graphs[key] = create_direct_agent(self.model, db=item["db"])
        return self._graphs[key]

    def _build(self, agent: str, tools: ActionSet | None, images: Sequence[str] = ()) -> Any:
        o = self.options
        if agent.startswith("lumos-"):
            from lumos_graph.graphs.lumos import create_lumos_agent
            from lumos_graph.tools.toolsets import is_maths_only, is_sql_only

            mode = "iterative" if agent == "lumos-iterative" else "onepass"
            program = agent == "lumos-program"
            model = self.model
            if o.lumos_maths_model is not None and is_maths_only(tools) and not program:
                model = o.lumos_maths_model
            # lumos-program: the plain model plans (few-shot) and writes the programs, voted
            # on as in the default agent
            grounding = "actions"
            if program:  # one program of the plan: Python with Code, else SQL with SQLQuery
                grounding = "sql" if is_sql_only(tools) else "program"
            return create_lumos_agent(model, actions=tools, mode=mode, grounding=grounding,
                                      max_model_calls=o.max_model_calls,
                                      max_subgoals=o.max_subgoals,
                                      samples=agent_samples(
                                          agent, o, ["sql"] if grounding == "sql" else ()))
        if agent == "alpha-umi":
            from lumos_graph.graphs.alpha_umi import create_alpha_umi_agent

            return create_alpha_umi_agent(self.model, actions=tools)
        if agent == "react":
            from lumos_graph.graphs.react import create_react_agent

            assert tools is not None
            return create_react_agent(self.model, tools, max_model_calls=o.max_model_calls,
                                      images=images)
        from lumos_graph.graphs.direct import create_direct_agent

        return create_direct_agent(self.model)


def _task(item: dict[str, Any]) -> str:
    question = item["question"].strip()
    context = item.get("context")
    return f"{question}\n\nContext: {context}" if context else question


def _run_one(agents: _Agents, agent: str, item: dict[str, Any], dataset: str) -> dict[str, Any]:
    """Run one agent on one example; never raises for a model's or a tool's mistake."""
    from lumos_graph.evaluation.metrics import score

    recorder = CallRecorder()
    task = _task(item)
    images = [item["image"]] if item.get("image") else []
    graph = agents.graph(agent, item)
    started = time.perf_counter()
    state: dict[str, Any] = {}
    try:
        if agent == "react":
            state = graph.invoke({"messages": [HumanMessage(task)]},
                                 config={"callbacks": [recorder]})
        else:
            state = graph.invoke({"task": task, "images": images},
                                 config={"callbacks": [recorder]})
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - one failing run must not end the whole eval
        name = type(exc).__name__
        status = "cap_reached" if name == "GraphRecursionError" else "failed"
        state = {"status": status, "reason": describe_error(exc), "answer": None}
    seconds = time.perf_counter() - started
    if agent == "react":
        record = _react_record(state)
    else:
        record = {
            "answer": state.get("answer"),
            "status": state.get("status", "failed"),
            "reason": state.get("reason", ""),
            "actions": [dict(a) for a in state.get("actions", [])],
            "subgoals": list(state.get("subgoals", [])),
            "plan_turns": list(state.get("plan_turns", [])),
            "ground_turns": list(state.get("ground_turns", [])),
            "format_errors": len(state.get("errors", [])),
        }
        if agent == "alpha-umi":  # every role's turn in alpha-UMi's format, and the decisions
            record["history"] = list(state.get("history", []))
            record["decisions"] = list(state.get("decisions", []))
        if state.get("samples"):  # self-consistency: every branch's answer and votes
            record["samples"] = [dict(s) for s in state["samples"]]
    if record["status"] == "running":
        record["status"] = "failed"
    result = score(item, record["answer"], actions=record["actions"])
    tool_errors = sum(1 for a in record["actions"] if a.get("error") and a.get("tool"))
    return {
        "id": str(item.get("id", "")),
        "agent": agent,
        "dataset": dataset,
        "kind": item.get("kind", "maths"),
        "task": task,
        "gold": item.get("answer"),
        "answer": record["answer"],
        "reward": result["reward"],
        "correct": result["correct"],
        "scores": result,
        "status": record["status"],
        "reason": record["reason"],
        "seconds": round(seconds, 3),
        "usage": recorder.usage(),
        "format_errors": record["format_errors"],
        "tool_errors": tool_errors,
        "model_calls": recorder.calls,
        "actions": record["actions"],
        "subgoals": record["subgoals"],
        "plan_turns": record["plan_turns"],
        "ground_turns": record["ground_turns"],
        **{k: record[k] for k in ("history", "decisions", "samples") if k in record},
    }


def _react_record(state: dict[str, Any]) -> dict[str, Any]:
    """Answer, status and actions of a ReAct run, read from its messages."""
    from lumos_graph.graphs.react import react_answer, react_status

    messages = state.get("messages", [])
    results = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    actions = []
    calls = [c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
    for call in calls:
        reply = results.get(call.get("id", ""))
        failed = reply is None or getattr(reply, "status", "success") == "error"
        text = "" if reply is None else reply.text
        actions.append({
            "tool": call["name"], "args": json.dumps(call["args"], ensure_ascii=False),
            "resolved_args": [str(v) for v in call["args"].values()],
            "result": None if failed else [text],
            "error": (text or "no tool result") if failed else None,
            "outputs": [], "subgoal": None,
        })
    answer = react_answer(state) if messages else None
    status = state.get("status") or react_status(state)
    reasons = {"answered": "the agent gave a final answer",
               "cap_reached": "the model-call limit ended the loop",
               "failed": "the agent ended without a final answer"}
    reason = state.get("reason") or reasons[status]
    return {"answer": answer, "status": status, "reason": reason, "actions": actions,
            "subgoals": [], "plan_turns": [], "ground_turns": [],
            "format_errors": 0 if answer is not None or status == "cap_reached" else 1}


# ---- the run ---------------------------------------------------------------------------------
def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(text).stem or text)
    return keep.strip("-") or "run"


def default_out_dir(dataset: str, model: str) -> Path:
    """``lumos-eval/<dataset>-<model>`` in the working directory."""
    return Path("lumos-eval") / f"{_slug(dataset)}-{_slug(model)}"


def _read_done(path: Path) -> dict[str, dict[str, Any]]:
    """Finished trajectories by example id; a torn last line is cut off the file."""
    if not path.is_file():
        return {}
    done: dict[str, dict[str, Any]] = {}
    good = 0
    with path.open("rb") as handle:
        for raw in handle:
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                break  # an interrupted write: keep what came before
            done[str(row["id"])] = row
            good += len(raw)
    if good < path.stat().st_size:
        with path.open("r+b") as handle:
            handle.truncate(good)
    return done


def _append(path: Path, row: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def agent_samples(agent: str, options: EvalOptions, kinds: Sequence[str] = ()) -> int | None:
    """Self-consistency branches of ``agent`` in this run (None: the agent does not vote):
    ``--samples`` when given, else the default agent's for ``lumos-program`` (the SQL agent's
    on a set of ``sql`` items only, else the maths program agent's) and 1 for the other LUMOS
    agents."""
    from lumos_graph.graphs.lumos import default_samples

    if not agent.startswith("lumos-"):
        return None
    if options.samples is not None:
        return options.samples
    if agent != "lumos-program":
        return 1
    return default_samples("sql" if kinds and set(kinds) == {"sql"} else "program")


def _check_manifest(out: Path, manifest: dict[str, Any]) -> None:
    path = out / "run.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            old = {}
        for key in ("dataset", "model"):
            if old.get(key) != manifest[key]:
                raise ConfigError(
                    f"{out} holds a run of {key} {old.get(key)!r}, not {manifest[key]!r}; "
                    "give another --out")
        for agent, samples in manifest["samples"].items():
            before = old.get("samples", {}).get(agent, samples)
            if before != samples:
                raise ConfigError(
                    f"{out} holds {agent} runs with {before} samples, not {samples}; give "
                    f"another --out or --samples {before}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "trajectories").mkdir(exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One agent's figures over its trajectories."""
    n = len(rows)
    per = max(1, n)
    correct = sum(bool(r["correct"]) for r in rows)
    summary: dict[str, Any] = {
        "accuracy": correct / per,
        "accuracy_ci95": list(wilson_interval(correct, n)),
        "correct": correct,
        "seconds_per_question": sum(r["seconds"] for r in rows) / per,
        "model_calls_per_question": sum(r["usage"]["model_calls"] for r in rows) / per,
        "completion_tokens_per_question": sum(r["usage"]["completion_tokens"] for r in rows) / per,
        "prompt_tokens_per_question": sum(r["usage"]["prompt_tokens"] for r in rows) / per,
        "prompt_tokens_cached_per_question":
            sum(r["usage"]["prompt_tokens_cached"] for r in rows) / per,
        "format_errors": sum(r["format_errors"] for r in rows),
        "tool_errors": sum(r["tool_errors"] for r in rows),
        "cap_reached": sum(r["status"] == "cap_reached" for r in rows),
        "answered": sum(r["status"] == "answered" for r in rows),
        "n": n,
    }
    f1 = [r["scores"]["f1"] for r in rows if "f1" in r.get("scores", {})]
    if f1:
        summary["f1"] = sum(f1) / len(f1)
    return summary


def run_eval(
    dataset: str,
    items: Sequence[dict[str, Any]],
    model: BaseChatModel,
    *,
    model_name: str,
    agents: Sequence[str] = AGENTS,
    out: Path | None = None,
    options: EvalOptions | None = None,
    on_result: Callable[[int, int, dict[str, Any], bool], None] | None = None,
) -> dict[str, Any]:
    """Run ``agents`` on ``items`` (item-major, so a partial run stays comparable).

    ``on_result(done, total, row, resumed)`` is called after each (agent, example).

    Returns:
        ``{"dataset", "model", "n", "agents": {name: summary}, "out"}``; the outputs are
        written in ``out``.
    """
    unknown = [a for a in agents if a not in AGENTS]
    if unknown or not agents:
        raise ConfigError(f"unknown agent {', '.join(map(repr, unknown)) or '(none)'}; "
                          f"choose from {', '.join(AGENTS)}")
    out = out or default_out_dir(dataset, model_name)
    options = options or EvalOptions()
    kinds = sorted({str(item.get("kind", "")) for item in items})
    _check_manifest(out, {"dataset": dataset, "model": model_name, "agents": list(agents),
                          "n": len(items),
                          "samples": {a: agent_samples(a, options, kinds) for a in agents}})
    runner = _Agents(model, options)
    files = {a: out / "trajectories" / f"{a}.jsonl" for a in agents}
    done = {a: _read_done(files[a]) for a in agents}
    rows: dict[str, list[dict[str, Any]]] = {a: [] for a in agents}
    total, count = len(items) * len(agents), 0
    for item in items:
        for agent in agents:
            key = str(item.get("id", ""))
            row = done[agent].get(key)
            resumed = row is not None
            if row is None:
                row = _run_one(runner, agent, item, dataset)
                _append(files[agent], row)
            rows[agent].append(row)
            count += 1
            if on_result:
                on_result(count, total, row, resumed)
    summary = {
        "dataset": dataset,
        "model": model_name,
        "n": len(items),
        "agents": {a: summarize(rows[a]) for a in agents},
    }
    majority = majority_class(items)
    if majority is not None:  # yes/no sets: the score of always giving the commoner answer
        summary["majority_class"] = majority
    write_outputs(out, summary)
    summary["out"] = str(out)
    return summary


# ---- outputs ---------------------------------------------------------------------------------
def format_table(summary: dict[str, Any]) -> str:
    """The side-by-side Markdown table: per agent accuracy with its 95% Wilson interval,
    seconds and model calls per question; under it, on yes/no sets, the majority-class rate."""
    lines = [
        f"{summary['dataset']}, {summary['n']} examples, model {summary['model']}",
        "",
        ("| agent | accuracy | 95% interval | s / question | model calls / q "
         "| completion tokens / q | format errors | tool errors | cap reached |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary["agents"].items():
        right = s.get("correct", round(s["accuracy"] * s["n"]))  # older results.json
        low, high = s.get("accuracy_ci95") or wilson_interval(right, s["n"])
        lines.append(
            f"| {name} | {s['accuracy']:.0%} ({right}/{s['n']}) | {_interval(low, high)}"
            f" | {s['seconds_per_question']:.1f}"
            f" | {s['model_calls_per_question']:.1f} | {s['completion_tokens_per_question']:.0f}"
            f" | {s['format_errors']} | {s['tool_errors']} | {s['cap_reached']} |")
    majority = summary.get("majority_class")
    if majority:
        low, high = wilson_interval(majority["correct"], majority["n"])
        lines += ["", (f"Majority class: always answering \"{majority['answer']}\" scores "
                       f"{majority['accuracy']:.0%} ({majority['correct']}/{majority['n']}), "
                       f"95% interval {_interval(low, high)}.")]
    return "\n".join(lines)


def _interval(low: float, high: float) -> str:
    return f"{100 * low:.0f}-{100 * high:.0f}%"


def write_outputs(out: Path, summary: dict[str, Any]) -> None:
    """results.json, results.md and the plot."""
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(format_table(summary) + "\n", encoding="utf-8")
    _plot(out / "accuracy_vs_seconds.png", summary)


def _plot(path: Path, summary: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no screen
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    try:
        markers = "osD^vP*X"
        for k, (name, s) in enumerate(summary["agents"].items()):
            low, high = s.get("accuracy_ci95") or (s["accuracy"], s["accuracy"])
            ax.errorbar([s["seconds_per_question"]], [100 * s["accuracy"]],
                        yerr=[[100 * (s["accuracy"] - low)], [100 * (high - s["accuracy"])]],
                        fmt=markers[k % len(markers)], markersize=8, capsize=4, alpha=0.8,
                        label=name)
        majority = summary.get("majority_class")
        if majority:
            ax.axhline(100 * majority["accuracy"], color="grey", linestyle="--", linewidth=1,
                       label=f"always \"{majority['answer']}\"")
        ax.legend(loc="best", fontsize="small")
        ax.set_xlabel("seconds per question")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(-5, 105)
        ax.set_xlim(left=0)
        ax.set_title(f"{summary['dataset']} ({summary['n']} examples), {summary['model']}")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
