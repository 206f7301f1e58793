"""The LUMOS protocol: every model-facing text is rendered here and every model output parsed here.

Two prompt formats share the same content:

* ``"lumos"`` — byte for byte what the released LUMOS checkpoints were trained on (the
  conversation wrapper itself is applied by the chat model, see ``ChatLlamaCpp``); no
  system message, no few-shot examples.
* ``"chat_template"`` — general instruct models: a short system message and worked few-shot
  conversations before the real one, rendered with the same templates, so the model sees
  exactly the format it must produce. The prefix is constant, so the KV cache reuses it.

Delimiters are defined once below and both the renderers and the parsers are built from them.
Nothing outside this module formats a prompt or parses a model output.

The file is a little past the house's 500-line mark on purpose: every template and every parser
of the agent's text in one place is the point of it (the teacher's prompt and the few-shot
data live in their own modules).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from string import Template
from typing import Literal

from lumos_graph.errors import LumosError

__all__ = [
    "ActionCall",
    "Decision",
    "ParseError",
    "PromptFormat",
    "Turn",
    "direct_prompt",
    "drop_import",
    "feedback",
    "final_answer_prompt",
    "module_system",
    "parse_actions",
    "parse_call",
    "parse_decision",
    "parse_direct_answer",
    "parse_plan",
    "parse_program",
    "parse_short_answer",
    "parse_sql",
    "program_import",
    "program_prompt",
    "qa_prompt",
    "render_actions",
    "split_args",
    "sql_prompt",
    "sql_retry",
    "substitute",
]

PromptFormat = Literal["lumos", "chat_template"]
Turn = dict[str, str]  # {"role": "user" | "assistant", "content": ...}: LUMOS training format

# ---- delimiters (shared by renderers, parsers and the grammar) -------------------------------
ITEM_SEP = "; "  # several subgoals or actions on the one line a LUMOS model emits
SUBGOAL_HEAD = "Subgoal {k}: "
STOP_DECISION = "Yes, I will stop planning."
CONTINUE_DECISION = "No, I will keep planning. "
VARIABLE_RE = re.compile(r"(?<![A-Za-z0-9_])R(\d+)(?![A-Za-z0-9_])")
OUTPUT_ALIAS = "Output"


class ParseError(LumosError):
    """A model output that does not follow the protocol; ``raw`` holds the text."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(f"{message}: {raw!r}")
        self.reason = message
        self.raw = raw


def _template(text: str) -> Template:
    return Template(text)


def _fill(template: Template, **values: str) -> str:
    try:
        return template.substitute(**values)
    except KeyError as exc:  # a missing variable is a bug in our code: fail loudly
        raise LumosError(f"prompt template needs {exc.args[0]!r}") from None


# ---- templates -------------------------------------------------------------------------------
PLAN_FIRST = _template(
    "Please provide a reasonable subgoal-based plan to solve the given task.\n"
    "Task: ${task}; Initial Environment Description: None."
)
GROUND_FIRST = _template(
    "Please ground the given subgoal to corresponding executable actions for solving the given "
    "task. The grounded actions must be the one in available action list.\n\n"
    "${listing}\n\nTask: ${task} \nSubgoal to be grounded: ${subgoal}"
)
GROUND_FIRST_ONEPASS = _template(
    "Please ground the given subgoal to corresponding executable actions for solving the given "
    "task. The grounded actions must be the one in available action list.\n\n"
    "${listing}\n\nTask: ${task} \nSubgoals to be grounded: ${subgoals}"
)
GROUND_NEXT = _template("Subgoal to be grounded: ${subgoal}")
PLAN_FEEDBACK = _template("The executed result for Subgoal ${k} is ${result}. Should we stop planning?")
GROUNDING_CONTEXT = _template(" The grounding could be based on the following results: ${results}")
GROUNDING_CONTEXT_ITEM = _template("The execution result for Subgoal ${k} is ${result}.")

# The complex-QA action list exactly as the LUMOS complex_qa checkpoints saw it (the
# duplicated Calculator entry included).
QA_LISTING = (
    "The available action list is 'KnowledgeQuery', 'ParagraphRetrieve', 'QA', 'Calculator', "
    "and 'Code'.\nCalculator(formula): Calculate the input formula; KnowledgeQuery(query): "
    "Capture the relevant webpages according to the query; ParagraphRetrieve(context, query): "
    "Given a query, retrieve the most relevant paragraphs from the given context; "
    "QA(context, query): Given context, answer the given query; Calculator(formula): "
    "Calculate the input formula; Code(pseudo_code): Generate a Python function that "
    "corresponds to the pseudo code."
)

# The QA action (reading comprehension by the local model) and the final answer of QA tasks,
# which LUMOS forms with an LLM from the intermediate QA results.
NO_ANSWER = "no answer"
QA_SYSTEM = _template(
    "You answer questions in a few words: a name, a number, a date, yes or no. No sentences."
)
QA_WITH_CONTEXT = _template(
    "Context:\n${context}\n\nQuestion: ${question}\nAnswer in a few words, using only the "
    "context. If the context does not hold the answer, reply: " + NO_ANSWER
)
QA_WITHOUT_CONTEXT = _template("Question: ${question}\nAnswer in a few words.")
FINAL_ANSWER = _template(
    "Task: ${task}\nFindings:\n${findings}\nGive the final answer to the task in a few words, "
    "based on the findings."
)
FINDING = _template("- ${question}: ${result}")

# The `direct` baseline of `lumos-graph eval`: the model alone, thinking step by step.
# Trained modules of our own (``ChatLlamaCpp(module_system=True)``) get one short system turn
# naming their module and formulation, in training and at inference: the OnePass and the
# Iterative planner receive the identical first user turn and must answer it differently, so
# one set of weights needs to be told which it is (LUMOS trains one model per formulation).
MODULE_SYSTEM = {
    ("plan", "onepass"): _template(
        "You are the planning module of a LUMOS agent, OnePass formulation: write the whole "
        "plan, every subgoal the task needs, on one line."),
    ("plan", "iterative"): _template(
        "You are the planning module of a LUMOS agent, Iterative formulation: write only the "
        "next subgoal, and stop planning once the executed results answer the task."),
    ("ground", "onepass"): _template(
        "You are the grounding module of a LUMOS agent, OnePass formulation: ground every "
        "subgoal into actions, all on one line."),
    ("ground", "iterative"): _template(
        "You are the grounding module of a LUMOS agent, Iterative formulation: ground the "
        "given subgoal into actions on one line."),
}

# Program grounding (``grounding="program"``, OnePass): the grounding module writes the plan as
# one Python program, a commented step per subgoal, which the Code tool runs once. The default
# model is a coder model; it writes correct arithmetic in Python more often than in Calculator
# chains. Zero-shot on purpose: with worked examples the default model copied their numbers.
PROGRAM_SYSTEM = _template(
    "You are an expert Python programmer. Solve the maths word problem by writing a short "
    "Python program that follows the given plan: one commented step per subgoal, one variable "
    "per quantity from the problem. Store the final number in a variable named answer. Reply "
    "with only the code in a ```python block."
)
PROGRAM_TASK = _template("Problem: ${task}\n\nPlan:\n${plan}")
PROGRAM_ITEM = _template("${k}. ${subgoal}")
# With the user's tools in the action set, the program may call them as Python functions (the
# Code tool runs them in the host process); the user turn then lists them after the plan.
PROGRAM_FUNCTIONS = _template(
    "\n\nThese functions are already defined: call them, do not define them again (pass "
    "text arguments as strings):\n${functions}")
PROGRAM_FUNCTION = _template("- ${doc}")
# ... and the program starts by importing them (the grammar writes this line): a small coder
# model otherwise defines placeholder functions of the same names instead of calling them.
PROGRAM_IMPORT = _template("from tools import ${names}\n\n")
_TOOLS_IMPORT = re.compile(r"from\s+tools\s+import\s+[\w\s,()]+$")
PROGRAM_FENCE = "```python\n"
_CODE_BLOCK = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n(?P<code>.*?)(?:```|$)", re.DOTALL)

# Text-to-SQL: the direct baseline's prompt (the standard one: schema with sample rows, then the
# question) and the SQL grounder's, which adds the plan and may get one corrected attempt.
SQL_SYSTEM = _template(
    "You are an expert SQLite programmer. Given a database schema and a question, write one "
    "SQLite query that answers the question. Reply with the query only, in a ```sql block."
)
SQL_TASK = _template(
    "Database schema, with the first rows of each table:\n\n${schema}\n\n"
    "Question: ${question}\nWrite one SQLite query that answers the question."
)
SQL_PLAN = _template("\nPlan:\n${plan}")
SQL_FAILED = _template(
    "The query failed: ${error}\nWrite a corrected SQLite query that answers the question.")
SQL_EMPTY = _template(
    "The query returned no rows. Check the tables, the columns and the values against the "
    "schema and its sample rows, then write the query again, corrected if it was wrong.")
SQL_FENCE = "```sql\n"
_SQL_FENCED = re.compile(r"```[ \t]*(?:sql|sqlite)?[ \t]*\n?(?P<query>.*?)(?:```|$)",
                         re.IGNORECASE | re.DOTALL)
_SQL_START = re.compile(r"(?<![A-Za-z0-9_])(?:SELECT|WITH)\b", re.IGNORECASE)

# The placeholder in angle brackets is kept on purpose: with worked few-shot replies instead,
# the default model got 3 of the first 30 maths-test questions right against 8 with this
# prompt (it reasoned less); parse_direct_answer never takes the placeholder as an answer.
DIRECT_SYSTEM = _template(
    "You are a careful problem solver. Think step by step, then give the final answer on the "
    "last line as: Answer: <a short answer: a number, yes or no, a name or a few words>"
)
DIRECT_TASK = _template("${task}")
ANSWER_LINE = re.compile(
    r"(?:final answer|answer)\s*(?:is)?\s*[:：]?\s*(?P<answer>.+?)\s*$", re.IGNORECASE
)
BOXED = re.compile(r"\\boxed\{(?P<answer>[^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
_PLACEHOLDER_TEXT = "a number, yes or no"
FILLED_PLACEHOLDER = re.compile(r"<\s*a short answer\s*:\s*(?P<value>[^<>]*?[^<>\s])\s*(?:</\w*>|>)",
                                re.IGNORECASE)
PLACEHOLDER = re.compile(r"<[^<>]*>|\[[^\[\]]*answer[^\[\]]*\]", re.IGNORECASE)
CONCLUSION = re.compile(r"^(?:therefore|so|thus|hence)\b[,:]?\s*(?P<answer>.+)$", re.IGNORECASE)
_PLAN_ROLE = ("You are the planning module of a LUMOS agent. Break the task into subgoals that "
              "simple tools (a calculator, an equation solver) can carry out.")
_PLAN_REPLY = "Reply with exactly one line in the format of the examples."
SYSTEM = {
    "plan": _template(f"{_PLAN_ROLE} {_PLAN_REPLY}"),
    "ground": _template(
        "You are the grounding module of a LUMOS agent. Turn subgoals into actions from the "
        "available action list, written as R1 = Action(arguments); later actions use earlier "
        "results by their names R1, R2, ... Reply with exactly one line in the format of the "
        "examples."
    ),
}
# The OnePass planner writes the whole plan at once and copied the examples' closing steps
# (Leah's "money left" into a question that asked for a total); measured on maths-wide-val
# (no change, 26/70 either way) and chinook-val (36 -> 37 of 48), so it is said in OnePass only.
ONEPASS_PLAN_SYSTEM = _template(
    f"{_PLAN_ROLE} Write only the subgoals the task itself needs: the examples show the format, "
    f"not the steps. {_PLAN_REPLY}")


# ---- few-shot examples for instruct models ---------------------------------------------------
@dataclass(frozen=True)
class Example:
    """A worked task: subgoals, the actions grounding each, and each subgoal's result."""

    task: str
    subgoals: tuple[str, ...]
    actions: tuple[str, ...]  # one line of actions per subgoal
    results: tuple[str, ...]  # the fed-back result of each subgoal

    @property
    def tools(self) -> set[str]:
        return {call.tool for line in self.actions for call in parse_actions(line)}


# ---- rendering -------------------------------------------------------------------------------
def subgoal_text(k: int, text: str) -> str:
    """``Subgoal k: text``."""
    return SUBGOAL_HEAD.format(k=k) + text


def render_plan(subgoals: Sequence[str]) -> str:
    """A OnePass plan line: ``Subgoal 1: ...; Subgoal 2: ...``."""
    return ITEM_SEP.join(subgoal_text(k, s) for k, s in enumerate(subgoals, 1))


def render_decision(k: int, subgoal: str | None) -> str:
    """An iterative planner line: the first subgoal, a continue decision, or the stop decision."""
    if subgoal is None:
        return STOP_DECISION
    if k == 1:
        return subgoal_text(1, subgoal)
    return CONTINUE_DECISION + subgoal_text(k, subgoal)


def render_actions(calls: Sequence[str]) -> str:
    """One grounding line from action texts."""
    return ITEM_SEP.join(calls)


def plan_first(task: str) -> str:
    """The planner's first user turn (both formulations)."""
    return _fill(PLAN_FIRST, task=task.strip())


def ground_first(task: str, listing: str, subgoal: str) -> str:
    """The iterative grounder's first user turn; ``subgoal`` is ``Subgoal 1: ...``."""
    return _fill(GROUND_FIRST, task=task.strip(), listing=listing, subgoal=subgoal)


def ground_first_onepass(task: str, listing: str, subgoals: Sequence[str]) -> str:
    """The OnePass grounder's only user turn, all subgoals joined."""
    return _fill(
        GROUND_FIRST_ONEPASS, task=task.strip(), listing=listing, subgoals=render_plan(subgoals)
    )


def ground_next(subgoal: str, earlier_results: Sequence[str] = ()) -> str:
    """An iterative grounder turn after the first.

    ``earlier_results`` (complex QA only) appends LUMOS's sentence listing the results of the
    subgoals executed so far.
    """
    text = _fill(GROUND_NEXT, subgoal=subgoal)
    if earlier_results:
        items = " ".join(
            _fill(GROUNDING_CONTEXT_ITEM, k=str(k), result=r)
            for k, r in enumerate(earlier_results, 1)
        )
        text += _fill(GROUNDING_CONTEXT, results=items)
    return text


def feedback(k: int, result: str) -> str:
    """The planner's user turn after subgoal ``k`` was executed."""
    return _fill(PLAN_FEEDBACK, k=str(k), result=result)


def few_shot(
    module: Literal["plan", "ground"], mode: Literal["onepass", "iterative"], listing: str,
    tools: set[str], *, examples: Sequence[Example], grounding_context: bool = False,
) -> list[Turn]:
    """Worked conversations shown to instruct models before the real one.

    Only examples whose actions are all enabled are used, so an example never shows an action
    the model is not allowed to emit; when examples of the domain's own actions (QA, SQL,
    VQA) fit, only those are shown (a small model copies the maths examples' Calculator
    otherwise). ``grounding_context`` shows the complex-QA sentence of earlier results in
    the iterative grounding turns, as the real turns will have it. ``examples`` are the worked
    tasks to draw from (:data:`lumos_graph.agent.few_shot_examples.EXAMPLES`): passed in, so
    the data module may build on this one without an import circle.
    """
    system = ONEPASS_PLAN_SYSTEM if (module, mode) == ("plan", "onepass") else SYSTEM[module]
    turns: list[Turn] = [{"role": "system", "content": _fill(system)}]
    usable = [ex for ex in examples if ex.tools <= tools]
    domain = [ex for ex in usable if ex.tools - _MATHS_TOOLS]
    usable = domain or usable  # a QA/SQL/VQA task is shown only its own domain's examples
    for ex in usable:
        n = len(ex.subgoals)
        labelled = [subgoal_text(k, s) for k, s in enumerate(ex.subgoals, 1)]
        if module == "plan" and mode == "onepass":
            turns += [_user(plan_first(ex.task)), _assistant(render_plan(ex.subgoals))]
        elif module == "ground" and mode == "onepass":
            turns += [
                _user(ground_first_onepass(ex.task, listing, ex.subgoals)),
                _assistant(render_actions(ex.actions)),
            ]
        elif module == "plan":
            turns.append(_user(plan_first(ex.task)))
            for k in range(1, n + 1):
                turns.append(_assistant(render_decision(k, ex.subgoals[k - 1])))
                turns.append(_user(feedback(k, ex.results[k - 1])))
            turns.append(_assistant(STOP_DECISION))
        else:
            turns += [_user(ground_first(ex.task, listing, labelled[0])), _assistant(ex.actions[0])]
            for k in range(2, n + 1):
                earlier = ex.results[: k - 1] if grounding_context else ()
                turns += [
                    _user(ground_next(labelled[k - 1], earlier)),
                    _assistant(ex.actions[k - 1]),
                ]
    return turns


_MATHS_TOOLS = {"Calculator", "SetEquation", "SolveEquation", "Count", "SolveInequality", "Define"}


def qa_prompt(context: str | None, question: str) -> list[Turn]:
    """The QA action's conversation: a short answer from ``context``, or without one."""
    user = (
        _fill(QA_WITH_CONTEXT, context=context.strip(), question=question.strip())
        if context and context.strip()
        else _fill(QA_WITHOUT_CONTEXT, question=question.strip())
    )
    return [{"role": "system", "content": _fill(QA_SYSTEM)}, {"role": "user", "content": user}]


def final_answer_prompt(task: str, findings: Sequence[tuple[str, str]]) -> list[Turn]:
    """The answer step of QA tasks: the final answer from ``(question, result)`` findings."""
    items = "\n".join(_fill(FINDING, question=q, result=r) for q, r in findings)
    user = _fill(FINAL_ANSWER, task=task.strip(), findings=items)
    return [{"role": "system", "content": _fill(QA_SYSTEM)}, {"role": "user", "content": user}]


def module_system(module: Literal["plan", "ground"], mode: Literal["onepass", "iterative"]) -> Turn:
    """The system turn of a trained module of our own (see :data:`MODULE_SYSTEM`)."""
    return {"role": "system", "content": _fill(MODULE_SYSTEM[(module, mode)])}


def program_prompt(task: str, subgoals: Sequence[str], functions: Sequence[str] = ()) -> list[Turn]:
    """The program grounder's conversation: the task and the numbered plan, then the functions
    the program may call (``functions``: ``name(params): description`` of each user tool)."""
    plan = "\n".join(_fill(PROGRAM_ITEM, k=str(k), subgoal=s.strip())
                     for k, s in enumerate(subgoals, 1))
    user = _fill(PROGRAM_TASK, task=task.strip(), plan=plan)
    if functions:
        user += _fill(PROGRAM_FUNCTIONS, functions="\n".join(
            _fill(PROGRAM_FUNCTION, doc=doc) for doc in functions))
    return [{"role": "system", "content": _fill(PROGRAM_SYSTEM)},
            {"role": "user", "content": user}]


def sql_prompt(schema: str, question: str, subgoals: Sequence[str] = ()) -> list[Turn]:
    """The text-to-SQL conversation: a system turn, then the schema, the question and, for the
    SQL grounder, the numbered plan. The schema comes first so that questions on one database
    share the prompt's prefix."""
    user = _fill(SQL_TASK, schema=schema.strip(), question=question.strip())
    if subgoals:
        plan = "\n".join(_fill(PROGRAM_ITEM, k=str(k), subgoal=s.strip())
                         for k, s in enumerate(subgoals, 1))
        head, _, tail = user.rpartition("\n")
        user = f"{head}{_fill(SQL_PLAN, plan=plan)}\n{tail}"
    return [{"role": "system", "content": _fill(SQL_SYSTEM)},
            {"role": "user", "content": user}]


def sql_retry(error: str | None) -> Turn:
    """The user turn that gives a failed (``error``) or empty (``None``) query back once."""
    text = _fill(SQL_FAILED, error=error.strip()) if error else _fill(SQL_EMPTY)
    return {"role": "user", "content": text}


def parse_sql(text: str) -> str | None:
    """The query of a text-to-SQL reply: the first ```sql block, else the text from the first
    ``SELECT``/``WITH``; one statement, without its ``;``. ``None`` when there is no query."""
    fenced = _SQL_FENCED.search(text)
    body = fenced.group("query") if fenced and _SQL_START.search(fenced.group("query")) else text
    start = _SQL_START.search(body)
    if start is None:
        return None
    query = _first_statement(body[start.start():].split("```")[0]).strip()
    return query or None


def _first_statement(text: str) -> str:
    """``text`` up to its first ``;`` outside quotes (a reply may add a second query)."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"`":
            quote = ch
        elif ch == ";":
            return text[:i]
    return text


def program_import(names: Sequence[str]) -> str:
    """The import line a program that may call the user's functions ``names`` starts with
    (empty without any)."""
    return _fill(PROGRAM_IMPORT, names=", ".join(names)) if names else ""


def drop_import(code: str, names: Sequence[str]) -> str:
    """``code`` without its leading ``from tools import ...`` line (:func:`program_import`, or
    any such line a model without the grammar wrote): the functions are already defined where
    the program runs, and ``tools`` is no module there."""
    first, _, rest = code.lstrip().partition("\n")
    return rest.lstrip("\n") if names and _TOOLS_IMPORT.match(first.strip()) else code


def parse_program(text: str) -> str:
    """The Python code of a program grounder's reply: its first fenced block, else the whole
    reply; raises :class:`ParseError` when there is no code."""
    match = _CODE_BLOCK.search(text)
    code = (match.group("code") if match else text).strip()
    if not code:
        raise ParseError("no Python code in the reply", text)
    return code


def parse_call(text: str) -> ActionCall:
    """One rendered call (``ActionCall.render``), which may span lines (a program)."""
    match = _CALL_RE.match(text)
    if not match:
        raise ParseError("not an action of the form 'R1 = Action(arguments)'", text.strip())
    outs = tuple(o.strip() for o in match.group("outs").split(","))
    return ActionCall(outs, match.group("tool"), match.group("args").strip())


def direct_prompt(task: str) -> list[Turn]:
    """The ``direct`` baseline's conversation: chain of thought, then ``Answer: ...``."""
    return [{"role": "system", "content": _fill(DIRECT_SYSTEM)},
            {"role": "user", "content": _fill(DIRECT_TASK, task=task.strip())}]


def parse_direct_answer(text: str) -> str | None:
    """The final answer of a chain-of-thought reply, as maths evaluations read it.

    The last ``\\boxed{...}``, else the last ``Answer: ...`` (or ``the answer is ...``) line,
    else the last line starting with ``Therefore``/``So``/``Thus``, else ``yes``/``no`` when
    the reply starts with it; ``None`` without any. Template text (an answer in angle brackets,
    ``<a number>``) is never an answer; the template filled in (``<a short answer: 4>``) is.
    """
    boxed = list(BOXED.finditer(text))
    if boxed:
        return parse_short_answer(boxed[-1].group("answer"))
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for pattern in (ANSWER_LINE, CONCLUSION):
        for line in reversed(lines):
            match = pattern.search(line)
            if match:
                found = parse_short_answer(match.group("answer").strip().strip("*").strip())
                filled = FILLED_PLACEHOLDER.fullmatch(found or "")
                if filled and not filled.group("value").startswith(_PLACEHOLDER_TEXT):
                    return filled.group("value")  # "<a short answer: 4>": the model filled it in
                if found is not None and not PLACEHOLDER.fullmatch(found):
                    return found
    first = re.match(r"\W*(yes|no)\b", text.strip(), re.IGNORECASE)
    return first.group(1).lower() if first else None


def parse_short_answer(text: str) -> str | None:
    """A QA model's reply as a short answer; ``None`` when it says it has no answer."""
    line = _first_line(text)
    for prefix in ("Answer:", "answer:", "A:", "Final answer:"):
        line = line.removeprefix(prefix).strip()
    line = line.strip().strip('"').strip()
    if line.endswith(".") and line.count(".") == 1:  # a sentence's period, not "U.S."
        line = line[:-1].rstrip()
    if not line or NO_ANSWER in line.lower() or line.lower() in ("unknown", "none", "n/a"):
        return None
    return line


def _user(text: str) -> Turn:
    return {"role": "user", "content": text}


def _assistant(text: str) -> Turn:
    return {"role": "assistant", "content": text}


# ---- parsing ---------------------------------------------------------------------------------
_SUBGOAL_RE = re.compile(r"Subgoal\s*(\d{1,9})\s*:\s*")  # int() refuses 4,300+ digits
_CALL_RE = re.compile(
    r"^\s*(?P<outs>(?:R\d+|Output)(?:\s*,\s*(?:R\d+|Output))*)\s*=\s*"
    r"(?P<tool>[A-Za-z_][A-Za-z0-9_]*)\s*\((?P<args>.*)\)\s*$",
    re.DOTALL,
)


@dataclass(frozen=True)
class Subgoal:
    """A parsed subgoal: its number as the model wrote it and its text."""

    index: int
    text: str

    def labelled(self) -> str:
        return subgoal_text(self.index, self.text)


@dataclass(frozen=True)
class Decision:
    """An iterative planner output: stop, or the next subgoal."""

    stop: bool
    subgoal: Subgoal | None = None


@dataclass(frozen=True)
class ActionCall:
    """``R1, R2 = Tool(args)`` as the model wrote it."""

    outputs: tuple[str, ...]
    tool: str
    args: str  # the raw argument text between the outer parentheses

    def render(self) -> str:
        return f"{', '.join(self.outputs)} = {self.tool}({self.args})"


def parse_plan(text: str) -> list[Subgoal]:
    """Parse ``Subgoal 1: ...; Subgoal 2: ...``; raises :class:`ParseError` if none is found."""
    line = _first_line(text)
    marks = list(_SUBGOAL_RE.finditer(line))
    if not marks:
        raise ParseError("no 'Subgoal N:' in the plan", text)
    subgoals = []
    for mark, nxt in zip(marks, [*marks[1:], None], strict=True):
        body = line[mark.end() : nxt.start() if nxt else len(line)]
        body = body.strip().removesuffix(";").strip()
        if body:
            subgoals.append(Subgoal(int(mark.group(1)), body))
    if not subgoals:
        raise ParseError("the plan's subgoals are empty", text)
    return subgoals


def parse_decision(text: str) -> Decision:
    """Parse an iterative planner output.

    Accepts ``Subgoal 1: ...`` (first turn), ``No, I will keep planning. Subgoal k: ...`` and
    ``Yes, I will stop planning.``; a subgoal wins over a stray stop phrase only if present.
    """
    line = _first_line(text)
    if _SUBGOAL_RE.search(line) and not line.lstrip().lower().startswith("yes"):
        return Decision(stop=False, subgoal=parse_plan(line)[0])
    if line.strip().lower().startswith("yes") or "stop planning" in line.lower():
        return Decision(stop=True)
    raise ParseError("neither a subgoal nor a stop decision", text)


def parse_actions(text: str, *, cut_tail: bool = False) -> list[ActionCall]:
    """Parse one grounding line into action calls; raises :class:`ParseError`.

    With ``cut_tail`` (an output that ran out of tokens), an unparseable last item after at
    least one complete action is dropped instead of failing the line.
    """
    line = _first_line(text)
    # the same nesting rule as the grammar: only () and [] protect a ';'
    parts = [p for p in _split_top_level(line, ";", quotes=False) if p.strip()]
    if not parts:
        raise ParseError("no action", text)
    calls = []
    for i, part in enumerate(parts):
        match = _CALL_RE.match(part)
        if not match and cut_tail and calls and i == len(parts) - 1:
            break
        if not match:
            raise ParseError("not an action of the form 'R1 = Action(arguments)'", part.strip())
        outs = tuple(o.strip() for o in match.group("outs").split(","))
        calls.append(ActionCall(outs, match.group("tool"), match.group("args").strip()))
    return calls


def split_args(args: str, max_parts: int | None) -> list[str]:
    """Split argument text on top-level commas into at most ``max_parts`` pieces.

    The last piece keeps any further commas, so ``QA([R2], Question: Who, if anyone, ...)``
    splits into two arguments. ``max_parts == 1`` returns the whole text as one argument.
    """
    if max_parts == 1:
        return [args.strip()]
    pieces = _split_top_level(args, ",")
    if max_parts is not None and len(pieces) > max_parts:
        pieces = [*pieces[: max_parts - 1], ",".join(pieces[max_parts - 1 :])]
    return [p.strip() for p in pieces if p.strip()]


def references(text: str) -> list[str]:
    """Result variables (``R3``) referenced in ``text``, on token boundaries."""
    return [f"R{m.group(1)}" for m in VARIABLE_RE.finditer(text)]


def substitute(text: str, values: Mapping[str, str], *, expression: bool) -> str:
    """Replace result variables in ``text`` by their values, on token boundaries.

    ``R1`` never touches ``R10``. With ``expression=True`` a compound value is parenthesized
    (``2 * R1`` with ``R1 = 1/3`` becomes ``2 * (1/3)``); unknown variables are left as written.
    """

    def repl(match: re.Match[str]) -> str:
        name = f"R{match.group(1)}"
        if name not in values:
            return match.group(0)
        value = values[name]
        if expression and _is_compound(value):
            return f"({value})"
        return value

    return VARIABLE_RE.sub(repl, text)


def _is_compound(value: str) -> bool:
    """True for a value with a top-level operator (``1/3``, ``-2``, ``x + 1``)."""
    if any(c in value for c in "=<>"):
        return False  # an equation or a relation is substituted as written
    depth = 0
    for ch in value.strip():
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and ch in "+-*/^% ":
            return True
    return False


def _first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0] if stripped else ""


_THOUSANDS = re.compile(r"\d{3}(?!\d)")


def _thousands(text: str, i: int) -> bool:
    """A comma inside a number written with thousands separators (``1,000``)."""
    return text[i] == "," and i > 0 and text[i - 1].isdigit() and bool(
        _THOUSANDS.match(text, i + 1)
    )


def _split_top_level(text: str, sep: str, *, quotes: bool = True) -> list[str]:
    """Split on ``sep`` outside (), [] and, with ``quotes``, {} and quotes."""
    opening, closing = ("([{", ")]}") if quotes else ("([", ")]")
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif quotes and ch in "\"'" and (i == 0 or not text[i - 1].isalnum()):
            quote = ch
        elif ch in opening:
            depth += 1
        elif ch in closing:
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0 and not _thousands(text, i):
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts
