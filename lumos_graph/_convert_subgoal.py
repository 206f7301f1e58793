"""A subgoal sentence from a solution sentence and the computation it states.

``She has 3 * 12 = 36 pencils.`` becomes ``Calculate the number of pencils she has.``: the
words before the computation are the clause, the words after its result the unit and the rest.
``Find how long ...: 90 / 10 = 9`` keeps its instruction; ``X because a * b = c`` describes
``X``; a clause that ends in ``so``/``which is`` is kept as ``given that ...``.
"""

from __future__ import annotations

import re

__all__ = ["describe"]

_INSTRUCTION = re.compile(
    r"^(?:(?:first|then|next|now|finally|so|and|also|second|third|lastly),?\s+)*"
    r"(?P<verb>find|calculate|compute|determine|multiply|add|subtract|divide|figure out|"
    r"work out)\b(?P<rest>.*)$", re.IGNORECASE)
_LEADING = re.compile(
    r"^(?:(?:so|thus|therefore|hence|then|and|but|also|now|first|next|finally|that means|this "
    r"means|which means|in total|altogether|overall|all total|so far|together|since|if)\b,?\s*)+",
    re.IGNORECASE)
_BOUNDARY = re.compile(
    r"(?:,\s*so|\bso that's|\bso that is|\bthat's|\bthat is|\bwhich is|\bwhich means|\bso|"
    r"\bfor a total of|\bmeaning|\bgiving|\bhence|\bthus|\btherefore|,\s*or|\bor)\s*$",
    re.IGNORECASE)
_TRAILING = re.compile(
    r"(?:\s*(?:\ba total of|\btotal of|\bof|\bis|\bare|\bwas|\bwere|\bby|\bthat|\bbecause|=|:|,"
    r"|-|\bthe|\ba|\ban|\bat|\bto|\bwith))+\s*$", re.IGNORECASE)
_STOP = frozenset(
    "in on at for to from of per each every with by because and or but so after before "
    "during than as which that who if when while left".split())
_LOWER = frozenset(
    "she he they there it the this that these those we i you her his their its a an in on "
    "at after before each all together our my your one some".split())
_VERB_START = frozenset(
    "will would can could should must may might are is were was have has had do does did "
    "came come went go get got remain remained need needs needed".split())
_MONEY = frozenset(
    "dollars dollar euros euro pounds pound cents cent yen rupees usd".split())
_TOTAL = re.compile(r"\b(?:in total|total|altogether|all together|combined)\b", re.IGNORECASE)


def describe(sentence: str, start: int, end: int, *, currency: bool, percent: bool) -> str:
    """The subgoal of ``sentence``, whose computation spans ``sentence[start:end]``."""
    before = sentence[:start].strip()
    after = sentence[end:].strip().rstrip(".!").strip()
    because = re.search(r"\bbecause\s*$", before, re.IGNORECASE)
    if because and before[: because.start()].strip():
        return _from_claim(before[: because.start()].strip(), currency=currency,
                           percent=percent)
    colon = before.rfind(":")
    if colon > 0:
        head = before[:colon].strip()
        match = _INSTRUCTION.match(head)
        if match:
            return _sentence(f"Calculate{match.group('rest')}" if match.group("verb").lower()
                             in ("find", "figure out", "work out", "compute", "determine")
                             else head[match.start("verb"):])
        before = head if not before[colon + 1:].strip() else before[colon + 1:].strip()
    unit, rest = _unit(after)
    total = bool(_TOTAL.search(before))
    noun = _noun(unit, currency=currency, percent=percent, total=total)
    context = ""
    boundary = _BOUNDARY.search(before)
    clause = before
    if boundary:
        context, clause = before[: boundary.start()].strip(" ,"), ""
    clause = _TRAILING.sub("", _LEADING.sub("", clause)).strip(" ,")
    context = _LEADING.sub("", context).strip(" ,")
    if noun is None:  # no unit: "Calculate what Linda will be in 6 years."
        body = " ".join(p for p in (_lower(clause), rest) if p)
        if body:
            return _sentence(f"Calculate what {body}")
        return _sentence(f"Calculate the result, given that {context}" if context
                         else "Calculate the result")
    if rest and rest.split()[0].lower() in _VERB_START and not clause:
        rest = f"that {rest}"
    body = " ".join(p for p in (noun, _lower(clause), rest) if p)
    if context and not clause:
        return _sentence(f"Calculate {body}, given that {_lower(context)}")
    return _sentence(f"Calculate {body}")


def _from_claim(claim: str, *, currency: bool, percent: bool) -> str:
    """``Michael spent €1365.0`` (the claim a ``because`` computation proves)."""
    match = re.search(r"[$€£¥₹]?\s?\d[\d,]*(?:\.\d+)?\s?%?", claim)
    if not match:
        return _sentence(f"Calculate whether {_lower(_LEADING.sub('', claim))}")
    money = currency or match.group(0).strip()[:1] in "$€£¥₹"
    before = _TRAILING.sub("", _LEADING.sub("", claim[: match.start()])).strip(" ,")
    unit, rest = _unit(claim[match.end():].strip().rstrip("."))
    noun = _noun(unit, currency=money, percent=percent or "%" in match.group(0), total=False)
    body = " ".join(p for p in (noun or "what", _lower(before), rest) if p)
    return _sentence(f"Calculate {body}")


def _unit(after: str) -> tuple[str, str]:
    """The unit words right after the result and the rest of the sentence."""
    words = after.split()
    unit: list[str] = []
    for word in words:
        bare = word.strip(",.;:!?()").lower()
        if not bare or bare in _STOP or not re.fullmatch(r"[a-z][a-z'’/-]*", bare) or len(
                unit) == 3:
            break
        unit.append(word.strip(",.;:!?()"))
        if word[-1:] in ",.;:!?":
            break
    rest = " ".join(words[len(unit):]).strip(" ,.")
    return " ".join(unit), rest


def _noun(unit: str, *, currency: bool, percent: bool, total: bool) -> str | None:
    if percent:
        return "the percentage"
    if currency or unit.lower() in _MONEY:
        return "the total amount" if total else "the amount"
    if not unit:
        return None
    if unit.lower().startswith(("more ", "fewer ", "less ")):
        head, _, tail = unit.partition(" ")
        return f"how many {tail} {head.lower()}" if tail else None
    return f"the {'total ' if total else ''}number of {unit}"


def _lower(text: str) -> str:
    first, _, rest = text.partition(" ")
    if first.lower() in _LOWER:
        first = first.lower()
    return f"{first} {rest}".strip()


def _sentence(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip(" ,;:")
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "?")) else f"{text}."
