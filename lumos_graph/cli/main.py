"""The ``lumos-graph`` command, built on the public API only.

Exit status: 0 when the agent answered, 1 when it ran but found no answer (a cap was
reached or it failed), 2 for a usage mistake (unknown model, missing file, bad option).
"""

from __future__ import annotations

import argparse
import os
import itertools
import json
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from lumos_graph.errors import ConfigError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lumos-graph",
        description="LUMOS agents (plan, ground, execute) on local GGUF models.",
    )
    from lumos_graph import __version__

    parser.add_argument("--version", action="version", version=f"lumos-graph {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ask = sub.add_parser("ask", help="answer one question with a LUMOS agent")
    ask.add_argument("question", help="the task, in quotes")
    ask.add_argument("--mode", choices=("onepass", "iterative"), default=None,
                     help="LUMOS formulation (default: iterative with the qa or vqa tools, as "
                          "LUMOS-I is the better QA agent; onepass otherwise)")
    ask.add_argument("--model", default="default",
                     help="preset name, path to a .gguf file, or hf:owner/repo/file.gguf "
                          "(default: the default model; with only the maths tools, with the "
                          "shipped LUMOS maths adapter)")
    ask.add_argument("--planner-model", default=None, help="a different model for planning")
    ask.add_argument("--grounder-model", default=None, help="a different model for grounding")
    ask.add_argument("--max-model-calls", type=int, default=16, help="cap on model calls")
    ask.add_argument("--max-subgoals", type=int, default=8, help="cap on subgoals")
    ask.add_argument("--samples", type=int, default=1, metavar="K",
                     help="self-consistency: K runs (greedy + sampled) decoded together, the "
                          "answer most agree on wins (default 1)")
    ask.add_argument("--no-grammar", action="store_true",
                     help="decode without the GBNF grammar (for comparison)")
    ask.add_argument("--json", action="store_true", help="print one JSON document at the end")
    tools = ask.add_argument_group("tools")
    tools.add_argument("--tools", default="maths",
                       help="comma-separated tool sets: maths, qa, sql, vqa (default: maths)")
    tools.add_argument("--db", default=None,
                       help="sql: a SQLite file or a SQLAlchemy URL (postgresql://...)")
    tools.add_argument("--allow-writes", action="store_true",
                       help="sql: allow writing to the database (read-only by default)")
    tools.add_argument("--kb", default=None,
                       help="qa: knowledge base file (default: the one 'lumos-graph index' "
                            "builds; the offline Wikipedia intros when there is none)")
    tools.add_argument("--web", action="store_true",
                       help="qa: search the web with DuckDuckGo first (knowledge base as fallback)")
    tools.add_argument("--image", action="append", default=[], metavar="FILE",
                       help="vqa: an image for the task (a path or URL; repeatable)")
    tools.add_argument("--vqa-model", default=None, help="vqa: a vision-language GGUF")
    tools.add_argument("--vqa-mmproj", default=None,
                       help="vqa: the projector GGUF of --vqa-model (without one, OCR reads text)")
    tools.add_argument("--vqa-chat-format", default="llava-1-5",
                       help="vqa: chat handler of --vqa-model: llava-1-5 (default), llava-1-6, "
                            "moondream, nanollava, minicpm-v-2.6, qwen2.5-vl, ...")
    index = sub.add_parser("index", help="build or update the knowledge base of the qa tools")
    index.add_argument("paths", nargs="*", metavar="PATH",
                       help="folders of .txt/.md files, JSONL files ({text, title}) or text files")
    index.add_argument("--kb", default=None, help="knowledge base file (default: the qa default)")
    index.add_argument("--wiki", action="store_true",
                       help="add the offline Wikipedia intros (pip install 'lumos-graph[qa]')")
    ev = sub.add_parser("eval", help="agents side by side on a dataset (resumable)")
    ev.add_argument("dataset", nargs="?", default="maths-dev",
                    help="a built-in dataset (lumos-graph datasets) or a JSONL file")
    ev.add_argument("--agents", default="lumos-onepass,lumos-iterative,react,direct",
                    help="comma-separated: lumos-onepass, lumos-iterative, react, direct "
                         "(default: all four)")
    ev.add_argument("--model", default="default", help="preset, .gguf path or hf: reference")
    ev.add_argument("--limit", type=int, default=None, help="only the first N examples")
    ev.add_argument("--out", default=None,
                    help="output folder (default: lumos-eval/DATASET-MODEL); a rerun resumes")
    ev.add_argument("--max-model-calls", type=int, default=16, help="cap per example and agent")
    ev.add_argument("--samples", type=int, default=1, metavar="K",
                    help="self-consistency branches of the LUMOS agents (default 1)")
    ev.add_argument("--kb", default=None, help="knowledge base of the qa tools")
    ev.add_argument("--vqa-model", default=None, help="vision-language GGUF for vqa examples")
    ev.add_argument("--vqa-mmproj", default=None, help="its projector GGUF")
    ev.add_argument("--vqa-chat-format", default="llava-1-5", help="its chat handler")
    ev.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    sub.add_parser("datasets", help="list the built-in datasets")
    bench = sub.add_parser("bench", help="speed figures of the agent against raw llama.cpp")
    bench.add_argument("--model", default="default", help="preset, .gguf path or hf: reference")
    bench.add_argument("--questions", type=int, default=3,
                       help="maths-dev questions per mode (default 3)")
    bench.add_argument("--json", action="store_true", help="print the figures as JSON")
    sub.add_parser("models", help="list the model presets")
    from lumos_graph.cli import data as cli_data

    cli_data.add_parsers(sub)
    from lumos_graph.cli import train as cli_train

    cli_train.add_parser(sub)
    sample = sub.add_parser("sample-db", help="build a sample database for the sql tools")
    sample.add_argument("name", choices=("chinook",), help="chinook: a music store")
    sample.add_argument("out", nargs="?", default="chinook.sqlite",
                        help="the new SQLite file (default: chinook.sqlite)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "models":
            return _models(sys.stdout)
        if args.command == "datasets":
            return _datasets(sys.stdout)
        if args.command == "train":
            from lumos_graph.cli.train import run as run_train

            return run_train(args, sys.stdout, sys.stderr)
        if args.command == "data":
            from lumos_graph.cli.data import run

            return run(args, sys.stdout, sys.stderr)
        if args.command == "eval":
            return _eval(args, sys.stdout, sys.stderr)
        if args.command == "bench":
            return _bench(args, sys.stdout, sys.stderr)
        if args.command == "index":
            return _index(args, sys.stdout, sys.stderr)
        if args.command == "sample-db":
            return _sample_db(args, sys.stdout, sys.stderr)
        return _ask(args, sys.stdout, sys.stderr)
    except ConfigError as exc:
        print(f"lumos-graph: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lumos-graph: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lumos-graph datasets | head`: the reader left; nothing is wrong
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush stays quiet
        return 0


def _models(out: TextIO) -> int:
    from lumos_graph.llm.models import DEFAULT_PRESET, TRAINED_PRESET, list_presets

    marks = {DEFAULT_PRESET: " (default)", TRAINED_PRESET: " (default of LUMOS maths agents)"}
    for preset in list_presets():
        mark = marks.get(preset.name, "")
        print(f"{preset.name}{mark}: {preset.description}", file=out)
    return 0


def _bench(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from lumos_graph.evaluation.bench import format_table, run_bench

    if args.questions < 1:
        raise ConfigError("--questions must be at least 1")
    with _Spinner(err, "benchmarking"):
        figures = run_bench(args.model, questions=args.questions)
    print(json.dumps(figures, indent=2) if args.json else format_table(figures), file=out)
    return 0


def _eval(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from lumos_graph.evaluation.datasets import load_dataset
    from lumos_graph.evaluation.run import AGENTS, EvalOptions, format_table, run_eval
    from lumos_graph.llm.models import lumos_default

    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    unknown = [a for a in agents if a not in AGENTS]
    if unknown or not agents:
        raise ConfigError(f"unknown agent {', '.join(map(repr, unknown)) or '(none)'}; "
                          f"choose from {', '.join(AGENTS)}")
    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be at least 1")
    items = load_dataset(args.dataset, limit=args.limit)
    if not items:
        raise ConfigError(f"{args.dataset} has no examples")
    if args.dataset.startswith("easy-vqa") and not args.vqa_model:
        raise ConfigError("easy-vqa asks about shapes and colours: it needs a vision-language "
                          "model, --vqa-model M.gguf --vqa-mmproj P.gguf (none ships on PyPI)")
    if not args.vqa_model and any(i.get("kind") == "vqa" for i in items):
        from lumos_graph.tools.vqa.actions import ocr_available

        if not ocr_available():
            items = [i for i in items if i.get("kind") != "vqa"]
            print("lumos-graph: skipping the vqa examples: no --vqa-model and no OCR "
                  "(pip install 'lumos-graph[vqa]')", file=err)
            if not items:
                raise ConfigError("every example is a vqa example and none can be answered")
    specs = [args.model]
    lumos_maths = lumos_default(args.model, maths_only=True)
    if (lumos_maths != args.model and any(a.startswith("lumos-") for a in agents)
            and any(i.get("kind", "maths") == "maths" for i in items)):
        specs.append(lumos_maths)  # as they ship: the trained adapter for LUMOS on maths
        print(f"lumos-graph: the LUMOS agents answer maths examples with {lumos_maths} "
              "(--model qwen2.5-coder-0.5b for the untrained model)", file=err)
    model, *maths_model = _load_models(err, specs)
    options = EvalOptions(max_model_calls=args.max_model_calls, samples=args.samples,
                          knowledge_base=args.kb,
                          vqa_model=args.vqa_model, vqa_mmproj=args.vqa_mmproj,
                          vqa_chat_format=args.vqa_chat_format,
                          lumos_maths_model=maths_model[0] if maths_model else None)
    bar = _Progress(err)
    summary = run_eval(args.dataset, items, model, model_name=args.model, agents=agents,
                       out=Path(args.out) if args.out else None, options=options,
                       on_result=bar.update)
    bar.close()
    if args.json:
        print(json.dumps({k: summary[k] for k in ("dataset", "n", "agents")}, indent=2),
              file=out)
    else:
        print(format_table(summary), file=out)
        print(f"\nwritten to {summary['out']}: results.md, results.json, "
              "accuracy_vs_seconds.png, trajectories/", file=out)
    return 0


def _datasets(out: TextIO) -> int:
    from lumos_graph.evaluation.datasets import list_datasets

    infos = list_datasets()
    width = max(len(i.name) for i in infos)
    for info in infos:
        size = f"{info.size:,}" if info.size else "?"
        print(f"{info.name:<{width}}  {info.split:<5} {info.kind:<6} {size:>6}  "
              f"{info.description}", file=out)
    return 0


class _Progress:
    """A progress bar on stderr (a line per result when stderr is not a terminal)."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.tty = err.isatty()
        self.started = time.perf_counter()

    def update(self, done: int, total: int, row: dict[str, Any], resumed: bool) -> None:
        mark = "ok" if row["correct"] else "--"
        note = " (saved)" if resumed else f" {row['seconds']:.1f} s"
        if not self.tty:
            print(f"[{done}/{total}] {row['agent']} {row['id']}: {mark} "
                  f"{row['answer']!s:.40}{note}", file=self.err, flush=True)
            return
        width = 28
        filled = round(width * done / max(1, total))
        elapsed = time.perf_counter() - self.started
        self.err.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                       f"{elapsed:.0f} s  {row['agent']:<16} {mark}")
        self.err.flush()

    def close(self) -> None:
        if self.tty:
            self.err.write("\n")
            self.err.flush()


def _load_models(err: TextIO, specs: Sequence[str], then: Any = None) -> list[Any]:
    """One chat model per spec (equal specs share one), loaded now under a spinner rather
    than inside the first node. ``then(models)`` runs after the models are created and
    before they load (setup checks that need a model object but not its weights)."""
    from lumos_graph.llm.models import create_chat_model

    models = {spec: create_chat_model(spec) for spec in dict.fromkeys(specs)}
    chosen = [models[spec] for spec in specs]
    if then is not None:
        then(chosen)
    with _Spinner(err, "loading model"):
        for model in models.values():
            model.load()
    return chosen


def _index(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from lumos_graph.tools.qa.knowledge import KnowledgeBase, add_wikipedia, user_kb_path

    if not args.paths and not args.wiki:
        raise ConfigError("give folders or files to index, or --wiki")
    path = Path(args.kb).expanduser() if args.kb else user_kb_path()
    kb = KnowledgeBase(path)
    try:
        if args.wiki:
            with _Spinner(err, "indexing the Wikipedia intros"):
                report = add_wikipedia(kb)
            print(f"wikipedia: {report.summary()}", file=out)
        for source in args.paths:
            with _Spinner(err, f"indexing {source}"):
                report = kb.index_path(Path(source).expanduser())
            print(f"{source}: {report.summary()}", file=out)
        print(f"{path}: {kb.count()} documents, {kb.passage_count()} passages", file=out)
    finally:
        kb.close()
    return 0


def _sample_db(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from lumos_graph.evaluation.sample_data import sample_database

    with _Spinner(err, f"building {args.name}"):
        path = sample_database(args.name, args.out)
    print(f"{path}: try  lumos-graph ask --tools sql --db {path} \"How many tracks are longer "
          "than 5 minutes?\"", file=out)
    return 0


def _images(paths: Sequence[str]) -> list[str]:
    """Image paths made absolute (checked now); URLs as given."""
    images = []
    for item in paths:
        if item.startswith(("http://", "https://", "data:")):
            images.append(item)
            continue
        path = Path(item).expanduser()
        if not path.is_file():
            raise ConfigError(f"no image file at {path}")
        images.append(str(path.resolve()))
    return images


def _ask(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from lumos_graph.agent.report import run_report
    from lumos_graph.graphs.lumos import create_lumos_agent
    from lumos_graph.llm.models import lumos_default
    from lumos_graph.tools.toolsets import create_actions, is_maths_only, parse_tool_names

    question = args.question.strip()
    if not question:
        raise ConfigError("the question is empty")
    started = time.perf_counter()
    images = _images(args.image)
    names = parse_tool_names(args.tools)
    if images and "vqa" not in names:
        names.append("vqa")  # an image is there to be looked at
    if args.mode is None:
        args.mode = "iterative" if {"qa", "vqa"} & set(names) else "onepass"
    built: list[Any] = []

    def build_actions(models: list[Any]) -> None:  # bad --db, --kb, ... fail before loading
        built.append(create_actions(
            names, model=models[1], db=args.db, allow_writes=args.allow_writes,
            knowledge_base=args.kb, web=args.web, vqa_model=args.vqa_model,
            vqa_mmproj=args.vqa_mmproj, vqa_chat_format=args.vqa_chat_format))

    specs = [lumos_default(spec, maths_only=is_maths_only(names))  # maths: the trained adapter
             for spec in (args.planner_model or args.model, args.grounder_model or args.model)]
    planner, grounder = _load_models(err, specs, then=build_actions)
    agent = create_lumos_agent(
        planner=planner,
        grounder=grounder,
        actions=built[0],
        mode=args.mode,
        max_model_calls=args.max_model_calls,
        max_subgoals=args.max_subgoals,
        use_grammar=not args.no_grammar,
        samples=args.samples,
    )
    state: dict[str, Any] = {}
    view = None if args.json else _TraceView(out)
    with _Spinner(err if view else None, "thinking") as spinner:
        if view:
            view.task(question)
        task: dict[str, Any] = {"task": question, "images": images}
        for mode, chunk in agent.stream(task, stream_mode=["updates", "values"]):
            if mode == "values":
                state = chunk
            elif view:
                spinner.clear()
                for node, delta in chunk.items():
                    view.update(node, delta or {})
    result = run_report(state, mode=args.mode, seconds=time.perf_counter() - started)  # type: ignore[arg-type]
    if view:
        view.finish(result)
    else:
        print(json.dumps(result, ensure_ascii=False, indent=2), file=out)
    return 0 if result["status"] == "answered" else 1


class _TraceView:
    """Prints a run as it happens: plan, actions with results, answer."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.subgoals = 0

    def _p(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def task(self, question: str) -> None:
        self._p(f"Task: {question}")

    def update(self, node: str, delta: dict[str, Any]) -> None:
        if node == "vote":  # self-consistency: the chosen branch's trace, then the votes
            self.update("plan", {"subgoals": delta.get("subgoals", [])})
            self.update("execute", {"actions": delta.get("actions", [])})
            votes = [s for s in delta.get("samples", [])]
            chosen = next((s for s in votes if s["chosen"]), None)
            if chosen is not None and chosen["votes"]:
                self._p(f"  Samples: {chosen['votes']} of {len(votes)} agree on "
                        f"{chosen['answer']} ({', '.join(str(s['answer']) for s in votes)})")
            return
        if node == "plan" and delta.get("subgoals"):
            for text in delta["subgoals"]:
                self.subgoals += 1
                self._p(f"  Subgoal {self.subgoals}: {text}")
        elif node == "plan" and delta.get("planning_done"):
            self._p("  Planner: Yes, I will stop planning.")
        elif node == "execute":
            for action in delta.get("actions", []):
                self._p(f"    {_action_line(action)}")
        elif node == "ground" and delta.get("actions"):  # an unparseable grounding
            for action in delta["actions"]:
                self._p(f"    ! {action['error']} Model wrote: {action['args']}")

    def finish(self, result: dict[str, Any]) -> None:
        usage = result["usage"]
        tail = (f"{usage['model_calls']} model calls, {usage['prompt_tokens']} prompt + "
                f"{usage['completion_tokens']} completion tokens, {result['seconds']:.1f} s")
        if result["status"] == "answered":
            self._p(f"Answer: {result['answer']}")
        else:
            self._p(f"No answer ({result['status']}): {result['reason']}")
        self._p(f"  [{result['mode']}; {tail}]")


def _action_line(action: dict[str, Any]) -> str:
    call = f"{', '.join(action['outputs'])} = {action['tool']}({action['args']})"
    if action["error"]:
        return f"{call}  ->  error: {action['error']}"
    return f"{call}  ->  {', '.join(action['result'] or [])}"


class _Spinner:
    """A spinner on stderr while a slow step runs; silent unless stderr is a terminal."""

    def __init__(self, err: TextIO | None, label: str) -> None:
        self.err = err if err is not None and err.isatty() else None
        self.label = label
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Spinner:
        if self.err:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self.err:
            self.thread.join()
            self.clear()

    def clear(self) -> None:
        """Erase the spinner line before other output is printed."""
        if self.err:
            with self.lock:
                self.err.write("\r" + " " * (len(self.label) + 8) + "\r")
                self.err.flush()

    def _run(self) -> None:
        assert self.err is not None
        for frame in itertools.cycle("|/-\\"):
            if self.done.wait(0.12):
                return
            with self.lock:
                self.err.write(f"\r{frame} {self.label}...")
                self.err.flush()
