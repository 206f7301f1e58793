"""The ``lumos-graph`` command, built on the public API only.

Exit status: 0 when the agent answered, 1 when it ran but found no answer (a cap was
reached or it failed), 2 for a usage mistake (unknown model, missing file, bad option).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from lumos_graph.cli._options import (
    add_agent_options,
    add_model_options,
    build_agent,
    load_models,
    model_overrides,
)
from lumos_graph.cli._view import Progress, Spinner, TraceView
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
    add_agent_options(ask, images=True)
    ask.add_argument("--json", action="store_true", help="print one JSON document at the end")
    ask.add_argument("--agent", choices=("lumos", "alpha-umi"), default="lumos",
                     help="lumos (plan, ground, execute; default) or alpha-umi (planner, "
                          "caller, summarizer)")
    ask.add_argument("--max-turns", type=int, default=10, help="alpha-umi: cap on planner turns")
    add_model_options(ask, samples=True)
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
                    help="comma-separated: lumos-onepass, lumos-iterative, lumos-program "
                         "(maths), alpha-umi, react, direct (default: all but lumos-program "
                         "and alpha-umi)")
    ev.add_argument("--model", default="default", help="preset, .gguf path or hf: reference")
    ev.add_argument("--limit", type=int, default=None, help="only the first N examples")
    ev.add_argument("--out", default=None,
                    help="output folder (default: lumos-eval/DATASET-MODEL); a rerun resumes")
    ev.add_argument("--max-model-calls", type=int, default=16, help="cap per example and agent")
    ev.add_argument("--samples", type=int, default=None, metavar="K",
                    help="self-consistency branches of the LUMOS agents (default: 6 for "
                         "lumos-program, as in the default agent; 1 for the others)")
    ev.add_argument("--kb", default=None, help="knowledge base of the qa tools")
    ev.add_argument("--vqa-model", default=None, help="vision-language GGUF for vqa examples")
    ev.add_argument("--vqa-mmproj", default=None, help="its projector GGUF")
    ev.add_argument("--vqa-chat-format", default="llava-1-5", help="its chat handler")
    ev.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    add_model_options(ev)
    sub.add_parser("datasets", help="list the built-in datasets")
    bench = sub.add_parser("bench", help="speed figures of the agent against raw llama.cpp")
    bench.add_argument("--model", default="default", help="preset, .gguf path or hf: reference")
    bench.add_argument("--questions", type=int, default=3,
                       help="maths-dev questions per mode (default 3)")
    bench.add_argument("--json", action="store_true", help="print the figures as JSON")
    sub.add_parser("models", help="list the model presets: which can run now, how to get the rest")
    from lumos_graph.cli import chat as cli_chat

    cli_chat.add_parser(sub)
    from lumos_graph.cli import data as cli_data

    cli_data.add_parsers(sub)
    from lumos_graph.cli import train as cli_train

    cli_train.add_parser(sub)
    from lumos_graph.cli import fuzz as cli_fuzz

    cli_fuzz.add_parser(sub)
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
        if args.command == "fuzz":
            from lumos_graph.cli.fuzz import run as run_fuzz

            return run_fuzz(args, sys.stdout, sys.stderr)
        if args.command == "chat":
            from lumos_graph.cli.chat import run as run_chat

            return run_chat(args, sys.stdin, sys.stdout, sys.stderr)
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
    presets = list_presets()
    for preset in presets:
        mark = marks.get(preset.name, "")
        state = "ready" if preset.installed else "needs"
        print(f"{state}  {preset.name}{mark}: {preset.description}", file=out)
        if not preset.installed:
            print(f"       get it: {preset.how_to_get}", file=out)
    ready = sum(p.installed for p in presets)
    print(f"\n{ready} of {len(presets)} presets can run now ('ready'); the others need files "
          "('get it'). --model also takes a .gguf path or hf:owner/repo/file.gguf.", file=out)
    return 0


def _bench(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from lumos_graph.evaluation.bench import format_table, run_bench

    if args.questions < 1:
        raise ConfigError("--questions must be at least 1")
    with Spinner(err, "benchmarking"):
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
    model, *maths_model = load_models(err, specs, overrides=model_overrides(args))
    options = EvalOptions(max_model_calls=args.max_model_calls, samples=args.samples,
                          knowledge_base=args.kb,
                          vqa_model=args.vqa_model, vqa_mmproj=args.vqa_mmproj,
                          vqa_chat_format=args.vqa_chat_format,
                          lumos_maths_model=maths_model[0] if maths_model else None)
    bar = Progress(err)
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


def _index(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from lumos_graph.tools.qa.knowledge import KnowledgeBase, add_wikipedia, user_kb_path

    if not args.paths and not args.wiki:
        raise ConfigError("give folders or files to index, or --wiki")
    path = Path(args.kb).expanduser() if args.kb else user_kb_path()
    kb = KnowledgeBase(path)
    try:
        if args.wiki:
            with Spinner(err, "indexing the Wikipedia intros"):
                report = add_wikipedia(kb)
            print(f"wikipedia: {report.summary()}", file=out)
        for source in args.paths:
            with Spinner(err, f"indexing {source}"):
                report = kb.index_path(Path(source).expanduser())
            print(f"{source}: {report.summary()}", file=out)
        print(f"{path}: {kb.count()} documents, {kb.passage_count()} passages", file=out)
    finally:
        kb.close()
    return 0


def _sample_db(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from lumos_graph.evaluation.sample_data import sample_database

    with Spinner(err, f"building {args.name}"):
        path = sample_database(args.name, args.out)
    print(f"{path}: try  lumos-graph ask --tools sql --db {path} \"How many tracks are longer "
          "than 300000 milliseconds?\"", file=out)
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
    from lumos_graph.tools.toolsets import parse_tool_names

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
    if args.agent == "alpha-umi":
        from lumos_graph.cli._alpha_umi import UmiTraceView, build_umi_agent

        agent, view_class = build_umi_agent(args, names, err), UmiTraceView
    else:
        agent, view_class = build_agent(args, names, args.mode, err), TraceView
    state: dict[str, Any] = {}
    view = None if args.json else view_class(out)
    with Spinner(err if view else None, "thinking", plain=False) as spinner:
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
    seconds = time.perf_counter() - started
    if args.agent == "alpha-umi":
        from lumos_graph.agent.umi_nodes import umi_report

        result = umi_report(state, seconds=seconds)  # type: ignore[arg-type]
    else:
        result = run_report(state, mode=args.mode, seconds=seconds)  # type: ignore[arg-type]
    if view:
        view.finish(result)
    else:
        print(json.dumps(result, ensure_ascii=False, indent=2), file=out)
    return 0 if result["status"] == "answered" else 1
