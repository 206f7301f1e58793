"""Training data: converters checked by execution, the graph's own conversations, filters,
mixing, and the ``data`` command."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumos_graph.agent.actions import ActionSet
from lumos_graph.cli import data as cli_data
from lumos_graph.errors import ConfigError
from lumos_graph.evaluation.datasets import load_dataset
from lumos_graph.graphs.lumos import create_lumos_agent
from lumos_graph.tools.maths.actions import math_actions
from lumos_graph.training import data as td
from lumos_graph.training._convert_cot import CotError, parse_cot
from lumos_graph.training._convert_render import Annotation, check, conversations
from tests.fakes import scripted
from tests.needs import need

LISTING = (
    "The available action list is 'Calculator', 'SetEquation', 'SolveEquation', 'Count', "
    "'SolveInequality', 'Code', and 'Define'.\nCalculator(formula): Calculate the input formula; "
    "SetEquation(equation): Set up an equation to be solved; SolveEquation(equation): Solve the "
    "previous set equation; Count(list): Count the number of elements in the given list; "
    "SolveInequality(inequality): Solve the previous set inequality; Code(pseudo_code): "
    "Generate a Python function that corresponds to the pseudo code; Define(variable/number): "
    "Define a variable or a number for latter usage."
)
FRIENDS = {
    "id": "gsm_symbolic-16-900",
    "question": "James has 4 times as many LinkedIn friends as Sarah. Charlie has 3 times as many "
                "friends as James. If James has 48 friends, how many friends does Charlie have?",
    "answer": "144",
    "solution": {"answer_cot": "Charlie has 3 * 48 = 144 LinkedIn friends.\n#### 144"},
}
PENCILS = {
    "id": "gsm_symbolic-05-900",
    "question": "Mia buys 3 packs of 12 pencils and gives 10 pencils away. How many pencils does "
                "she have left?",
    "answer": "26",
    "solution": {"answer_cot": "She has 3 * 12 = 36 pencils.\nShe has 36 - 10 = 26 pencils "
                               "left.\n#### 26"},
}


@pytest.fixture(scope="module")
def actions() -> Iterator[ActionSet]:
    yield math_actions()


def item(**changes: Any) -> dict[str, Any]:
    return {**PENCILS, **changes}


# ---- the rule-based converter -------------------------------------------------------------------
def test_a_worked_solution_becomes_subgoals_and_calculator_actions() -> None:
    annotation = td.annotate(PENCILS)
    assert annotation.subgoals == ("Calculate the number of pencils she has.",
                                   "Calculate the number of pencils she has left.")
    # 36 is the first step's result, so the second step uses R1
    assert annotation.actions == ("R1 = Calculator(3 * 12)", "R2 = Calculator(R1 - 10)")


def test_the_four_conversations_are_the_protocol_texts(actions: ActionSet) -> None:
    annotation = td.annotate(PENCILS)
    results = check(annotation, actions)
    assert results == ["36", "26"]
    conv = conversations(annotation, results, actions.listing())
    task = PENCILS["question"]
    plan_user = ("Please provide a reasonable subgoal-based plan to solve the given task.\n"
                 f"Task: {task}; Initial Environment Description: None.")
    assert conv[("plan", "onetime")] == [
        {"role": "user", "content": plan_user},
        {"role": "assistant",
         "content": "Subgoal 1: Calculate the number of pencils she has.; "
                    "Subgoal 2: Calculate the number of pencils she has left."},
    ]
    ground = ("Please ground the given subgoal to corresponding executable actions for solving "
              "the given task. The grounded actions must be the one in available action list."
              f"\n\n{LISTING}\n\nTask: {task} \n")
    assert conv[("ground", "onetime")][0]["content"] == ground + (
        "Subgoals to be grounded: Subgoal 1: Calculate the number of pencils she has.; "
        "Subgoal 2: Calculate the number of pencils she has left.")
    assert conv[("ground", "onetime")][1]["content"] == (
        "R1 = Calculator(3 * 12); R2 = Calculator(R1 - 10)")
    assert [t["content"] for t in conv[("plan", "iterative")]] == [
        plan_user,
        "Subgoal 1: Calculate the number of pencils she has.",
        "The executed result for Subgoal 1 is 36. Should we stop planning?",
        "No, I will keep planning. Subgoal 2: Calculate the number of pencils she has left.",
        "The executed result for Subgoal 2 is 26. Should we stop planning?",
        "Yes, I will stop planning.",
    ]
    assert [t["content"] for t in conv[("ground", "iterative")]] == [
        ground + "Subgoal to be grounded: Subgoal 1: Calculate the number of pencils she has.",
        "R1 = Calculator(3 * 12)",
        "Subgoal to be grounded: Subgoal 2: Calculate the number of pencils she has left.",
        "R2 = Calculator(R1 - 10)",
    ]


def test_real_gsm_symbolic_solutions_convert_and_execute_to_the_gold(actions: ActionSet) -> None:
    # the dev items are real gsm_symbolic items (never trained on; converting them is fine)
    converted, reasons = 0, set()
    for dev in load_dataset("maths-dev"):
        try:
            check(td.annotate(dev), actions)
            converted += 1
        except td.ConversionError as exc:
            reasons.add(exc.reason)
    assert converted >= 17
    assert reasons <= {"number from nowhere", "unparseable step", "wrong final answer"}


def test_generated_items_convert_with_counted_drops(actions: ActionSet) -> None:
    need("reasoning_gym")
    items = td.generate_items(140, seed=3)
    assert len(items) == 140
    assert all(td.template_of(i) in td.TRAIN_TEMPLATES for i in items)
    result = td.convert_gsm_symbolic(items, actions=actions)
    report = result.report
    assert report["items"] == 140
    assert report["converted"] + sum(report["dropped"].values()) == 140
    assert report["converted"] >= 120
    assert set(report["dropped"]) <= {"number from nowhere", "unparseable step",
                                      "wrong final answer", "duplicate question",
                                      "maths-dev question", "step result mismatch"}
    assert sorted(result.files) == sorted(td.FILES)
    assert {len(rows) for rows in result.files.values()} == {report["converted"]}


def test_the_graph_sends_exactly_the_converted_conversations(actions: ActionSet) -> None:
    files = td.shipped_training_set()
    by_id = {name: {e["id"]: e for e in rows} for name, rows in files.items()}
    for example in files["lumos_maths_plan_onetime"][:: 800]:
        for mode, formulation in (("onepass", "onetime"), ("iterative", "iterative")):
            plan = by_id[f"lumos_maths_plan_{formulation}"][example["id"]]["messages"]
            ground = by_id[f"lumos_maths_ground_{formulation}"][example["id"]]["messages"]
            agent = create_lumos_agent(
                planner=scripted([t["content"] for t in plan if t["role"] == "assistant"],
                                 "lumos"),
                grounder=scripted([t["content"] for t in ground if t["role"] == "assistant"],
                                  "lumos"),
                actions=actions, mode=mode)
            task = plan[0]["content"].split("Task: ", 1)[1].rsplit(
                "; Initial Environment Description", 1)[0]
            state = agent.invoke({"task": task})
            assert state["status"] == "answered"
            assert state["plan_turns"] == plan
            assert state["ground_turns"] == ground


def test_test_split_items_are_refused() -> None:
    with pytest.raises(ConfigError, match="templates 80-99 are the test split"):
        td.convert_gsm_symbolic([PENCILS, item(id="gsm_symbolic-85-1")])
    with pytest.raises(ConfigError, match="templates 70-79 are the validation split"):
        td.convert_gsm_symbolic([PENCILS, item(id="gsm_symbolic-74-1")])
    test_question = load_dataset("maths-test")[0]["question"]
    with pytest.raises(ConfigError, match="maths-test question"):
        td.convert_gsm_symbolic([item(id="mine-1", question=test_question)])


def test_dev_questions_duplicates_and_bad_solutions_are_dropped_by_reason(
        actions: ActionSet) -> None:
    dev = load_dataset("maths-dev")[0]
    items = [
        PENCILS,
        item(id="copy"),  # same question
        {**dev, "id": "dev-copy"},
        item(id="wrong", question="Q1 3 12 10", answer="25"),
        item(id="nowhere", question="Q2 3 12", solution={
            "answer_cot": "She has 3 * 12 = 36 pencils.\nShe has 36 - 77 = -41.\n#### -41"},
             answer="-41"),
        item(id="unread", question="Q3", solution={
            "answer_cot": "She has 30 apples + T = 50 + T = 90 apples.\n#### 40"}, answer="40"),
        item(id="none", question="Q4", solution={}),
    ]
    result = td.convert_gsm_symbolic(items, actions=actions)
    assert result.report["converted"] == 1
    assert result.report["dropped"] == {
        "duplicate question": 1, "maths-dev question": 1, "wrong final answer": 1,
        "number from nowhere": 1, "unparseable step": 1, "no worked solution": 1}
    assert result.report["samples"]["wrong final answer"] == ["wrong: 26 instead of 25"]


def test_a_percentage_step_is_turned_into_the_number_asked(actions: ActionSet) -> None:
    percent = item(id="gsm_symbolic-29-900",
                   question="Of 50 dogs, 10 have spots. What percentage have spots?",
                   answer="20", solution={"answer_cot": "10 / 50 * 100% = 20%\n#### 20"})
    annotation = td.annotate(percent)
    assert annotation.actions == ("R1 = Calculator(10 / 50 * 100%); R2 = Calculator(R1 * 100)",)
    assert check(annotation, actions) == ["20"]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789 +-*/=x÷%$.,()abcT\n", max_size=80))
def test_the_solution_reader_fails_only_with_a_reason(cot: str) -> None:
    try:
        steps = parse_cot(cot, "A question with 3 and 12.")
    except CotError as exc:
        assert exc.reason in {"no steps", "unparseable step", "step result mismatch",
                              "number from nowhere"}
    else:
        assert steps and all(s.computations for s in steps)


# ---- the teacher converter ----------------------------------------------------------------------
def test_teacher_conversions_are_parsed_with_the_protocol_and_checked(
        actions: ActionSet) -> None:
    teacher = scripted([
        ("Subgoal 1: Calculate the pencils Mia bought.; Subgoal 2: Calculate the pencils left."
         "\nR1 = Calculator(3 * 12)\nR2 = Calculator(R1 - 10)"),
        "Here is my annotation: the pencils are 36.",
        "Subgoal 1: Calculate the pencils.\nR1 = Calculator(3 * 12)",
        "Subgoal 1: Calculate everything.\nR2 = Calculator(3 * 12 - 10)",
        "Subgoal 1: Divide.\nR1 = Calculator(3 / 0)",
    ])
    items = [PENCILS, *(item(id=f"t{k}", question=f"Question {k} with 3 and 12.")
                        for k in range(4))]
    result = td.convert_with_teacher(items, teacher, actions=actions)
    assert result.report["converted"] == 1
    assert result.report["dropped"] == {"unparseable teacher output": 1,
                                        "wrong final answer": 1, "bad variable numbering": 1,
                                        "execution error": 1}
    plan = result.files["lumos_maths_plan_onetime"][0]["messages"][1]["content"]
    assert plan == ("Subgoal 1: Calculate the pencils Mia bought.; "
                    "Subgoal 2: Calculate the pencils left.")
    first = [m.text for m in teacher.prompts[0]]
    assert "Worked solution:\nAfter the milkshake Leah had 32 - 4 = $28." in first[1]
    solution = "She has 3 * 12 = 36 pencils.\nShe has 36 - 10 = 26 pencils left.\n#### 26"
    assert first[-1] == f"Question: {PENCILS['question']}\nWorked solution:\n{solution}"
    assert LISTING in first[0]


# ---- trajectories (AgentTuning's filter) --------------------------------------------------------
def trajectory(run_id: str, agent: str = "lumos-iterative", **changes: Any) -> dict[str, Any]:
    plan = [{"role": "user", "content": "Please provide ... Task: T"},
            {"role": "assistant", "content": "Subgoal 1: Add."},
            {"role": "user", "content": "The executed result for Subgoal 1 is 5. Should we stop "
                                        "planning?"},
            {"role": "assistant", "content": "Yes, I will stop planning."}]
    ground = [{"role": "user", "content": "Please ground ... Subgoal to be grounded: Subgoal 1: "
                                          "Add."},
              {"role": "assistant", "content": "R1 = Calculator(2 + 3)"}]
    row = {"id": run_id, "agent": agent, "dataset": "maths-dev", "kind": "maths", "task": "T",
           "gold": "5", "answer": "5", "reward": 1.0, "correct": True, "status": "answered",
           "reason": "", "seconds": 1.0, "usage": {}, "format_errors": 0, "tool_errors": 0,
           "model_calls": [], "actions": [], "subgoals": ["Add."], "plan_turns": plan,
           "ground_turns": ground}
    return {**row, **changes}


def test_trajectories_keep_successful_lumos_runs_once(tmp_path: Path) -> None:
    first = tmp_path / "lumos-iterative.jsonl"
    rows = [
        trajectory("a"),
        trajectory("b"),  # the same conversations as "a"
        trajectory("c", reward=0.0, correct=False, answer="6"),
        trajectory("d", format_errors=1),
        trajectory("e", plan_turns=[{"role": "assistant", "content": "Subgoal 1: Add."}]),
        trajectory("f", status="cap_reached"),
    ]
    first.write_text("".join(json.dumps(r) + "\n" for r in rows))
    second = tmp_path / "other.jsonl"
    onepass = trajectory("g", agent="lumos-onepass", plan_turns=[
        {"role": "user", "content": "Please provide ... Task: T"},
        {"role": "assistant", "content": "Subgoal 1: Add."}])
    second.write_text("\n".join(json.dumps(r) for r in [
        trajectory("h", agent="react", plan_turns=[], ground_turns=[]), onepass]) + "\n")
    result = td.trajectories_to_training([first, second])
    report = result.report
    assert (report["rows"], report["kept"], report["duplicates"]) == (8, 3, 2)
    assert report["dropped"] == {"reward below the threshold": 1, "errors in the run": 1,
                                 "malformed conversation": 1, "not answered": 1,
                                 "not a LUMOS agent": 1}
    assert report["examples"] == {"lumos_maths_ground_iterative": 1,
                                  "lumos_maths_ground_onetime": 1,
                                  "lumos_maths_plan_iterative": 1,
                                  "lumos_maths_plan_onetime": 1}
    kept = result.files["lumos_maths_plan_iterative"][0]
    assert kept == {"dataset": "maths-dev", "id": "a", "messages": rows[0]["plan_turns"]}
    loose = td.trajectories_to_training([first], min_reward=0.0, keep_errors=True)
    assert loose.report["kept"] == 4


def test_a_program_run_trains_the_program_grounder_with_its_system_turn(tmp_path: Path) -> None:
    ground = [{"role": "user", "content": "Problem: T\n\nPlan:\n1. Add."},
              {"role": "assistant", "content": "```python\nanswer = 2 + 3\n```"}]
    path = tmp_path / "lumos-program.jsonl"
    path.write_text(json.dumps(trajectory("p", agent="lumos-program", ground_turns=ground)) + "\n")
    result = td.trajectories_to_training([path])
    assert result.report["examples"] == {"lumos_maths_ground_program": 1}
    messages = result.files["lumos_maths_ground_program"][0]["messages"]
    assert messages[0]["role"] == "system" and "Python program" in messages[0]["content"]
    assert messages[1:] == ground


def test_a_voting_program_run_gives_every_program_that_reached_the_gold_answer(
        tmp_path: Path) -> None:
    def program(code: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": "Problem: T\n\nPlan:\n1. Add."},
                {"role": "assistant", "content": f"```python\n{code}\n```"}]

    def sample(answer: str | None, code: str, status: str = "answered") -> dict[str, Any]:
        return {"answer": answer, "status": status, "votes": 1, "logprob": -1.0,
                "chosen": False, "ground_turns": program(code)}

    # the vote went wrong (6), yet two programs reached the gold 5, one of them twice
    wrong_vote = trajectory("w", agent="lumos-program", answer="6", reward=0.0, correct=False,
                            ground_turns=program("answer = 2 * 3"), samples=[
                                sample("6", "answer = 2 * 3"), sample("6", "answer = 3 * 2"),
                                sample("5.0", "answer = 2 + 3"), sample("5", "answer = 2 + 3"),
                                sample("$5", "answer = 10 - 5"),
                                sample(None, "answer = 1 / 0", status="failed")])
    no_luck = trajectory("n", agent="lumos-program", answer="7", reward=0.0, correct=False,
                         samples=[sample("7", "answer = 7"), sample("8", "answer = 8")])
    older = trajectory("o", agent="lumos-program", ground_turns=program("answer = 4 + 1"),
                       samples=[{"answer": "5", "status": "answered", "votes": 1,
                                 "logprob": 0.0, "chosen": True}])  # no ground_turns recorded
    path = tmp_path / "lumos-program.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (wrong_vote, no_luck, older)))
    result = td.trajectories_to_training([path])
    report = result.report
    assert (report["rows"], report["kept"], report["duplicates"]) == (3, 2, 1)
    assert report["dropped"] == {"no program reached the gold answer": 1}
    codes = [m["messages"][-1]["content"] for m in result.files["lumos_maths_ground_program"]]
    assert codes == ["```python\nanswer = 2 + 3\n```", "```python\nanswer = 10 - 5\n```",
                     "```python\nanswer = 4 + 1\n```"]
    assert all(m["messages"][0]["role"] == "system"
               for m in result.files["lumos_maths_ground_program"])


# ---- mixing -------------------------------------------------------------------------------------
def test_mix_makes_agent_data_eta_of_the_mixture() -> None:
    agent = [{"id": f"a{k}", "messages": []} for k in range(20)]
    general = [{"id": f"g{k}", "messages": []} for k in range(500)]
    mixture, report = td.mix(agent, general, eta=0.2, seed=1)
    assert (report.agent, report.general, report.agent_share) == (20, 80, 0.2)
    assert len(mixture) == 100 and sum(e["id"][0] == "a" for e in mixture) == 20
    assert mixture != [*agent, *mixture[20:]]  # shuffled
    short, report = td.mix(agent, general[:30], eta=0.2)
    assert (report.general, report.enough_general, report.agent_share) == (30, False, 0.4)
    assert len(short) == 50
    with pytest.raises(ConfigError, match="eta must be in"):
        td.mix(agent, general, eta=0.0)


# ---- the shipped set and the command line -------------------------------------------------------
def test_the_shipped_set_has_the_four_files_and_no_test_or_dev_question() -> None:
    files = td.shipped_training_set()
    assert sorted(files) == sorted(td.FILES)
    sizes = {len(rows) for rows in files.values()}
    assert len(sizes) == 1 and sizes.pop() > 2900  # templates 0-69: 70-79 are held out
    ids = [e["id"] for e in files["lumos_maths_plan_onetime"]]
    assert all(td.template_of({"id": i}) in td.TRAIN_TEMPLATES for i in ids)
    tasks = {e["messages"][0]["content"] for e in files["lumos_maths_plan_onetime"]}
    for name in ("maths-dev", "maths-test"):
        for q in load_dataset(name):
            assert not any(q["question"] in t for t in tasks)


def cli(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="lumos-graph")
    cli_data.add_parsers(parser.add_subparsers(dest="command"))
    out = io.StringIO()
    return cli_data.run(parser.parse_args(argv), out, io.StringIO()), out.getvalue()


def test_cli_convert_check_mix_and_from_eval(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, text = cli("data", "convert", "--source", "shipped", "--out", str(data))
    assert code == 0 and "examples per file" in text
    assert sorted(p.name for p in data.glob("*.jsonl")) == sorted(f"{n}.jsonl" for n in td.FILES)
    source = tmp_path / "items.jsonl"
    source.write_text(json.dumps(PENCILS) + "\n"
                      + json.dumps(item(id="x", question="Q", solution={})) + "\n")
    code, text = cli("data", "convert", "--source", str(source), "--out", str(tmp_path / "mine"))
    assert code == 0 and "1 examples per file from 2 items" in text
    assert "dropped 1: no worked solution" in text
    report = json.loads((tmp_path / "mine" / "report.json").read_text())
    assert report["converted"] == 1
    code, text = cli("data", "check", str(tmp_path / "mine"))
    assert code == 0 and "0 dirty" in text
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"messages": [{"role": "user", "content": str(k)}]})
                               + "\n" for k in range(10)))
    code, text = cli("data", "mix", str(tmp_path / "mine"), "--general", str(general))
    assert code == 0 and "1 agent + 4 general" in text
    assert (tmp_path / "mine-mixed-eta0.2" / "lumos_maths_plan_onetime.jsonl").is_file()
    traj = tmp_path / "t.jsonl"
    traj.write_text(json.dumps(trajectory("a")) + "\n")
    code, text = cli("data", "from-eval", str(traj), "--out", str(tmp_path / "ev"))
    assert code == 0 and text.startswith("1 of 1 runs kept")


@pytest.mark.parametrize(("argv", "message"), [
    (("data", "convert", "--n", "0"), "--n must be at least 1"),
    (("data", "convert", "--source", "nope.jsonl"), "is none of them"),
    (("data", "check", "no-such-dir"), "no training data folder"),
    (("data", "mix", "no-such-dir", "--general", "g.jsonl", "--eta", "1.5"), "--eta must be"),
    (("data", "mix", "no-such-dir", "--general", "missing.jsonl"), "no general data file"),
    (("data", "from-eval", "missing.jsonl"), "no trajectory file"),
])
def test_cli_mistakes_are_one_line_config_errors(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        cli(*argv)
    assert "\n" not in str(info.value)


def test_cli_refuses_test_items_from_a_file(tmp_path: Path) -> None:
    source = tmp_path / "items.jsonl"
    source.write_text(json.dumps(item(id="gsm_symbolic-91-3")) + "\n")
    with pytest.raises(ConfigError, match="test split"):
        cli("data", "convert", "--source", str(source), "--out", str(tmp_path / "o"))


def test_annotation_round_trips_through_the_shipped_form(tmp_path: Path,
                                                          actions: ActionSet) -> None:
    annotation = td.annotate(PENCILS)
    path = td.save_annotations([(annotation, check(annotation, actions))], tmp_path / "a.gz")
    assert path.stat().st_size > 0
    assert isinstance(annotation, Annotation)


def test_the_shipped_training_set_holds_out_the_validation_templates() -> None:
    files = td.shipped_training_set()
    ids = {e["id"] for examples in files.values() for e in examples}
    templates = {td.template_of({"id": i}) for i in ids}
    assert templates and templates <= set(td.TRAIN_TEMPLATES)
    assert not templates & set(td.VAL_TEMPLATES)


def test_cli_questions_writes_fresh_training_template_questions(tmp_path: Path) -> None:
    pytest.importorskip("reasoning_gym", reason="needs reasoning-gym (pip install -e '.[test]')")
    path = tmp_path / "fresh.jsonl"
    code, text = cli("data", "questions", "--n", "140", "--seed", "7", "--out", str(path))
    items = load_dataset(str(path))
    templates = {td.template_of(i) for i in items}
    assert templates <= set(td.TRAIN_TEMPLATES) and len(templates) > 60  # reasoning-gym's usable
    assert code == 0 and text == f"140 questions of {len(templates)} training templates -> {path}\n"
    assert len(items) == 140 and len({i["question"] for i in items}) == 140
    assert all(i["kind"] == "maths" and i["answer"] for i in items)
