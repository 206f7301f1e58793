"""Checking an annotated task by running its actions, and rendering its LUMOS conversations.

An :class:`Annotation` is a task solved the LUMOS way: subgoals and one line of actions per
subgoal. :func:`check` executes the actions with the real tools, exactly as the graph's
``execute`` node does (:func:`~lumos_graph.agent.execution.run_action`), and compares the final
value with the gold answer; :func:`conversations` renders the four module conversations with
:mod:`lumos_graph.agent.protocol` only, so they are byte for byte what the graph sends when the
models are prompted without few-shot examples (``prompt_format="lumos"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lumos_graph.agent import protocol
from lumos_graph.agent.actions import ActionSet
from lumos_graph.agent.execution import run_action
from lumos_graph.agent.nodes import Caps
from lumos_graph.errors import LumosError
from lumos_graph.evaluation.metrics import numeric_match

__all__ = [
    "Annotation", "ConversionError", "TrainingSet", "check", "conversations", "examples", "file_name",
]

Example = dict[str, Any]  # one training conversation: {"messages": [...], ...}

Turn = dict[str, str]
MODULES = ("plan", "ground")
FORMULATIONS = ("onetime", "iterative")
_CAPS = Caps()


class ConversionError(LumosError):
    """An item that does not become training data; ``reason`` is the key it is counted under."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Annotation:
    """A task solved in the LUMOS way.

    Attributes:
        id: the item's id.
        source: the ``dataset`` field of the training examples (``gsm_symbolic``).
        task: the task exactly as the agent is given it.
        gold: the gold answer.
        subgoals: the subgoal texts, without ``Subgoal k:``.
        actions: one line of actions per subgoal (``R1 = Calculator(3 * 12)``).
    """

    id: str
    source: str
    task: str
    gold: str
    subgoals: tuple[str, ...]
    actions: tuple[str, ...]


def file_name(domain: str, module: str, formulation: str) -> str:
    """``lumos_maths_plan_iterative``: LUMOS's name of a training file (without ``.jsonl``)."""
    return f"lumos_{domain}_{module}_{formulation}"


def check(annotation: Annotation, actions: ActionSet) -> list[str]:
    """Run the annotation's actions; the fed-back result of each subgoal.

    Raises:
        ConversionError: ``unparseable plan``, ``unparseable actions``, ``bad variable
            numbering``, ``over the caps``, ``execution error`` or ``wrong final answer``.
    """
    subgoals, lines = annotation.subgoals, annotation.actions
    if not subgoals or len(subgoals) != len(lines):
        raise ConversionError("unparseable plan", f"{len(subgoals)} subgoals, {len(lines)} "
                              "action lines")
    try:
        parsed = [s.text for s in protocol.parse_plan(protocol.render_plan(subgoals))]
        calls = [protocol.parse_actions(line) for line in lines]
    except protocol.ParseError as exc:
        reason = "unparseable plan" if "plan" in exc.reason else "unparseable actions"
        raise ConversionError(reason, str(exc)) from None
    if parsed != list(subgoals) or any("\n" in s for s in subgoals):
        raise ConversionError("unparseable plan", "a subgoal does not survive the protocol")
    if [c.render() for line in calls for c in line] != [
            c.render() for c in protocol.parse_actions(protocol.render_actions(lines))]:
        raise ConversionError("unparseable actions", "the lines do not join into one line")
    outputs = [o for line in calls for c in line for o in c.outputs]
    if outputs != [f"R{k}" for k in range(1, len(outputs) + 1)]:
        raise ConversionError("bad variable numbering", ", ".join(outputs))
    # an iterative run takes 2n+1 model calls; both formulations must fit the default caps
    if len(subgoals) > _CAPS.max_subgoals or 2 * len(subgoals) + 1 > _CAPS.max_model_calls or (
            len(outputs) > _CAPS.max_actions):
        raise ConversionError("over the caps", f"{len(subgoals)} subgoals, {len(outputs)} actions")
    variables: dict[str, str] = {}
    results: list[str] = []
    final: str | None = None
    for k, line in enumerate(calls, 1):
        shown = ""
        for call in line:
            record, values = run_action(call, actions, variables, subgoal=k)
            if record["error"]:
                raise ConversionError("execution error", f"{call.render()}: {record['error']}")
            variables.update(values)
            final = values[call.outputs[-1]]
            shown = ", ".join(record["result"] or [])
        results.append(shown)
    if not numeric_match(final, annotation.gold):
        raise ConversionError("wrong final answer", f"{final} instead of {annotation.gold}")
    return results


def conversations(annotation: Annotation, results: Sequence[str],
                  listing: str) -> dict[tuple[str, str], list[Turn]]:
    """The four module conversations, keyed by ``(module, formulation)``."""
    task, subgoals, lines = annotation.task, annotation.subgoals, annotation.actions
    labelled = [protocol.subgoal_text(k, s) for k, s in enumerate(subgoals, 1)]
    plan_iterative = [_user(protocol.plan_first(task))]
    for k, (subgoal, result) in enumerate(zip(subgoals, results, strict=True), 1):
        plan_iterative += [_assistant(protocol.render_decision(k, subgoal)),
                           _user(protocol.feedback(k, result))]
    plan_iterative.append(_assistant(protocol.render_decision(len(subgoals) + 1, None)))
    ground_iterative = [_user(protocol.ground_first(task, listing, labelled[0])),
                        _assistant(lines[0])]
    for label, line in zip(labelled[1:], lines[1:], strict=True):
        ground_iterative += [_user(protocol.ground_next(label)), _assistant(line)]
    return {
        ("plan", "onetime"): [_user(protocol.plan_first(task)),
                              _assistant(protocol.render_plan(subgoals))],
        ("ground", "onetime"): [_user(protocol.ground_first_onepass(task, listing, subgoals)),
                                _assistant(protocol.render_actions(lines))],
        ("plan", "iterative"): plan_iterative,
        ("ground", "iterative"): ground_iterative,
    }


def examples(annotation: Annotation, results: Sequence[str], listing: str,
             domain: str = "maths") -> dict[str, dict[str, Any]]:
    """The annotation's training example for each of the four files, keyed by file name."""
    return {
        file_name(domain, module, formulation): {
            "dataset": annotation.source, "id": annotation.id, "messages": turns}
        for (module, formulation), turns in conversations(annotation, results, listing).items()
    }


def _user(text: str) -> Turn:
    return {"role": "user", "content": text}


def _assistant(text: str) -> Turn:
    return {"role": "assistant", "content": text.strip()}


@dataclass
class TrainingSet:
    """Examples by file name (``lumos_maths_plan_onetime``...) and what happened to the input.

    ``report``: ``{"source", "items", "converted", "dropped": {reason: count},
    "samples": {reason: ["id: detail", ...]}, "seconds"}``.
    """

    files: dict[str, list[Example]] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    # the checked annotations and their subgoals' results (the converters fill it)
    annotations: list[tuple[Annotation, list[str]]] = field(default_factory=list)

    def add(self, found: dict[str, Example]) -> None:
        for name, example in found.items():
            self.files.setdefault(name, []).append(example)
