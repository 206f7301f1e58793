"""Model-facing text of the teacher converter (``training.data.convert_with_teacher``).

A teacher chat model reads a question and its worked solution and writes the LUMOS annotation:
the OnePass plan on the first line, then one line of actions per subgoal. The reply is read
with :mod:`lumos_graph.agent.protocol`'s parsers (``parse_plan``, ``parse_actions``).

The teacher's prompt lives here, beside :mod:`lumos_graph.agent.protocol` rather than inside it, as
the few-shot examples live in :mod:`lumos_graph.agent.few_shot_examples`: protocol.py is past the
house's 500-line mark. Every text the teacher sees is a template in this one module, and its
reply is parsed only by protocol's parsers.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Template

from lumos_graph.agent import protocol

__all__ = ["TEACHER_EXAMPLES", "TEACHER_SYSTEM", "TEACHER_TASK", "split_teacher_reply",
           "teacher_prompt"]

TEACHER_SYSTEM = Template(
    "You annotate worked maths solutions for training a planning module and a grounding "
    "module.\nRead the question and its worked solution, then reply with exactly these "
    "lines and nothing else:\n"
    "Line 1: the plan, one subgoal per computation step of the solution, written as "
    "Subgoal 1: ...; Subgoal 2: ... Each subgoal says in words what to calculate, without "
    "the numbers' arithmetic.\n"
    "Then one line per subgoal: the actions that carry it out, from this action list:\n"
    "${listing}\n"
    "Write actions as R1 = Calculator(formula). Number the results R1, R2, ... across all "
    "lines, and use an earlier result by its name (R1) instead of repeating its number."
)
TEACHER_TASK = Template("Question: ${question}\nWorked solution:\n${solution}")


@dataclass(frozen=True)
class TeacherExample:
    """A worked conversion shown to the teacher before the real item."""

    question: str
    solution: str
    subgoals: tuple[str, ...]
    actions: tuple[str, ...]


TEACHER_EXAMPLES: tuple[TeacherExample, ...] = (
    TeacherExample(
        question="Leah had $32. She spent $4 on a milkshake and then half of the rest on a "
        "necklace. How much money does Leah have left?",
        solution="After the milkshake Leah had 32 - 4 = $28.\nShe spent 28 / 2 = $14 on the "
        "necklace.\nShe has 28 - 14 = $14 left.\n#### 14",
        subgoals=(
            "Calculate the money Leah had after buying the milkshake.",
            "Calculate the money Leah spent on the necklace.",
            "Calculate the money Leah has left.",
        ),
        actions=("R1 = Calculator(32 - 4)", "R2 = Calculator(R1 / 2)",
                 "R3 = Calculator(R1 - R2)"),
    ),
    TeacherExample(
        question="A baker makes 4 trays of 12 muffins and sells 30 of them. He packs the rest "
        "in boxes of 6. How many boxes does he fill?",
        solution="He makes 4 * 12 = 48 muffins.\nHe has 48 - 30 = 18 muffins left, which fill "
        "18 / 6 = 3 boxes.\n#### 3",
        subgoals=(
            "Calculate the number of muffins the baker makes.",
            "Calculate the number of boxes the muffins left after the sale fill.",
        ),
        actions=("R1 = Calculator(4 * 12)", "R2 = Calculator(R1 - 30); R3 = Calculator(R2 / 6)"),
    ),
)


def teacher_prompt(question: str, solution: str, listing: str) -> list[dict[str, str]]:
    """The teacher's conversation: instructions, the worked examples, then the item."""
    turns = [{"role": "system", "content": TEACHER_SYSTEM.substitute(listing=listing)}]
    for ex in TEACHER_EXAMPLES:
        turns += [
            {"role": "user",
             "content": TEACHER_TASK.substitute(question=ex.question, solution=ex.solution)},
            {"role": "assistant", "content": teacher_reply(ex.subgoals, ex.actions)},
        ]
    turns.append({"role": "user", "content": TEACHER_TASK.substitute(
        question=question.strip(), solution=solution.strip())})
    return turns


def teacher_reply(subgoals: tuple[str, ...], actions: tuple[str, ...]) -> str:
    """The reply the teacher should give: the plan line, then one line of actions each."""
    return "\n".join([protocol.render_plan(subgoals), *actions])


def split_teacher_reply(text: str) -> tuple[list[str], list[str]]:
    """``(subgoals, action lines)`` of a teacher's reply; raises ``protocol.ParseError``.

    The first non-empty line is the plan (``protocol.parse_plan``); the next ``n`` non-empty
    lines are the actions of the ``n`` subgoals (each checked by ``protocol.parse_actions``).
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        raise protocol.ParseError("an empty reply", text)
    subgoals = protocol.parse_plan(lines[0])
    if [s.index for s in subgoals] != list(range(1, len(subgoals) + 1)):
        raise protocol.ParseError("the plan's subgoals are not numbered 1, 2, ...", lines[0])
    actions = lines[1: 1 + len(subgoals)]
    if len(actions) < len(subgoals):
        raise protocol.ParseError(
            f"{len(subgoals)} subgoals but {len(actions)} lines of actions", text)
    for line in actions:
        protocol.parse_actions(line)
    return [s.text for s in subgoals], actions
