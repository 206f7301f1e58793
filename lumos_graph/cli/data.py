"""``lumos-graph data ...``: make, check and mix training data for the LUMOS modules.

::

    lumos-graph data convert [--source gsm-symbolic|shipped|FILE.jsonl] [--teacher MODEL]
                             [--n N] [--seed S] [--out DIR]
    lumos-graph data from-eval TRAJ.jsonl... [--min-reward 1.0] [--keep-errors] [--out DIR]
    lumos-graph data check DIR [--test maths-test] [--drop-dirty]
    lumos-graph data mix DIR --general FILE [--eta 0.2] [--seed S] [--out DIR]

``convert`` and ``from-eval`` write the LUMOS files (``lumos_maths_plan_onetime.jsonl``, ...)
and ``report.json`` (counts by drop reason) in ``--out``; ``check`` writes
``contamination.json`` next to the files it checked; ``mix`` writes one mixture per file.
User mistakes raise :class:`~lumos_graph.errors.ConfigError` (one line, exit status 2 in
:func:`lumos_graph.cli.main.main`).
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any, TextIO

from lumos_graph.errors import ConfigError

__all__ = ["add_parsers", "run"]

_DEFAULT_N = 3500


def add_parsers(subparsers: Any) -> None:
    """Add the ``data`` command and its actions to ``lumos-graph``'s subparsers."""
    data = subparsers.add_parser("data", help="make, check and mix training data")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    convert = sub.add_parser("convert", help="worked maths solutions -> LUMOS training files")
    convert.add_argument("--source", default="gsm-symbolic",
                         help="gsm-symbolic (generate from templates 0-79; needs reasoning-gym), "
                              "shipped (the converted set in the package) or a JSONL file of "
                              "items with solution.answer_cot")
    convert.add_argument("--teacher", default=None, metavar="MODEL",
                         help="convert with this chat model (preset, .gguf path or hf: ref) "
                              "instead of the rule-based converter")
    convert.add_argument("--n", type=int, default=None,
                         help=f"items to convert (default: {_DEFAULT_N} generated; all of a file)")
    convert.add_argument("--seed", type=int, default=1, help="seed of the generated items")
    convert.add_argument("--out", default="lumos-data", help="output folder (default lumos-data)")
    questions = sub.add_parser(
        "questions", help="fresh gsm_symbolic questions of the training templates, as an eval "
                          "JSONL (for self-generated training data: eval, then from-eval)")
    questions.add_argument("--n", type=int, default=210, help="questions (default 210)")
    questions.add_argument("--seed", type=int, default=7,
                           help="seed of the questions (2026 draws the maths-dev ones)")
    questions.add_argument("--out", default="questions.jsonl", help="the JSONL file to write")
    ev = sub.add_parser("from-eval", help="successful eval trajectories -> LUMOS training files")
    ev.add_argument("paths", nargs="+", metavar="TRAJ.jsonl",
                    help="trajectory files written by lumos-graph eval")
    ev.add_argument("--min-reward", type=float, default=1.0,
                    help="keep runs with at least this reward (default 1.0)")
    ev.add_argument("--keep-errors", action="store_true",
                    help="keep runs that had format or tool errors on the way")
    ev.add_argument("--out", default="lumos-data-eval", help="output folder")
    check = sub.add_parser("check", help="contamination check against a test split")
    check.add_argument("folder", metavar="DIR", help="folder of training files (*.jsonl)")
    check.add_argument("--test", default="maths-test",
                       help="the test set: a built-in name or a JSONL file (default maths-test)")
    check.add_argument("--drop-dirty", action="store_true",
                       help="rewrite the files without the dirty examples")
    mix = sub.add_parser("mix", help="mix agent data with general chat data (AgentTuning)")
    mix.add_argument("folder", metavar="DIR", help="folder of training files (*.jsonl)")
    mix.add_argument("--general", required=True, metavar="FILE",
                     help="general chat data: JSONL of {\"messages\": [...]}")
    mix.add_argument("--eta", type=float, default=0.2,
                     help="share of agent examples in the mixture (default 0.2)")
    mix.add_argument("--seed", type=int, default=0, help="sampling and shuffling seed")
    mix.add_argument("--out", default=None,
                     help="output folder (default DIR-mixed-eta<ETA>, beside DIR: a trainer "
                          "reading DIR recursively must not see the mixture twice)")


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``lumos-graph data <action>``; returns the exit status."""
    actions = {"convert": _convert, "questions": _questions, "from-eval": _from_eval,
               "check": _check, "mix": _mix}
    return actions[args.data_command](args, out, err)


def _convert(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from lumos_graph.training import data as td

    if args.n is not None and args.n < 1:
        raise ConfigError(f"--n must be at least 1, not {args.n}")
    if args.source == "shipped":
        if args.teacher:
            raise ConfigError("--teacher converts items; --source shipped is already converted")
        files = td.shipped_training_set()
        report: dict[str, Any] = {"source": "shipped", "converted": len(files[td.FILES[0]])}
    else:
        items = _items(args)
        print(f"converting {len(items)} items ...", file=err)
        if args.teacher:
            from lumos_graph.llm.models import create_chat_model

            result = td.convert_with_teacher(items, create_chat_model(args.teacher))
        else:
            result = td.convert_gsm_symbolic(items)
        files, report = result.files, result.report
    paths = td.write_training(files, args.out)
    _write_json(Path(args.out) / "report.json", report)
    _summary(out, report, paths)
    return 0


def _items(args: argparse.Namespace) -> list[dict[str, Any]]:
    from lumos_graph.evaluation.datasets import load_dataset
    from lumos_graph.training import data as td

    if args.source == "gsm-symbolic":
        return td.generate_items(args.n or _DEFAULT_N, seed=args.seed)
    if not Path(args.source).is_file():
        raise ConfigError(f"--source is gsm-symbolic, shipped or a JSONL file; "
                          f"{args.source!r} is none of them")
    return load_dataset(args.source, limit=args.n)


def _questions(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from lumos_graph.evaluation.datasets import write_jsonl
    from lumos_graph.training import data as td

    items = td.generate_items(args.n, seed=args.seed)
    path = Path(args.out)
    write_jsonl(({k: v for k, v in item.items() if k != "solution"} for item in items), path)
    templates = {td.template_of(item) for item in items}
    out.write(f"{len(items)} questions of {len(templates)} training templates -> {path}\n")
    return 0


def _from_eval(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from lumos_graph.training import data as td

    result = td.trajectories_to_training(args.paths, min_reward=args.min_reward,
                                         keep_errors=args.keep_errors)
    paths = td.write_training(result.files, args.out)
    _write_json(Path(args.out) / "report.json", result.report)
    r = result.report
    print(f"{r['kept']} of {r['rows']} runs kept (reward >= {r['min_reward']}; a voting "
          f"program run: each program that reached the gold answer); "
          f"{r['duplicates']} duplicate conversations left out", file=out)
    for reason, n in r["dropped"].items():
        print(f"  dropped {n}: {reason}", file=out)
    for path in paths:
        print(f"  {path}: {r['examples'].get(Path(path).stem, 0)} examples", file=out)
    return 0


def _check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from lumos_graph.evaluation.datasets import load_dataset
    from lumos_graph.training.contamination import check_contamination
    from lumos_graph.training.data import read_training

    files = read_training(args.folder)
    test = [item["question"] for item in load_dataset(args.test)]
    report = check_contamination(files, test)
    summary = report.as_dict()
    _write_json(Path(args.folder) / "contamination.json", summary)
    counts = summary["counts"]
    print(f"{summary['examples']} examples against {len(test)} {args.test} texts: "
          f"{counts['clean']} clean, {counts['uncertain']} uncertain, {counts['dirty']} dirty "
          f"(highest rate {summary['max_rate']:.0%})", file=out)
    for name, c in summary["by_file"].items():
        print(f"  {name}: {c['clean']} clean, {c['uncertain']} uncertain, {c['dirty']} dirty",
              file=out)
    if args.drop_dirty and counts["dirty"]:
        dirty = report.dirty()
        for path in sorted(Path(args.folder).iterdir()):
            name = path.name.removesuffix(".gz").removesuffix(".jsonl")
            if name in files and path.name.endswith((".jsonl", ".jsonl.gz")):
                kept = [e for e in files[name] if (name, str(e.get("id"))) not in dirty]
                _write_rows(path, kept)
        print(f"dropped {counts['dirty']} dirty examples", file=out)
    return 0


def _mix(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from lumos_graph.training.data import mix, read_examples, read_training

    if not 0 < args.eta <= 1:
        raise ConfigError(f"--eta must be in (0, 1], not {args.eta}")
    if not Path(args.general).is_file():
        raise ConfigError(f"no general data file {args.general!r}")
    files = read_training(args.folder)
    general = read_examples(args.general)
    folder = Path(args.folder)
    target = Path(args.out) if args.out else folder.with_name(
        f"{folder.resolve().name}-mixed-eta{args.eta:g}")
    reports = {}
    for name, rows in files.items():
        mixture, report = mix(rows, general, eta=args.eta, seed=args.seed)
        _write_rows(target / f"{name}.jsonl", mixture)
        reports[name] = report.__dict__
        note = "" if report.enough_general else " (not enough general data: all of it used)"
        print(f"{name}: {report.agent} agent + {report.general} general, agent share "
              f"{report.agent_share:.1%}{note}", file=out)
    _write_json(target / "mix.json", reports)
    return 0


# ---- output --------------------------------------------------------------------------------------
def _summary(out: TextIO, report: dict[str, Any], paths: list[Path]) -> None:
    line = f"{report.get('converted', 0)} examples per file"
    if "items" in report:
        line += f" from {report['items']} items in {report['seconds']} s"
    print(line, file=out)
    for reason, n in report.get("dropped", {}).items():
        print(f"  dropped {n}: {reason}", file=out)
    for path in paths:
        print(f"  {path}", file=out)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    path.write_bytes(gzip.compress(text, mtime=0) if path.suffix == ".gz" else text)
