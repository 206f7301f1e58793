"""A subgoal sentence from a solution sentence and the computation it states.

``She has 3 * 12 = 36 pencils.`` becomes ``Calculate the number of pencils she has.``: the
words before the computation give the clause, the words after its result the unit and the
rest. Other shapes:

* ``First find how long ...: 90 / 10 = 9`` keeps its instruction (``Calculate how long ...``);
* ``X because a * b = c`` describes ``X``;
* ``The brokerage fee is a * b = c`` names what it computes (``Calculate the brokerage fee.``);
* ``If X, Y a + b = c`` and ``X, so a + b = c`` keep ``X`` as ``given that X``;
* ``Yesterday, Emma had a * b = c plants`` moves the leading phrase to the end.

These are heuristics over the sentences of ``gsm_symbolic``'s solutions: the result reads
like a plan, not always like polished prose.
"""

from __future__ import annotations

import re

__all__ = ["describe"]

_INSTRUCTION = re.compile(
    r"^(?:(?:first|then|next|now|finally|so|and|also|second|third|lastly|\d+\.),?\s+)*"
    r"(?P<verb>find|calculate|compute|determine|multiply|add|subtract|divide|figure out|"
    r"work out)\b(?P<rest>.*)$", re.IGNORECASE)
_LEADING = re.compile(
    r"^(?:(?:so far|so|thus|therefore|hence|then|and|but|also|now|first|next|finally|that "
    r"means|this means|which means|in total|altogether|overall|all total|total|together|"
    r"we also know that|we know that)\b,?\s*)+", re.IGNORECASE)
_FILLER = re.compile(
    r"(?:\s*(?:\bfor a total of|\ba total of|\btotal of|=|:|,|\bbecause))+\s*$",
    re.IGNORECASE)
_BOUNDARY = re.compile(
    r"(?:,\s*so|\bso that's|\bso that is|\bso that leaves|\bso|\bwhich means|\bwhich is|,\s*it "
    r"means|\bit means|\bmeaning|\bhence|\bthus|\btherefore|,\s*or|,\s*then|\bthen)\s*$",
    re.IGNORECASE)
_CONDITION = re.compile(r"^(?:if|since|as|when|while|because|given that)\s+(?P<cond>[^,]+?)"
                        r"(?:,\s*(?:then\s+)?|\s+then\s+)(?P<main>.*)$", re.IGNORECASE)
_CONDITION_WORD = re.compile(r"^(?:if|since|as|when|while|because|given that)\s+",
                             re.IGNORECASE)
_CONSEQUENCE = re.compile(r"^(?:so|then|thus|hence|therefore|it means|which means)\b",
                          re.IGNORECASE)
_PREPOSITION = frozenset((
    "in", "on", "at", "after", "before", "with", "for", "from", "while", "during", "out", "to",
    "yesterday", "tomorrow", "today", "combining", "by", "of"
))
_QUANTITY = re.compile(
    r"\b(?:total|number|amount|cost|price|fee|fees|charge|sum|average|difference|ratio|"
    r"chances?|length|time|rate|percentage|proceeds|bill|revenue|value|ages?|profit|"
    r"discount|savings)\b", re.IGNORECASE)
_COPULA = re.compile(r"\s+(?:is|are|was|were|will be|would be|comprises)$", re.IGNORECASE)
_NOUN_PHRASE = re.compile(r"^(?:the|a|an|his|her|their|its|our|total)\b", re.IGNORECASE)
_STOP = frozenset((
    "in", "on", "at", "for", "to", "from", "per", "each", "every", "with", "by", "because",
    "and", "or", "but", "so", "after", "before", "a", "an", "the", "during", "than", "as",
    "which", "that", "who", "if", "when", "while", "of"
))
_OPEN_END = frozenset((
    "be", "cost", "costs", "spent", "spend", "spends", "paid", "pay", "pays", "earned", "earn",
    "earns", "made", "make", "makes", "has", "have", "had", "get", "gets", "got", "need",
    "needs", "needed", "is", "are", "was", "were", "will", "would", "can", "could"
))
_VERBS = frozenset((
    "will", "would", "can", "could", "should", "must", "may", "might", "are", "is", "were",
    "was", "have", "has", "had", "do", "does", "did", "came", "come", "went", "go", "get",
    "got", "remain", "remained", "need", "needs", "needed", "pop", "left"
))
_LOWER = frozenset((
    "she", "he", "they", "there", "it", "the", "this", "that", "these", "those", "we", "you",
    "her", "his", "their", "its", "a", "an", "in", "on", "at", "after", "before", "each", "all",
    "together", "our", "my", "your", "one", "some", "with", "yesterday", "tomorrow", "today"
))
_STARTERS = frozenset((
    "right", "writing", "total", "there", "so", "if", "since", "when", "while"
))
_MONEY = frozenset((
    "dollars", "dollar", "euros", "euro", "pounds", "pound", "cents", "cent", "yen", "rupees"
))
_TOTAL = re.compile(r"\b(?:in total|a total|total of|altogether|combined)\b", re.IGNORECASE)


def describe(sentence: str, start: int, end: int, *, currency: bool, percent: bool) -> str:
    """The subgoal of ``sentence``, whose computation spans ``sentence[start:end]``."""
    before = sentence[:start].strip()
    after = sentence[end:].strip().rstrip(".!").strip()
    because = re.search(r"\bbecause\s*$", before, re.IGNORECASE)
    if because and before[: because.start()].strip():
        return _from_claim(before[: because.start()].strip(), currency=currency,
                           percent=percent)
    colon = before.rfind(":")
    if colon > 0 and not before[colon + 1:].strip():
        head = before[:colon].strip()
        match = _INSTRUCTION.match(head)
        if match:
            verb = match.group("verb").lower()
            if verb in ("find", "figure out", "work out", "compute", "determine", "calculate"):
                return _sentence(f"Calculate{match.group('rest')}")
            return _sentence(head[match.start("verb"):])
        return _sentence(f"Calculate {_the(head)}")  # "Total pear:", "Combined total:"
    if colon > 0:
        before = before[colon + 1:].strip()
    if before.endswith("="):  # "Susan = 0.5 * 470 + 27 = 262 points"
        unit, _ = _unit(after)
        return _sentence(f"Calculate the {unit or 'value'} of {before.rstrip('= ').strip()}")
    return _sentence("Calculate " + _body(before, after, currency=currency, percent=percent))


def _body(before: str, after: str, *, currency: bool, percent: bool) -> str:
    unit, rest = _unit(after)
    comparative = ""
    if unit.lower() in ("more", "less", "fewer"):
        comparative, unit = unit.lower(), ""
    elif not unit and rest.split()[:1] and rest.split()[0].lower() in ("more", "less", "fewer"):
        comparative, _, rest = rest.partition(" ")
    total = bool(_TOTAL.search(before))
    before = _FILLER.sub("", before).strip()
    context = adverbial = ""
    boundary = _BOUNDARY.search(before)
    condition = _CONDITION.match(before)
    if boundary:
        context, clause = before[: boundary.start()].strip(" ,"), ""
    elif condition:
        context, clause = condition.group("cond"), condition.group("main")
    else:
        clause = before
        head, comma, tail = clause.rpartition(",")
        if comma and _CONSEQUENCE.match(tail.strip()):
            context, clause = head, tail
        elif comma and head.split()[0].strip(",").lower() in _PREPOSITION:
            adverbial, clause = head, tail
        elif clause.split()[:1] and clause.split()[0].lower() in _PREPOSITION and not any(
                w.lower() in _VERBS for w in clause.split()):
            adverbial, clause = clause, ""
    clause = re.sub(r"\btherefore\s+", "", _LEADING.sub("", clause.strip())).strip(" ,")
    context = _CONDITION_WORD.sub("", _LEADING.sub("", context)).strip(" ,")
    adverbial = _LEADING.sub("", adverbial).strip(" ,")
    last = clause.split()[-1].lower() if clause else ""
    if re.search(r"\d", clause) and not context and last not in _OPEN_END | _STOP:
        # a statement of facts, not the subject of the result
        context, clause = clause, ""
    noun = _noun(unit, comparative, currency=currency, percent=percent, total=total)
    if noun is not None and (currency or percent) and unit:
        rest = f"{unit} {rest}".strip()  # "€60 remaining": the unit is no noun
    if _NOUN_PHRASE.match(clause) and _COPULA.search(clause) and not unit.endswith("old") and (
            noun is None or _QUANTITY.search(clause)):
        main = _lower(_COPULA.sub("", clause))  # "The brokerage fee is" names the result
    elif noun is None:
        main = f"what {_lower(clause)}" if clause else "the result"
    else:
        main = " ".join(p for p in (noun, _lower(clause)) if p)
        if not clause and rest.split()[:1] and rest.split()[0].lower() in _VERBS and (
                not noun.startswith("how")):
            rest = f"that {rest}"
    main = " ".join(p for p in (main, rest) if p)
    if adverbial:
        main += f"{',' if clause else ''} {_lower(adverbial)}"
    if context:
        main += f", given that {_lower(context)}"
    return main


def _from_claim(claim: str, *, currency: bool, percent: bool) -> str:
    """``Michael spent €1365.0`` (the claim a ``because`` computation proves)."""
    match = re.search(r"[$€£¥₹]?\s?\d[\d,]*(?:\.\d+)?\s?%?", claim)
    if not match:
        return _sentence(f"Calculate whether {_lower(_LEADING.sub('', claim))}")
    money = currency or match.group(0).strip()[:1] in "$€£¥₹"
    return _sentence("Calculate " + _body(claim[: match.start()], claim[match.end():],
                                          currency=money,
                                          percent=percent or "%" in match.group(0)))


def _unit(after: str) -> tuple[str, str]:
    """The unit words right after the result (``pieces of popcorn``) and the rest."""
    words = after.split()
    unit: list[str] = []
    for i, word in enumerate(words):
        bare = word.strip(",.;:!?()").lower()
        if bare in ("of", "and") and unit and i + 1 < len(words) and (
                words[i + 1].lower() not in _STOP) and words[i + 1][:1].isalpha():
            unit.append(bare)
            continue
        if not bare or bare in _STOP or bare in _VERBS or len(unit) == 4 or not re.fullmatch(
                r"[a-z][a-z'’/-]*", bare):
            break
        unit.append(word.strip(",.;:!?()"))
        if word[-1:] in ",.;:!?":
            break
    rest = " ".join(words[len(unit):]).strip(" ,.")
    return " ".join(unit), rest


def _noun(unit: str, comparative: str, *, currency: bool, percent: bool,
          total: bool) -> str | None:
    if percent:
        return "the percentage"
    if comparative:
        return f"how much {comparative}"
    if currency or unit.lower() in _MONEY:
        return "the total amount" if total else "the amount"
    if not unit:
        return None
    head, _, tail = unit.partition(" ")
    if head.lower() in ("more", "fewer", "less") and tail:
        return f"how many {head.lower()} {tail}"
    if unit.lower().endswith("old"):
        return "how old"
    return f"the {'total ' if total else ''}number of {unit}"


def _the(head: str) -> str:
    """A heading as a noun phrase: ``Total pear`` -> ``the total pear``."""
    text = head[:1].lower() + head[1:]
    return text if _NOUN_PHRASE.match(text) and not text.startswith("total") else f"the {text}"


def _lower(text: str) -> str:
    """Lower-case a sentence's first word unless it is a name (``Emma``) or ``I``."""
    first, _, rest = text.partition(" ")
    if first.rstrip(",").lower() in _LOWER | _PREPOSITION | _STARTERS:
        first = first.lower()
    return f"{first} {rest}".strip()


def _sentence(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip(" ,;:")
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "?")) else f"{text}."

