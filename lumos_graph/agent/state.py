"""The typed state of a LUMOS run.

Every value is plain JSON (strings, numbers, lists, dicts), so checkpointers can store it and a
run's state doubles as a trajectory: ``plan_turns`` and ``ground_turns`` are the module
conversations in LUMOS's training format. List fields carry their merge rule in their type:
nodes return only what they add.
"""

from __future__ import annotations

import operator
from typing import Annotated, Literal, TypedDict

from typing_extensions import NotRequired  # typing.NotRequired is Python 3.11+

__all__ = ["ActionRecord", "LumosState", "Sample", "Sampling", "Status", "Usage", "add_usage"]

Status = Literal["running", "answered", "cap_reached", "failed"]


class Usage(TypedDict):
    """Model usage summed over a run."""

    model_calls: int
    prompt_tokens: int
    completion_tokens: int
    prompt_tokens_cached: int
    model_seconds: float


def add_usage(left: Usage | None, right: Usage | None) -> Usage:
    """Reducer: add two usage records field by field."""
    zero: Usage = {
        "model_calls": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "prompt_tokens_cached": 0,
        "model_seconds": 0.0,
    }
    out = dict(zero)
    for part in (left, right):
        for key, value in (part or {}).items():
            out[key] = out.get(key, 0) + value
    return out  # type: ignore[return-value]


class ActionRecord(TypedDict):
    """One executed (or refused) action."""

    subgoal: int | None  # the subgoal it grounds; None in OnePass (one line for all subgoals)
    outputs: list[str]  # output variables, e.g. ["R3", "R4"]
    tool: str
    args: str  # as the model wrote them
    resolved_args: list[str]  # after earlier results were substituted
    result: list[str] | None  # display form of each output, or None on error
    error: str | None
    seconds: float  # wall time inside the tool
    # AgentTuning's no-progress rule: the same call as an earlier one of the run was not run
    # again; its outputs got the earlier values (``result``), and the model reads so
    duplicate: NotRequired[bool]
    empty: NotRequired[bool]  # it found nothing (an SQL query without rows)


class Sampling(TypedDict):
    """How a sampled run decodes (self-consistency branches); absent: greedy."""

    temperature: float
    seed: int


class Sample(TypedDict):
    """One branch of a self-consistency run, as the vote saw it."""

    answer: str | None
    sampling: Sampling
    status: Status
    votes: int  # branches that gave the same answer (this one included)
    logprob: float
    chosen: bool
    # the branch's grounding conversation (user turns and its replies): a branch that reached
    # the gold answer is training data even when the vote chose another (``data from-eval``)
    ground_turns: NotRequired[list[dict[str, str]]]


class LumosState(TypedDict, total=False):
    """State of the OnePass and Iterative LUMOS graphs.

    Input: ``task`` (required), ``images`` (optional: file paths, ``http(s)``/``data:`` URLs
    or raw bytes, for actions that look at images) and ``sampling`` (optional; greedy without
    it). Output: ``answer``, ``status``, ``reason`` and the trace; a self-consistency run
    (``samples`` > 1) adds ``samples``, one summary per branch, and its trace is the chosen
    branch's.
    """

    task: str
    images: list[str | bytes]
    subgoals: Annotated[list[str], operator.add]
    actions: Annotated[list[ActionRecord], operator.add]
    # exact values of result variables, substituted into later actions
    variables: Annotated[dict[str, str], operator.or_]
    # grounded but not yet executed actions of the current step (raw texts)
    pending: list[str]
    plan_turns: Annotated[list[dict[str, str]], operator.add]
    ground_turns: Annotated[list[dict[str, str]], operator.add]
    # the fed-back result of each executed subgoal (display form)
    results: Annotated[list[str], operator.add]
    errors: Annotated[list[str], operator.add]
    usage: Annotated[Usage, add_usage]
    planning_done: bool  # the iterative planner said "Yes, I will stop planning."
    stop_note: str  # why planning stopped without that decision (the answer's reason says it)
    status: Status
    reason: str
    answer: str | None
    sampling: Sampling
    # sum of the log-probabilities of every model output (0 where the model reports none):
    # a self-consistency vote breaks ties by it
    logprob: Annotated[float, operator.add]
    samples: list[Sample]
