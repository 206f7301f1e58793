"""The worked few-shot conversations shown to instruct models (see :func:`protocol.few_shot`).

Each :class:`~lumos_graph.agent.protocol.Example` is a task with its subgoals, the action line
grounding each subgoal and each subgoal's fed-back result; ``protocol.few_shot`` renders them
with the same templates as the real turns. Maths examples come first; the QA, SQL and VQA ones
are shown only for their own tool sets.
"""

from __future__ import annotations

from lumos_graph.agent.protocol import Example

__all__ = ["EXAMPLES"]

EXAMPLES: tuple[Example, ...] = (
    Example(
        task="The sum of two numbers is 25 and the larger number minus the smaller number is 7. "
        "What is the larger number?",
        subgoals=(
            "Set up the equations for the smaller number x and the larger number y.",
            "Solve the equations to find the larger number.",
        ),
        actions=(
            "R1 = SetEquation(x + y = 25); R2 = SetEquation(y - x = 7)",
            "R3, R4 = SolveEquation(R1, R2)",
        ),
        results=("y - x = 7", "9, 16"),
    ),
    Example(
        task="Leah had $32. She spent $4 on a milkshake and then half of the rest on a "
        "necklace. How much money does Leah have left?",
        subgoals=(
            "Calculate the money Leah had after buying the milkshake.",
            "Calculate the money Leah spent on the necklace.",
            "Calculate the money Leah has left.",
        ),
        actions=("R1 = Calculator(32 - 4)", "R2 = Calculator(R1 / 2)", "R3 = Calculator(R1 - R2)"),
        results=("28", "14", "14"),
    ),
    Example(  # complex QA: one fact, then stop
        task="Which country is Mount Kilimanjaro in?",
        subgoals=("Obtain the country of Mount Kilimanjaro.",),
        actions=(
            "R1 = KnowledgeQuery(Mount Kilimanjaro); R2 = ParagraphRetrieve(R1, Query: Which "
            "country is Mount Kilimanjaro in?); R3 = QA([R2], Question: Which country is Mount "
            "Kilimanjaro in?)",
        ),
        results=("Tanzania",),
    ),
    Example(  # complex QA, in the shape of LUMOS's StrategyQA/HotpotQA annotations
        task="Is the Nile longer than the Amazon River?",
        subgoals=(
            "Obtain the length of the Nile.",
            "Obtain the length of the Amazon River.",
            "Determine whether the Nile is longer than the Amazon River.",
        ),
        actions=(
            "R1 = KnowledgeQuery(Nile); R2 = ParagraphRetrieve(R1, Query: How long is the "
            "Nile?); R3 = QA([R2], Question: How long is the Nile?)",
            "R4 = KnowledgeQuery(Amazon River); R5 = ParagraphRetrieve(R4, Query: How long is "
            "the Amazon River?); R6 = QA([R5], Question: How long is the Amazon River?)",
            "R7 = QA([R3, R6], Question: Is the Nile longer than the Amazon River?)",
        ),
        results=("6,650 km", "6,400 km", "yes"),
    ),
    Example(  # SQL: the schema of the real database follows the action list
        task="How many customers live in Canada?",
        subgoals=("Count the customers whose country is Canada.",),
        actions=("R1 = SQLQuery(SELECT COUNT(*) FROM customers WHERE country = 'Canada')",),
        results=("8",),
    ),
    Example(  # multimodal: VQA reads the image, QA answers from what it read
        task="What does the sign in the image say?",
        subgoals=("Read the text of the sign in the image.", "Answer what the sign says."),
        actions=(
            "R1 = VQA([IMG], Question: What does the sign say?)",
            "R2 = QA([R1], Question: What does the sign say?)",
        ),
        results=("Text in the image: NO PARKING", "NO PARKING"),
    ),
)
