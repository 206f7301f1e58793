"""The fuzz command: what it generates, that it counts what it feeds, and that it catches an
exception that escapes."""

from __future__ import annotations

import json

import pytest

from lumos_graph.agent import protocol
from lumos_graph.cli.fuzz import main
from lumos_graph.cli.main import main as lumos_graph
from lumos_graph.evaluation.fuzz import (
    FAMILIES,
    VALID_OUTPUTS,
    OutputGenerator,
    fuzz,
    iter_findings,
)


def test_the_generator_draws_every_family_for_every_role_and_replays_by_seed() -> None:
    first, again = OutputGenerator(seed=7), OutputGenerator(seed=7)
    drawn = [first.output(role) for role in ("plan", "decision", "ground") * 100]
    assert drawn == [again.output(role) for role in ("plan", "decision", "ground") * 100]
    assert set(first.families) == set(FAMILIES)
    assert all(isinstance(text, str) for text in drawn)
    # the valid seeds parse, so truncating and mutating them makes near misses
    assert all(protocol.parse_plan(text) for text in VALID_OUTPUTS["plan"])
    assert all(protocol.parse_decision(text) for text in VALID_OUTPUTS["decision"])
    assert all(protocol.parse_actions(text) for text in VALID_OUTPUTS["ground"])


def test_a_session_feeds_at_least_n_outputs_and_every_run_ends(capsys: pytest.CaptureFixture[str]
                                                               ) -> None:
    status = lumos_graph(["fuzz", "--n", "150", "--seed", "3", "--json", "--memory-mb", "0"])
    report = json.loads(capsys.readouterr().out)
    assert report["outputs"] >= 150
    assert report["parser_inputs"] == report["outputs"]
    assert sum(report["statuses"].values()) + report["runs_escaped"] == report["runs"]
    assert set(report["statuses"]) <= {"answered", "failed", "cap_reached"}
    assert report["actions_run"] > 0  # some outputs reached the tools
    assert status == (1 if report["escaped_exceptions"] or report["broken_invariants"] else 0)


def test_it_also_runs_on_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--n", "0"]) == 2
    assert "--n must be at least 1" in capsys.readouterr().err


def test_an_exception_escaping_a_parser_is_reported_with_its_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(text: str) -> list[protocol.Subgoal]:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(protocol, "parse_plan", broken)
    report = fuzz(40, seed=1)
    assert report.escaped >= report.outputs  # every output broke parse_plan at least
    kinds = [k for k in report.kinds if k.startswith("parse_plan: RuntimeError: parser bug")]
    assert kinds and report.kinds[kinds[0]] == report.parser_inputs
    example = next(f for f in report.findings if f.where == "parse_plan")
    assert example.outputs and isinstance(example.outputs[0], str)
    assert any("x parse_plan: RuntimeError: parser bug" in line for line in iter_findings(report))
