"""Fuzzing the LUMOS agent with generated model outputs: nothing a model writes may crash a run.

``lumos-graph fuzz --n 10000`` feeds at least ``n`` generated outputs to the planner and the
grounder of LUMOS agents (OnePass and Iterative, over the real maths tools plus a user tool,
so actions run in the sandbox and the worker processes) and, separately, to every parser of
:mod:`lumos_graph.agent.protocol`. Outputs are drawn from five families:

- ``random``: random text over ASCII, protocol fragments and Unicode (combining marks, bidi
  controls, zero-width and line-separator characters, full-width digits, lone surrogates);
- ``truncated``: a valid plan, decision or action line cut at a random point;
- ``mutated``: a valid one with spans deleted, duplicated or swapped and fragments inserted;
- ``huge``: numbers replaced by very long or very large ones (``9**9**9**9``, 5,000 digits);
- ``nested``: parts wrapped in thousands of brackets, or calls nested inside calls.

Some calls also fail (the model raises) or report running out of tokens. What counts as a
finding: an exception that escapes ``invoke`` or a parser (other than
:class:`~lumos_graph.agent.protocol.ParseError`), a final state without a valid ``status`` and
a ``reason``, or a run over its caps (model calls, subgoals, actions). Each finding keeps the
outputs that caused it (truncated for display), so it can be replayed. No model is loaded.
"""

from __future__ import annotations

import random
import re
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from lumos_graph.agent import protocol
from lumos_graph.agent.actions import ActionSet
from lumos_graph.agent.few_shot_examples import EXAMPLES
from lumos_graph.graphs.lumos import create_lumos_agent
from lumos_graph.tools.toolsets import create_actions

__all__ = [
    "FAMILIES", "VALID_OUTPUTS", "Finding", "FuzzReport", "OutputGenerator", "fuzz",
    "iter_findings",
]

FAMILIES = ("random", "truncated", "mutated", "huge", "nested")
STATUSES = ("answered", "failed", "cap_reached")
_SHOWN = 300  # characters of an output kept in a finding

_MATHS = [e for e in EXAMPLES if not any(t in " ".join(e.actions) for t in ("QA(", "SQL", "VQA"))]
_PLANS = [protocol.render_plan(e.subgoals) for e in EXAMPLES]
_DECISIONS = [
    protocol.render_decision(k, s) for e in EXAMPLES for k, s in enumerate(e.subgoals, 1)
] + [protocol.render_decision(2, None)]
_ACTIONS = [line for e in _MATHS for line in e.actions] + [
    "R1 = Calculator(3 * 12 - 10)",
    "R1 = Define(p); R2 = Calculator(40% * R1)",
    "R1 = Count([1, 2, 3, 4])",
    "R1 = SetEquation(3*x > 6); R2 = SolveInequality(R1)",
    "R1 = Code(sum(range(1, 11)))",
    "R1 = Code(unit_price(apple) * 6)",
    "R1 = Code(unit_price('apple') * 6)",
    "R1 = unit_price(bread); R2 = Calculator(R1 * 3)",
    "R1 = Code(If 141 % 1 == 0, 1, 0)",
    "R3, R4 = SolveEquation(R1, R2)",
    "Output = Calculator(2 + 2)",
]
_FRAGMENTS = [
    "; ", ", ", "(", ")", "[", "]", "=", " = ", "R1", "R2", "R10", "R0", "Output", "Subgoal 1: ",
    "Subgoal ", ": ", protocol.STOP_DECISION, protocol.CONTINUE_DECISION, "\n", "\\n", "'", '"',
    "Calculator(", "Code(", "SolveEquation(", "unit_price(", "Unknown(", "x", "%", "**", "/",
    "0", "-", "```", "{", "}", "#", "\t", "If ", " then ", " else ",
]
_UNICODE = [
    "\u0301", "\u202e", "\u200b", "\ufeff", "\u2028", "\u2029", "\x85", "\x0b", "\x00", "\ud800",
    "１２", "Ｒ１", "＝", "；", "（", "）", "Ѕubgoal", "٣", "²", "½", "∞", "×", "÷", "−",
    "\U0001f600", "ﬁ", "İ", "ß", "\u0000R1",
]
_HUGE = [
    "9" * 5000, "1" + "0" * 400, "9**9**9**9", "10**10**10", "2**-1074", "1e308", "1e999",
    "-0", "nan", "inf", "-inf", "0.000000000000000000001", "factorial(100000)",
    "1/0", "0**-1", "10**(10**10)",
]
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# well-formed outputs of each role, the seeds of the truncated, mutated, huge and nested ones
VALID_OUTPUTS: dict[str, list[str]] = {"plan": _PLANS, "decision": _DECISIONS, "ground": _ACTIONS}


class OutputGenerator:
    """Draws model outputs of the five families from a seeded random generator."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.families: Counter[str] = Counter()

    def output(self, role: str) -> str:
        """One output for ``role`` (``plan``, ``decision`` or ``ground``)."""
        family = self.rng.choice(FAMILIES)
        self.families[family] += 1
        seed = self.rng.choice(VALID_OUTPUTS.get(role, _ACTIONS))
        if self.rng.random() < 0.15 and family != "random":
            return seed  # some outputs stay valid, so runs reach the tools
        return getattr(self, f"_{family}")(seed)

    def _random(self, _: str) -> str:
        rng = self.rng
        size = rng.choice((0, 1, 5, 20, 80, 300, 3000))
        pools: list[Callable[[], str]] = [
            lambda: chr(rng.randrange(32, 127)),
            lambda: rng.choice(_FRAGMENTS),
            lambda: rng.choice(_UNICODE),
            lambda: chr(rng.randrange(0, 0x110000)),
        ]
        return "".join(rng.choice(pools)() for _ in range(size))

    def _truncated(self, seed: str) -> str:
        return seed[: self.rng.randrange(len(seed) + 1)]

    def _mutated(self, seed: str) -> str:
        rng = self.rng
        text = seed
        for _ in range(rng.randint(1, 4)):
            i, j = sorted(rng.randrange(len(text) + 1) for _ in range(2))
            op = rng.randrange(5)
            if op == 0:
                text = text[:i] + text[j:]
            elif op == 1:
                text = text[:j] + text[i:j] + text[j:]
            elif op == 2:
                text = text[:i] + rng.choice(_FRAGMENTS + _UNICODE) + text[i:]
            elif op == 3:
                text = text[j:] + text[:j]
            else:
                text = text[:i] + text[i:j].swapcase() + text[j:]
        return text

    def _huge(self, seed: str) -> str:
        numbers = list(_NUMBER.finditer(seed))
        if not numbers:
            return seed + self.rng.choice(_HUGE)
        chosen = {m.start() for m in numbers if self.rng.random() < 0.6} or {numbers[0].start()}
        return _NUMBER.sub(
            lambda m: self.rng.choice(_HUGE) if m.start() in chosen else m.group(0), seed
        )

    def _nested(self, seed: str) -> str:
        rng = self.rng
        depth = rng.choice((10, 100, 1000, 5000))
        if rng.random() < 0.5:
            left, right = rng.choice((("(", ")"), ("[", "]"), ("Calculator(", ")"), ("{", "}")))
            i, j = sorted(rng.randrange(len(seed) + 1) for _ in range(2))
            unbalanced = rng.random() < 0.3
            closing = right * (depth - 1 if unbalanced else depth)
            return seed[:i] + left * depth + seed[i:j] + closing + seed[j:]
        inner = "1"
        for _ in range(min(depth, 300)):
            inner = f"{rng.choice(('abs', 'sqrt', 'unit_price', 'Code', 'R1'))}({inner})"
        return f"R1 = {rng.choice(('Calculator', 'Code', 'Count'))}({inner})"


class _FeederChatModel(BaseChatModel):
    """A chat model whose every reply is the next generated output (never loads a model)."""

    feed: Any  # the run's _Feed
    role: str  # "plan", "decision" or "ground": which valid outputs the feed starts from
    fail_rate: float = 0.01
    cut_rate: float = 0.05

    @property
    def _llm_type(self) -> str:
        return "lumos-fuzz"

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None,
        run_manager: Any = None, **kwargs: Any,
    ) -> ChatResult:
        rng: random.Random = self.feed.rng
        self.feed.calls += 1
        if rng.random() < self.fail_rate:
            raise RuntimeError("fuzz: the model backend failed")
        text = self.feed.next(self.role)
        meta = {"finish_reason": "length"} if rng.random() < self.cut_rate else {}
        return ChatResult(generations=[
            ChatGeneration(message=AIMessage(text, response_metadata=meta))])


@dataclass
class Finding:
    """One escaped exception or broken invariant, with the outputs that caused it."""

    where: str  # "run onepass", "run iterative" or "parse_plan" ...
    problem: str
    outputs: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"where": self.where, "problem": self.problem,
                "outputs": [_shown(o) for o in self.outputs]}


@dataclass
class FuzzReport:
    """What a fuzz session fed and found."""

    outputs: int = 0  # outputs fed to the agents' models
    parser_inputs: int = 0  # outputs fed to each parser directly
    runs: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    families: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)  # the first few of each kind
    kinds: Counter[str] = field(default_factory=Counter)  # "where: problem" -> how often
    escaped: int = 0  # exceptions that escaped a run or a parser
    runs_escaped: int = 0  # runs that ended in an exception (no final state)
    broken: int = 0  # runs that ended without a valid status and reason, or over their caps

    def add(self, finding: Finding, *, escaped: bool) -> None:
        """Count a finding; keep its outputs if it is among the first three of its kind."""
        kind = f"{finding.where}: {finding.problem}"
        kind = re.sub(r"\d{3,}", "N", kind)  # one kind whatever the numbers in the message
        self.kinds[kind] += 1
        if self.kinds[kind] <= 3:
            self.findings.append(finding)
        if escaped:
            self.escaped += 1
        else:
            self.broken += 1
    seconds: float = 0.0
    slowest_run: float = 0.0
    actions_run: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "outputs": self.outputs, "parser_inputs": self.parser_inputs, "runs": self.runs,
            "escaped_exceptions": self.escaped, "runs_escaped": self.runs_escaped,
            "broken_invariants": self.broken,
            "kinds": dict(self.kinds),
            "statuses": dict(self.statuses), "families": dict(self.families),
            "actions_run": self.actions_run, "seconds": round(self.seconds, 1),
            "slowest_run_seconds": round(self.slowest_run, 2),
            "findings": [f.as_dict() for f in self.findings],
        }


class _Feed:
    """Hands each model call of a run its generated output and remembers them."""

    def __init__(self, generator: OutputGenerator) -> None:
        self.generator = generator
        self.rng = generator.rng
        self.fed: list[str] = []
        self.calls = 0  # model calls of the run, failed ones included

    def next(self, role: str) -> str:
        text = self.generator.output(role)
        self.fed.append(text)
        return text


def fuzz(
    n: int = 10_000,
    *,
    seed: int = 0,
    actions: ActionSet | None = None,
    timeout: float = 1.0,
    max_model_calls: int = 8,
    progress: Callable[[FuzzReport], None] | None = None,
) -> FuzzReport:
    """Feed at least ``n`` generated outputs to LUMOS agents and to the protocol's parsers.

    Args:
        n: outputs to feed to the agents' models (each is also fed to every parser).
        seed: the random seed; the same seed replays the same outputs.
        actions: the action set (default: the maths tools plus a user tool, ``unit_price``,
            also callable inside ``Code``).
        timeout: seconds per maths action (the sandbox's and workers' time limit).
        max_model_calls: the agents' model-call cap per run.
        progress: called with the report after every run.
    """
    generator = OutputGenerator(seed)
    report = FuzzReport()
    owned = actions is None
    action_set = actions if actions is not None else _default_actions(timeout)
    feed = _Feed(generator)
    grounder = _FeederChatModel(feed=feed, role="ground")
    agents = {
        mode: create_lumos_agent(
            planner=_FeederChatModel(feed=feed, role="plan" if mode == "onepass" else "decision"),
            grounder=grounder, actions=action_set, mode=mode, max_model_calls=max_model_calls)
        for mode in ("onepass", "iterative")
    }
    caps = {"max_model_calls": max_model_calls, "max_subgoals": 8, "max_actions": 24}
    started = time.perf_counter()
    try:
        while report.outputs < n:
            mode = generator.rng.choice(("onepass", "iterative"))
            feed.fed, feed.calls = [], 0
            run_started = time.perf_counter()
            _run_once(agents[mode], mode, feed, caps, report)
            report.slowest_run = max(report.slowest_run, time.perf_counter() - run_started)
            report.runs += 1
            report.outputs += len(feed.fed)
            for text in feed.fed:
                _parse_all(text, report)
            if progress is not None:
                progress(report)
    finally:
        report.seconds = time.perf_counter() - started
        report.families = Counter(generator.families)
        if owned:
            _close(action_set)
    return report


def _run_once(
    agent: Any, mode: str, feed: _Feed, caps: dict[str, int], report: FuzzReport
) -> None:
    where = f"run {mode}"
    try:
        final = agent.invoke({"task": "What do 6 apples cost with a 10 percent discount?"})
    except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
        report.add(Finding(where, _exception(exc), list(feed.fed)), escaped=True)
        report.runs_escaped += 1
        return
    status = final.get("status")
    report.statuses[str(status)] += 1
    actions = final.get("actions", [])
    report.actions_run += len(actions)
    problems = []
    if status not in STATUSES:
        problems.append(f"status {status!r}")
    if not isinstance(final.get("reason"), str) or not final["reason"].strip():
        problems.append("no reason")
    if "answer" not in final or (status == "answered" and not isinstance(final["answer"], str)):
        problems.append(f"answer {final.get('answer')!r} with status {status!r}")
    calls = final.get("usage", {}).get("model_calls", 0)
    if calls > caps["max_model_calls"] or calls != feed.calls:
        problems.append(f"{calls} model calls counted, {feed.calls} made")
    if len(final.get("subgoals", [])) > caps["max_subgoals"]:
        problems.append(f"{len(final['subgoals'])} subgoals")
    if len(actions) > caps["max_actions"]:
        problems.append(f"{len(actions)} actions")
    if problems:
        report.add(Finding(where, "; ".join(problems), list(feed.fed)), escaped=False)


def _parse_all(text: str, report: FuzzReport) -> None:
    report.parser_inputs += 1
    checks: list[tuple[str, Callable[[], object]]] = [
        ("parse_plan", lambda: protocol.parse_plan(text)),
        ("parse_decision", lambda: protocol.parse_decision(text)),
        ("parse_actions", lambda: _round_trip(text)),
        ("parse_actions(cut_tail)", lambda: protocol.parse_actions(text, cut_tail=True)),
        ("split_args", lambda: protocol.split_args(text, None)),
        ("substitute", lambda: protocol.substitute(text, {"R1": "1/3", "R2": "x"},
                                                   expression=True)),
        ("parse_direct_answer", lambda: protocol.parse_direct_answer(text)),
        ("parse_short_answer", lambda: protocol.parse_short_answer(text)),
    ]
    for name, check in checks:
        try:
            check()
        except protocol.ParseError:
            continue
        except Exception as exc:  # noqa: BLE001 - an escaped exception is the finding
            report.add(Finding(name, _exception(exc), [text]), escaped=True)


def _round_trip(text: str) -> None:
    """The execute node re-parses each rendered call: it must come back as the same call."""
    for call in protocol.parse_actions(text):
        again = protocol.parse_actions(call.render())
        if again != [call]:
            raise AssertionError(f"{call.render()!r} re-parses as {again!r}")


def _exception(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1:]
    where = f" at {frame[0].filename.rsplit('/', 1)[-1]}:{frame[0].lineno}" if frame else ""
    return f"{type(exc).__name__}: {_shown(str(exc), 200)}{where}"


def _shown(text: str, limit: int = _SHOWN) -> str:
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def unit_price(item: str) -> float:
    """Look up the price in dollars of one unit of a grocery item."""
    prices = {"apple": 0.5, "bread": 2.25, "milk": 1.2}
    name = item.strip().strip("'\"").lower().rstrip("s")
    if name not in prices:
        raise ValueError(f"no price for {item!r}")
    return prices[name]


def _default_actions(timeout: float) -> ActionSet:
    return create_actions(["maths", unit_price], timeout=timeout)


def _close(actions: ActionSet) -> None:
    for action in actions:
        worker = getattr(action.executor, "worker", None)
        if worker is not None:
            worker.close()


def iter_findings(report: FuzzReport) -> Iterator[str]:
    """The findings as lines for a person: each kind with its count, then examples."""
    for kind, count in report.kinds.most_common():
        yield f"{count:6d} x {kind}"
    for finding in report.findings:
        yield f"example: {finding.where}: {finding.problem}"
        for text in finding.outputs:
            yield f"    output {_shown(text)!r}"
