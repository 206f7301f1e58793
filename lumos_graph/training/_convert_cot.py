"""Reading a worked solution (GSM8K-style ``answer_cot``) into computation steps.

A step is one sentence that states a computation, ``She has 3 * 12 = 36 pencils.``: its
expression (``3 * 12``), the value it states (36) and a subgoal describing what it computes
(``Calculate the number of pencils she has.``). Units between the numbers (``90 onion / 10
onion/minute``), currency signs and thousands separators are dropped; ``x``/``×``/``÷`` become
``*``/``/``; ``half``/``twice`` become numbers. A number that equals an earlier step's result
becomes that step's variable (``R2``): first a result written the same way, then a number the
question states, then any result of that value. A number from nowhere (neither in the
question, nor an earlier result, nor a common constant such as 7 days or 60 minutes) fails the
solution: the model must not learn to pull numbers out of thin air.

This reads dataset text written by people, not model output, so it lives outside
:mod:`lumos_graph.agent.protocol`; the subgoal sentences it builds are training targets, and they
are assembled here from the solution's own words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["Computation", "CotError", "Step", "parse_cot", "question_numbers"]


class CotError(Exception):
    """A solution that cannot be turned into steps; ``reason`` is the count key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Computation:
    """One calculation; ``expression`` names the result of the ``k``-th calculation ``Rk``."""

    expression: str
    value: Fraction  # the result the solution states
    percent: bool  # ... written as a percentage


@dataclass(frozen=True)
class Step:
    """A sentence of the solution: the subgoal it serves and its calculations."""

    subgoal: str
    computations: tuple[Computation, ...]


# ---- tokens ---------------------------------------------------------------------------------
_CURRENCY = "$€£¥₹"
_TOKEN = re.compile(
    r"(?P<num>[$€£¥₹]?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+(?![\d.]))?\s?%?)"
    r"|(?P<unit>/[A-Za-z]+(?:[-/][A-Za-z]+)*)"  # a unit after a number: "$41/hour"
    r"|(?P<op>[-+*/×÷()])"
    r"|(?P<word>[A-Za-z][A-Za-z'’]*(?:[-/][A-Za-z]+)*)"
    r"|(?P<other>\S)"
)
_NUMBER_WORDS = {"half": Fraction(1, 2), "twice": Fraction(2), "double": Fraction(2),
                 "triple": Fraction(3), "thrice": Fraction(3), "quarter": Fraction(1, 4)}
_SPELLED = {w: Fraction(n) for n, w in enumerate((
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty"
))}
_SPELLED.update({"thirty": Fraction(30), "forty": Fraction(40), "fifty": Fraction(50),
                 "hundred": Fraction(100), "dozen": Fraction(12), "thousand": Fraction(1000)})
# numbers a worked solution may use without the question stating them (units, calendars)
CONSTANTS = frozenset(Fraction(n) for n in (
    *range(13), 15, 16, 20, 24, 26, 30, 31, 36, 48, 50, 52, 60, 100, 360, 365, 1000, 3600))


@dataclass(frozen=True)
class _Tok:
    kind: str  # num | op | word | other
    text: str
    value: Fraction | None = None
    percent: bool = False
    fraction: bool = False  # written as a/b without spaces
    currency: bool = False


def _number(text: str) -> tuple[Fraction, bool, bool, bool]:
    raw = text.strip()
    sign = -1 if raw.startswith("-") else 1
    raw = raw.lstrip("-")
    currency = raw[:1] in _CURRENCY
    raw = raw.lstrip(_CURRENCY).strip()
    percent = raw.endswith("%")
    raw = raw.rstrip("%").strip().replace(",", "")
    fraction = "/" in raw
    if fraction:
        top, bottom = raw.split("/")
        value = Fraction(Fraction(top), Fraction(bottom)) if Fraction(bottom) else Fraction(0)
    else:
        value = Fraction(raw)
    return sign * (value / 100 if percent else value), percent, fraction, currency


def _tokens(text: str) -> list[_Tok]:
    out = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "other"
        tok = m.group(0)
        if kind == "num":
            value, percent, fraction, currency = _number(tok)
            out.append(_Tok("num", tok.strip(), value, percent, fraction, currency))
        elif kind == "unit":
            out.append(_Tok("word", tok))
        elif kind == "word" and tok.lower() in ("x",):
            out.append(_Tok("op", "*"))
        elif kind == "op":
            out.append(_Tok("op", {"×": "*", "÷": "÷"}.get(tok, tok)))
        else:
            out.append(_Tok(kind, tok))
    return out


# ---- expressions ----------------------------------------------------------------------------
@dataclass
class _Expr:
    text: str  # rendered, with R-variables
    value: Fraction
    stray: list[Fraction]  # numbers used as written that nothing sources
    currency: bool


def _operand(tok: _Tok) -> bool:
    return tok.kind == "num" or (tok.kind == "word" and tok.text.lower() in _NUMBER_WORDS)


def _candidate(tokens: Sequence[_Tok]) -> list[_Tok] | None:
    """The expression tokens of ``tokens`` (units dropped), or ``None`` when they are not one
    expression: operand (unit words)? (operator operand (unit words)?)*, parentheses allowed."""
    kept: list[_Tok] = []
    expect_operand = True
    depth = 0
    for tok in tokens:
        if expect_operand:
            if tok.kind == "op" and tok.text == "(":
                depth += 1
                kept.append(tok)
            elif _operand(tok):
                kept.append(tok)
                expect_operand = False
            else:
                return None
        elif tok.kind == "op" and tok.text == ")":
            if depth == 0:
                return None
            depth -= 1
            kept.append(tok)
        elif tok.kind == "op" and tok.text != "(":
            kept.append(tok)
            expect_operand = True
        elif tok.kind == "word" and tok.text.lower() not in _NUMBER_WORDS:
            continue  # a unit after a number ("45 signatures", "10 onion/minute")
        else:
            return None
    if expect_operand or depth:
        return None
    return kept


class _Renderer:
    """Expression tokens as Calculator text and as a value.

    An operand equal to an earlier result becomes its variable (each variable once, then a
    number the question states, then a variable again); ``a/b`` after ``÷`` is one operand.
    """

    def __init__(self, earlier: Sequence[tuple[Fraction, str]], sourced: set[Fraction]) -> None:
        self.earlier = earlier
        self.sourced = sourced
        self.used: set[int] = set()
        self.parts: list[str] = []
        self.items: list[Fraction | str] = []  # operands and operators, for evaluation
        self.stray: list[Fraction] = []

    def reference(self, value: Fraction, written: str, *, strict: bool) -> int | None:
        """The earlier result this operand refers to: one written the same way first, then
        (unless ``strict``) any of the same value, each once before any is used twice."""
        matches = [k for k in range(len(self.earlier) - 1, -1, -1)
                   if _close(self.earlier[k][0], value)]
        fresh = [k for k in matches if k not in self.used]
        same = [k for k in fresh if self.earlier[k][1] == written]
        found = same if strict else same or fresh or matches
        return found[0] if found else None

    def operand(self, value: Fraction, text: str, as_written: Fraction, written: str) -> None:
        sourced = _is_sourced(as_written, self.sourced)
        k = self.reference(value, written, strict=sourced)
        if k is not None:
            self.used.add(k)
            self.parts.append(f"R{k + 1}")
        else:
            if not sourced:
                self.stray.append(as_written)
            self.parts.append(text)
        self.items.append(value)

    def operator(self, op: str) -> None:
        self.parts.append(op)
        self.items.append(op)

    def render(self, tokens: Sequence[_Tok]) -> _Expr | None:
        previous = ""
        for tok in tokens:
            if tok.kind == "op":
                self.operator("/" if tok.text == "÷" else tok.text)
            elif tok.kind == "word":
                value = _NUMBER_WORDS[tok.text.lower()]
                self.operand(value, _fraction_text(value), value, tok.text.lower())
            elif tok.fraction:
                assert tok.value is not None
                top, _, bottom = _bare(tok.text).partition("/")
                k = self.reference(tok.value, _written(tok.text), strict=True)
                if k is not None:  # "2 * 1/3" after "14/42 = 1/3"
                    self.used.add(k)
                    self.parts.append(f"R{k + 1}")
                    self.items.append(tok.value)
                elif previous == "÷":  # 13÷2/3 means 13 / (2/3)
                    self.stray += [Fraction(p) for p in (top, bottom)
                                   if not _is_sourced(Fraction(p), self.sourced)]
                    self.parts.append(f"({top}/{bottom})")
                    self.items.append(tok.value)
                else:
                    self.operand(Fraction(top), top, Fraction(top), top)
                    self.operator("/")
                    self.operand(Fraction(bottom), bottom, Fraction(bottom), bottom)
            else:
                assert tok.value is not None
                self.operand(tok.value, _literal(tok),
                             tok.value * 100 if tok.percent else tok.value, _written(tok.text))
            previous = tok.text if tok.kind == "op" else ""
        if not any(isinstance(i, str) and i not in "()" for i in self.items):
            return None
        try:
            value = _Evaluator(self.items).run()
        except (ZeroDivisionError, ValueError):
            return None
        text = " ".join(self.parts).replace("( ", "(").replace(" )", ")")
        return _Expr(text, value, self.stray, any(t.currency for t in tokens))


class _Evaluator:
    """+ - * / and parentheses over Fractions (recursive descent)."""

    def __init__(self, items: Sequence[Fraction | str]) -> None:
        self.items = list(items)
        self.i = 0

    def run(self) -> Fraction:
        value = self._sum()
        if self.i != len(self.items):
            raise ValueError("trailing tokens")
        return value

    def _peek(self) -> Fraction | str | None:
        return self.items[self.i] if self.i < len(self.items) else None

    def _sum(self) -> Fraction:
        value = self._product()
        while self._peek() in ("+", "-"):
            op = self.items[self.i]
            self.i += 1
            value = value + self._product() if op == "+" else value - self._product()
        return value

    def _product(self) -> Fraction:
        value = self._atom()
        while self._peek() in ("*", "/"):
            op = self.items[self.i]
            self.i += 1
            value = value * self._atom() if op == "*" else value / self._atom()
        return value

    def _atom(self) -> Fraction:
        item = self._peek()
        self.i += 1
        if item == "(":
            value = self._sum()
            if self._peek() != ")":
                raise ValueError("unbalanced")
            self.i += 1
            return value
        if isinstance(item, Fraction):
            return item
        raise ValueError(f"unexpected {item!r}")


def _written(text: str) -> str:
    """A number as written, without currency, separators and spaces (``50.0%``)."""
    return text.lstrip(_CURRENCY).strip().replace(",", "").replace(" ", "")


def _bare(text: str) -> str:
    return text.lstrip(_CURRENCY).strip().replace(",", "").replace(" ", "").rstrip("%")


def _fraction_text(value: Fraction) -> str:
    return str(value) if value.denominator == 1 else f"({value.numerator}/{value.denominator})"


def _literal(tok: _Tok) -> str:
    number = _bare(tok.text)
    if "." in number and len(number.split(".")[1]) >= 6:
        # a float written out (0.3333333333333333): the fraction it stands for
        simple = Fraction(number).limit_denominator(100)
        if abs(simple - Fraction(number)) < Fraction(1, 10**9):
            number = _fraction_text(simple)
    return number + ("%" if tok.percent else "")


def _close(a: Fraction, b: Fraction) -> bool:
    return abs(a - b) <= Fraction(1, 10**6) * max(Fraction(1), abs(b))


# ---- sentences -------------------------------------------------------------------------------
_SENTENCE_END = re.compile(
    r"(?<=[.!?])(?<!\bDr\.)(?<!\bMr\.)(?<!\bMrs\.)(?<!\bMs\.)(?<!\bSt\.)\s+(?=[A-Z])")
_BULLET = re.compile(r"^\s*(?:\d+\.\s+|[-•*]\s+)")
_RESULT = re.compile(
    r"\s*(?P<num>-?[$€£¥₹]?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?\s?%?)"
    r"(?!\s*[-+*/×÷x]\s*[\d$€£(A-Za-z])"
)


@dataclass(frozen=True)
class _Equation:
    expr: _Expr
    start: int  # where the expression starts in the sentence
    end: int  # where the stated result ends
    value: Fraction
    percent: bool
    written: str  # the result as the solution writes it
    money: bool  # ... with a currency sign


def _equations(sentence: str, earlier: Sequence[tuple[Fraction, str]],
               sourced: set[Fraction]) -> list[_Equation]:
    """The computations a sentence states, left to right (``a op b = c``).

    A computation whose result the question itself states (``34 * 0.5 = 17`` when the
    question says 17 were dropped) but that uses a number from nowhere is left out: its
    result is then read as the question's number.
    """
    found: list[_Equation] = []
    for eq in (m.start() for m in re.finditer("=", sentence)):
        match = _RESULT.match(sentence, eq + 1)
        if not match:
            continue
        stated, percent, _, _ = _number(match.group("num"))
        left = sentence[:eq]
        starts = [m.start() for m in _TOKEN.finditer(left)]
        toks = _tokens(left)
        best: _Equation | None = None
        for i, start in enumerate(starts):
            if not (_operand(toks[i]) or toks[i].text == "("):
                continue
            kept = _candidate(toks[i:])
            if kept is None:
                continue
            renderer = _Renderer([*earlier, *((e.value, e.written) for e in found)], sourced)
            expr = renderer.render(kept)
            if expr is None:
                continue
            expr = _whole(expr, stated)
            candidate = _Equation(expr, start, match.end(), stated, percent,
                                  _written(match.group("num")),
                                  any(c in _CURRENCY for c in match.group("num")))
            if _close(expr.value, stated):
                best = candidate
                break  # the longest expression that gives the stated result
            best = best or candidate
        if best is None:
            continue
        if best.expr.stray and _is_sourced(stated, sourced) and _close(best.expr.value, stated):
            continue
        found.append(best)
    return found


def _whole(expr: _Expr, stated: Fraction) -> _Expr:
    """``floor(...)`` when the solution states the whole part (``0.63 * 60 = 37`` students)."""
    if stated.denominator == 1 and expr.value.denominator != 1 and _floor(expr.value) == stated:
        return _Expr(f"floor({expr.text})", stated, expr.stray, expr.currency)
    return expr


def _floor(value: Fraction) -> int:
    return value.numerator // value.denominator


def parse_cot(cot: str, question: str) -> list[Step]:
    """The steps of a worked solution; raises :class:`CotError` with a reason.

    Reasons: ``no steps`` (nothing computed), ``unparseable step`` (a sentence with ``=``
    whose computation is not read), ``step result mismatch`` (an expression that does not
    give the value the solution states), ``number from nowhere`` (a number neither in the
    question nor an earlier result nor a common constant).
    """
    from lumos_graph.training._convert_subgoal import describe

    lines = [ln for ln in cot.splitlines() if ln.strip() and not ln.strip().startswith("####")]
    sourced = question_numbers(question)
    steps: list[Step] = []
    values: list[tuple[Fraction, str]] = []
    for line in lines:
        for sentence in _SENTENCE_END.split(_BULLET.sub("", line).strip()):
            equations = _equations(sentence, values, sourced)
            if not equations:
                if _states_computation(sentence, sourced):
                    raise CotError("unparseable step", sentence)
                continue
            for eq in equations:
                if not _close(eq.expr.value, eq.value):
                    raise CotError("step result mismatch",
                                   f"{eq.expr.text} is {eq.expr.value}, not {eq.value}")
                if eq.expr.stray:
                    raise CotError("number from nowhere",
                                   f"{eq.expr.stray[0]} in {sentence!r}")
            last = equations[-1]
            subgoal = describe(sentence, last.start, last.end,
                               currency=last.expr.currency or last.money,
                               percent=last.percent)
            steps.append(Step(subgoal, tuple(
                Computation(eq.expr.text, eq.value, eq.percent) for eq in equations)))
            values += [(eq.value, eq.written) for eq in equations]
    if not steps:
        raise CotError("no steps", cot.strip().splitlines()[0] if cot.strip() else "(empty)")
    return steps


def _states_computation(sentence: str, sourced: set[Fraction]) -> bool:
    """A sentence with ``... = c`` after two numbers (a computation we failed to read), unless
    ``c`` is a number the question states."""
    for eq in (m.start() for m in re.finditer("=", sentence)):
        match = _RESULT.match(sentence, eq + 1)
        numbers = [t for t in _tokens(sentence[:eq]) if t.kind == "num"]
        if match and len(numbers) >= 2 and not _is_sourced(
                _number(match.group("num"))[0], sourced):
            return True
    return False


def _is_sourced(value: Fraction, sourced: set[Fraction]) -> bool:
    return value in CONSTANTS or any(_close(value, s) for s in sourced)


def question_numbers(question: str) -> set[Fraction]:
    """Numbers the question states: numerals (a percentage also as its fraction), spelled
    numbers and words such as ``half``."""
    found: set[Fraction] = set()
    for tok in _tokens(question):
        if tok.kind == "num" and tok.value is not None:
            found.add(tok.value)
            if tok.percent:  # 10% is also 0.1, and a 10% discount leaves 0.9
                found |= {tok.value * 100, 1 - tok.value}
            if tok.fraction:
                top, _, bottom = tok.text.lstrip(_CURRENCY).rstrip("%").partition("/")
                found |= {Fraction(top.replace(",", "")), Fraction(bottom)}
        elif tok.kind == "word":
            for part in re.split(r"[-/]", tok.text.lower()):
                if part in _SPELLED:
                    found.add(_SPELLED[part])
                if part in _NUMBER_WORDS:
                    found.add(_NUMBER_WORDS[part])
    return found
