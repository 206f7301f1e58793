"""Training data for the LUMOS modules: converted worked solutions, filtered eval runs, mixing.

**Files.** As LUMOS publishes them: one JSONL file per module and formulation,
``lumos_{domain}_{plan|ground}_{onetime|iterative}.jsonl``, one example a line::

    {"dataset": "gsm_symbolic", "id": "gsm_symbolic-04-7",
     "messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}

The conversations are rendered with :mod:`lumos_graph.agent.protocol` only, so they are byte for
byte what the graph sends to a model prompted without few-shot examples
(``prompt_format="lumos"``): OnePass is one user/assistant pair per module; the iterative
planner gets ``The executed result for Subgoal k is ...`` after each subgoal and ends with
``Yes, I will stop planning.``; the iterative grounder gets one subgoal a turn.

**Sources.**

* :func:`convert_gsm_symbolic`: reasoning-gym's ``gsm_symbolic`` worked solutions, one
  subgoal and ``Calculator`` action per computation step (:func:`generate_items` draws them
  from templates 0-79; templates 80-99 are the test split and are refused);
* :func:`convert_with_teacher`: any chat model converts the worked solutions (LUMOS's own
  method, with a teacher LLM);
* :func:`trajectories_to_training`: successful ``lumos-graph eval`` runs (AgentTuning).

Every converted example is checked by executing its actions with the real tools and comparing
the final value with the gold answer; failures are dropped and counted by reason in the
:class:`TrainingSet`'s ``report``.

**The shipped set** (:func:`shipped_training_set`; ``lumos-graph data convert --source
shipped``): 3,248 checked annotations of 3,500 items from templates 0-79; the 2,966 of
templates 0-69 are rendered on load (70-79 are the validation split, ``maths-val``).
Made with (``pip install reasoning-gym``; about 10 seconds)::

    python -c "from lumos_graph import training_data as t; \\
               s = t.convert_gsm_symbolic(t.generate_items(3500, seed=1)); \\
               t.save_annotations(s.annotations, \\
                                  'lumos_graph/data/lumos_maths_annotations.jsonl.gz')"
"""

from __future__ import annotations

import gzip
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from random import Random
from typing import Any

from langchain_core.language_models import BaseChatModel

from lumos_graph.agent import protocol
from lumos_graph.agent.actions import ActionSet
from lumos_graph.errors import ConfigError
from lumos_graph.evaluation.metrics import numeric_match
from lumos_graph.jsonl import json_lines, read_text
from lumos_graph.training._convert_cot import Computation, CotError, Step, parse_cot
from lumos_graph.training._convert_render import (
    Annotation,
    ConversionError,
    Example,
    TrainingSet,
    check,
    examples,
    file_name,
)
from lumos_graph.training._convert_teacher_text import split_teacher_reply, teacher_prompt
from lumos_graph.training._convert_trajectories import from_trajectories

__all__ = [
    "FILES",
    "TEST_TEMPLATES",
    "TRAIN_TEMPLATES",
    "VAL_TEMPLATES",
    "Annotation",
    "ConversionError",
    "MixReport",
    "TrainingSet",
    "annotate",
    "convert_gsm_symbolic",
    "convert_with_teacher",
    "generate_items",
    "mix",
    "read_examples",
    "read_training",
    "refuse_test_items",
    "save_annotations",
    "shipped_training_set",
    "template_of",
    "trajectories_to_training",
    "write_training",
]

Item = dict[str, Any]
SOURCE = "gsm_symbolic"
TRAIN_TEMPLATES = range(70)
VAL_TEMPLATES = range(70, 80)  # maths-val: chooses checkpoints and settings, never trained on
TEST_TEMPLATES = range(80, 100)
FILES = tuple(file_name("maths", m, f) for m in ("plan", "ground")
              for f in ("onetime", "iterative"))
SHIPPED = "lumos_maths_annotations.jsonl.gz"
_TEMPLATE_ID = re.compile(r"^gsm_symbolic-(\d+)-")
_SAMPLES = 3  # ids kept per drop reason in a report


# ---- gsm_symbolic items -------------------------------------------------------------------------
def generate_items(n: int, *, seed: int = 1) -> list[Item]:
    """About ``n`` training items from ``gsm_symbolic`` templates 0-69, :data:`TRAIN_TEMPLATES`
    (needs reasoning-gym; 70-79 are the validation split and 80-99 the test split).

    The same number from each usable template, drawn as :func:`~lumos_graph.evaluation.datasets.
    generate_gsm_symbolic` draws them (seeded; the ``maths-dev`` questions, seed 2026, are
    dropped later by the converters).
    """
    from lumos_graph.evaluation.datasets import generate_gsm_symbolic

    if n < 1:
        raise ConfigError(f"the number of items must be at least 1, not {n}")
    try:
        from reasoning_gym.arithmetic.gsm_symbolic import (  # type: ignore[import-untyped]
            gsm_symbolic,
        )
    except ImportError:
        raise ConfigError("generating GSM questions needs: pip install reasoning-gym") from None
    usable = len(set(TRAIN_TEMPLATES) & set(gsm_symbolic.tasks_ok))
    items = generate_gsm_symbolic(TRAIN_TEMPLATES, len(TRAIN_TEMPLATES), seed=seed,
                                  per_template=-(-n // usable))
    return items[:n]


def template_of(item: Item) -> int | None:
    """The ``gsm_symbolic`` template of an item, from its id (``gsm_symbolic-07-...``)."""
    match = _TEMPLATE_ID.match(str(item.get("id", "")))
    return int(match.group(1)) if match else None


def refuse_test_items(items: Iterable[Item]) -> None:
    """Raise :class:`ConfigError` for any item of the test split.

    A test item is one from ``gsm_symbolic`` templates 80-99 or one whose question is a
    ``maths-test`` question; items of the validation templates 70-79 are refused too.
    """
    test = _questions("maths-test")
    for item in items:
        template = template_of(item)
        if template is not None and template in TEST_TEMPLATES:
            raise ConfigError(
                f"item {item.get('id')!r} comes from gsm_symbolic template {template}: "
                "templates 80-99 are the test split and are never trained on")
        if template is not None and template in VAL_TEMPLATES:
            raise ConfigError(
                f"item {item.get('id')!r} comes from gsm_symbolic template {template}: "
                "templates 70-79 are the validation split (maths-val) and are never trained on")
        if _normal(str(item.get("question", ""))) in test:
            raise ConfigError(f"item {item.get('id')!r} is a maths-test question: the test "
                              "split is never trained on")


def annotate(item: Item) -> Annotation:
    """The LUMOS annotation of a ``gsm_symbolic`` item from its worked solution.

    Raises:
        ConversionError: the solution cannot be read (see :func:`_convert_cot.parse_cot`).
    """
    solution = item.get("solution") or {}
    cot = solution.get("answer_cot") if isinstance(solution, dict) else None
    if not isinstance(cot, str) or not cot.strip():
        raise ConversionError("no worked solution", "the item has no solution.answer_cot")
    question = str(item["question"]).strip()
    try:
        steps = parse_cot(cot, question)
    except CotError as exc:
        raise ConversionError(exc.reason, exc.detail) from None
    computations = [c for step in steps for c in step.computations]
    last = computations[-1]
    if last.percent and not numeric_match(_number(last), str(item["answer"])) and (
            numeric_match(_number(last, 100), str(item["answer"]))):
        # "... = 20%" while the answer is 20: the last step also turns it into a number
        computations.append(Computation(f"R{len(computations)} * 100", last.value * 100, False))
        steps[-1] = Step(steps[-1].subgoal, (*steps[-1].computations, computations[-1]))
    lines, k = [], 0
    for step in steps:
        calls = []
        for computation in step.computations:
            k += 1
            calls.append(protocol.ActionCall((f"R{k}",), "Calculator",
                                             computation.expression).render())
        lines.append(protocol.render_actions(calls))
    return Annotation(id=str(item.get("id", "")), source=_source(item), task=question,
                      gold=str(item["answer"]), subgoals=tuple(s.subgoal for s in steps),
                      actions=tuple(lines))


def _source(item: Item) -> str:
    """The ``dataset`` field of an item's examples: ``gsm_symbolic`` or the item's own."""
    if template_of(item) is not None:
        return SOURCE
    return str(item.get("dataset") or item.get("source") or "custom")


def _number(c: Computation, scale: int = 1) -> str:
    value = c.value * scale
    return f"{value.numerator}/{value.denominator}"


# ---- converting ---------------------------------------------------------------------------------
def convert_gsm_symbolic(items: Sequence[Item], *, actions: ActionSet | None = None
                         ) -> TrainingSet:
    """Convert worked solutions programmatically; see the module docstring.

    Args:
        items: items with ``question``, ``answer`` and ``solution.answer_cot`` (the
            ``maths-*`` JSONL format, or :func:`generate_items`).
        actions: the action set to execute with (default: :func:`math_actions`, one worker).

    Raises:
        ConfigError: an item of the test split (templates 80-99, or a maths-test question).
    """
    return _convert(items, annotate, actions, source="gsm-symbolic")


def convert_with_teacher(items: Sequence[Item], teacher: BaseChatModel, *,
                         actions: ActionSet | None = None, max_tokens: int = 512) -> TrainingSet:
    """Convert worked solutions with a teacher chat model, as LUMOS did with GPT-4.

    The teacher sees a few worked conversions (:mod:`lumos_graph.training._convert_teacher_text`) and
    writes the plan and one line of actions per subgoal; its reply is parsed with
    :mod:`lumos_graph.agent.protocol` and checked by execution like every other example. Extra
    drop reasons: ``teacher failed`` (the call raised), ``unparseable teacher output``.
    """
    from lumos_graph.agent.model_calls import call_model
    from lumos_graph.tools.maths.actions import math_actions

    tools = actions or math_actions()
    listing = tools.listing()

    def by_teacher(item: Item) -> Annotation:
        solution = (item.get("solution") or {}).get("answer_cot")
        if not isinstance(solution, str) or not solution.strip():
            raise ConversionError("no worked solution", "the item has no solution.answer_cot")
        reply = call_model(teacher, teacher_prompt(item["question"], solution, listing),
                           max_tokens=max_tokens)
        if reply.text is None:
            raise ConversionError("teacher failed", reply.error or "")
        try:
            subgoals, lines = split_teacher_reply(reply.text)
        except protocol.ParseError as exc:
            raise ConversionError("unparseable teacher output", exc.reason) from None
        return Annotation(id=str(item.get("id", "")), source=_source(item),
                          task=str(item["question"]).strip(), gold=str(item["answer"]),
                          subgoals=tuple(subgoals), actions=tuple(lines))

    return _convert(items, by_teacher, tools, source="teacher")


def _convert(items: Sequence[Item], annotate_one: Callable[[Item], Annotation],
             actions: ActionSet | None, *, source: str) -> TrainingSet:
    from lumos_graph.tools.maths.actions import math_actions

    refuse_test_items(items)
    started = time.perf_counter()
    tools = actions or math_actions()
    listing = tools.listing()
    dev = _questions("maths-dev")
    seen: set[str] = set()
    result = TrainingSet()
    dropped: Counter[str] = Counter()
    samples: dict[str, list[str]] = {}
    for item in items:
        key = _normal(str(item.get("question", "")))
        try:
            if key in dev:
                raise ConversionError("maths-dev question")
            if key in seen:
                raise ConversionError("duplicate question")
            seen.add(key)
            annotation = annotate_one(item)
            results = check(annotation, tools)
        except ConversionError as exc:
            dropped[exc.reason] += 1
            found = samples.setdefault(exc.reason, [])
            if len(found) < _SAMPLES:
                found.append(f"{item.get('id')}: {exc.detail}".rstrip(": "))
            continue
        result.add(examples(annotation, results, listing))
        result.annotations.append((annotation, results))
    result.report = {
        "source": source,
        "items": len(items),
        "converted": len(result.files.get(FILES[0], [])),
        "dropped": dict(dropped.most_common()),
        "samples": samples,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return result


def _questions(name: str) -> set[str]:
    from lumos_graph.evaluation.datasets import load_dataset

    return {_normal(item["question"]) for item in load_dataset(name)}


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()


# ---- files --------------------------------------------------------------------------------------
def write_training(files: dict[str, list[Example]], out: str | Path) -> list[Path]:
    """Write ``{name: examples}`` as ``out/<name>.jsonl``; returns the paths."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows in sorted(files.items()):
        path = folder / f"{name}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths


def read_training(folder: str | Path) -> dict[str, list[Example]]:
    """The training files of a folder (``*.jsonl`` and ``*.jsonl.gz``), by file name.

    Raises:
        ConfigError: no such folder, no training file in it, or a line off the format.
    """
    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(f"no training data folder {str(path)!r}")
    found = sorted([*path.glob("*.jsonl"), *path.glob("*.jsonl.gz")])
    if not found:
        raise ConfigError(f"{path} holds no training file (*.jsonl)")
    return {p.name.removesuffix(".gz").removesuffix(".jsonl"): read_examples(p) for p in found}


def read_examples(path: str | Path) -> list[Example]:
    """The examples of one JSONL file (gzipped when it ends in ``.gz``); each needs
    ``messages``, a list of ``{"role", "content"}``."""
    path = Path(path)
    rows = []
    for n, row in json_lines(read_text(path), source=path):
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list) or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str)
                and isinstance(m.get("content"), str) for m in messages):
            raise ConfigError(f"{path}:{n}: needs 'messages', a list of {{role, content}}")
        rows.append(row)
    return rows


def shipped_training_set() -> dict[str, list[Example]]:
    """The converted ``gsm_symbolic`` training set that ships with the package, by file name.

    The package ships the checked annotations (:func:`save_annotations`), not the rendered
    conversations: they are rendered here with :mod:`lumos_graph.agent.protocol`, so they always
    match what the installed graph sends.
    """
    from lumos_graph.tools.maths.actions import math_actions

    try:
        data = resources.files("lumos_graph.data").joinpath(SHIPPED).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"this install lacks the shipped training set ({SHIPPED}); make one "
                          "with: lumos-graph data convert --source gsm-symbolic") from None
    listing = math_actions().listing()
    result = TrainingSet()
    for line in gzip.decompress(data).decode("utf-8").splitlines():
        row = json.loads(line)
        if template_of({"id": row["id"]}) in VAL_TEMPLATES:
            continue  # shipped before the validation split existed: held out here
        annotation = Annotation(id=row["id"], source=row["source"], task=row["task"],
                                gold=row["gold"], subgoals=tuple(row["subgoals"]),
                                actions=tuple(row["actions"]))
        result.add(examples(annotation, row["results"], listing))
    return result.files


def save_annotations(annotations: Sequence[tuple[Annotation, list[str]]],
                     out: str | Path) -> Path:
    """Write checked annotations and their results as gzipped JSONL (the shipped form)."""
    lines = [json.dumps({**asdict(a), "results": list(results)}, ensure_ascii=False)
             for a, results in annotations]
    path = Path(out)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0))
    return path


# ---- mixing (AgentTuning) -----------------------------------------------------------------------
@dataclass(frozen=True)
class MixReport:
    """How a mixture came out: ``agent_share`` is the agent examples' share of the mixture."""

    eta: float
    agent: int
    general: int
    general_available: int
    agent_share: float
    enough_general: bool


def mix(agent_examples: Sequence[Example], general_examples: Sequence[Example], *,
        eta: float = 0.2, seed: int = 0) -> tuple[list[Example], MixReport]:
    """AgentTuning's mixture: agent examples make up ``eta`` of it, general chat the rest.

    AgentTuning trains on ``eta * E_agent[log p] + (1 - eta) * E_general[log p]``. With every
    example weighing the same in the loss, sampling examples so that a share ``eta`` of them
    is agent data gives that objective in expectation: all ``A`` agent examples are kept and
    ``A * (1 - eta) / eta`` general ones are drawn without replacement. When there are fewer
    general examples, all are used and ``agent_share`` in the report says what the ratio
    became. (A trainer that averages the loss over tokens instead weighs long examples more;
    the share is by example.) The mixture is shuffled with ``seed``.

    Raises:
        ConfigError: ``eta`` outside ``(0, 1]`` or no agent examples.
    """
    if not 0 < eta <= 1:
        raise ConfigError(f"eta must be in (0, 1], not {eta}")
    if not agent_examples:
        raise ConfigError("there are no agent examples to mix")
    rng = Random(seed)
    wanted = round(len(agent_examples) * (1 - eta) / eta)
    general = list(general_examples)
    chosen = general if wanted >= len(general) else rng.sample(general, wanted)
    mixture = [*agent_examples, *chosen]
    rng.shuffle(mixture)
    return mixture, MixReport(
        eta=eta, agent=len(agent_examples), general=len(chosen),
        general_available=len(general), agent_share=round(len(agent_examples) / len(mixture), 4),
        enough_general=wanted <= len(general))


def trajectories_to_training(paths: Sequence[str | Path], *, min_reward: float = 1.0,
                             keep_errors: bool = False) -> TrainingSet:
    """Training examples from ``lumos-graph eval`` trajectories (AgentTuning's filter).

    See :mod:`lumos_graph.training._convert_trajectories`.
    """
    return from_trajectories(paths, min_reward=min_reward, keep_errors=keep_errors)
