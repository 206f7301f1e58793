"""``lumos-graph fuzz``: feed generated model outputs to the agents and the parsers, report what
escaped (see :mod:`lumos_graph.evaluation.fuzz`). Also runs on its own:

    python -m lumos_graph.cli.fuzz --n 10000

Exit status 0 when nothing escaped and every run ended properly, 1 otherwise. The process
limits its own address space (``--memory-mb``), so an output that makes the host allocate
without bound is reported as a ``MemoryError`` instead of exhausting the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["add_parser", "main", "run"]


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=10_000,
                        help="model outputs to feed (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (replays a session)")
    parser.add_argument("--timeout", type=float, default=1.0,
                        help="seconds per maths action (default 1)")
    parser.add_argument("--memory-mb", type=int, default=4096,
                        help="address-space limit of this process (default 4096; 0: none)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def add_parser(sub: Any) -> None:
    """Add the ``fuzz`` command to the ``lumos-graph`` subcommands."""
    parser = sub.add_parser("fuzz", help="feed generated model outputs to the agents and parsers")
    _add_options(parser)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run a fuzz session and print its report; 1 if anything escaped."""
    from lumos_graph.evaluation.fuzz import fuzz, iter_findings

    if args.n < 1:
        print("lumos-graph: error: --n must be at least 1", file=err)
        return 2
    if args.memory_mb > 0:
        _limit_memory(args.memory_mb)
    last = [0]

    def progress(report: Any) -> None:
        if not args.json and report.outputs - last[0] >= 1000:
            last[0] = report.outputs
            print(f"  {report.outputs} outputs, {report.escaped} escaped", file=err, flush=True)

    report = fuzz(args.n, seed=args.seed, timeout=args.timeout, progress=progress)
    if args.json:
        json.dump(report.as_dict(), out, indent=2, ensure_ascii=True)
        out.write("\n")
    else:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(report.statuses.items()))
        families = ", ".join(f"{k} {v}" for k, v in sorted(report.families.items()))
        print(f"outputs fed to the agents: {report.outputs} in {report.runs} runs "
              f"({report.seconds:.0f} s; slowest run {report.slowest_run:.1f} s)", file=out)
        print(f"  families: {families}", file=out)
        print(f"  final statuses: {statuses}; actions executed: {report.actions_run}", file=out)
        print(f"outputs fed to each parser: {report.parser_inputs}", file=out)
        print(f"escaped exceptions: {report.escaped}", file=out)
        print(f"runs without a valid status and reason, or over their caps: {report.broken}",
              file=out)
        for line in iter_findings(report):
            print(line, file=out)
    return 1 if report.escaped or report.broken else 0


def _limit_memory(megabytes: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = megabytes * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft == resource.RLIM_INFINITY or limit < soft:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lumos_graph.cli.fuzz``: the same command on its own."""
    parser = argparse.ArgumentParser(prog="python -m lumos_graph.cli.fuzz",
                                     description=__doc__.splitlines()[0])
    _add_options(parser)
    return run(parser.parse_args(argv), sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
