"""Text handling of the knowledge base: query words, FTS5 match expressions, passage splitting.

Queries come from small models and may hold anything (quotes, ``AND``, ``NEAR(``, ``-``, ``*``,
half a JSON object), so :func:`match_expression` never passes query syntax through: it keeps
the words, quotes each one as an FTS5 string and ORs them, which BM25 then ranks.
"""

from __future__ import annotations

import re

__all__ = [
    "MAX_WORDS",
    "MIN_WORDS",
    "context_units",
    "match_expression",
    "normalize_space",
    "query_words",
    "sentences",
    "split_passages",
    "word_count",
]

MIN_WORDS = 150
MAX_WORDS = 250
_MAX_QUERY_WORDS = 32

# Letters and digits; FTS5's unicode61 tokenizer also splits at "_" and punctuation.
_WORD = re.compile(r"[^\W_]+")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)[ \t#]*$")
# A sentence ends at . ! or ? (maybe followed by a closing quote or bracket) before a space
# and a capital, digit or opening quote. Abbreviations split too; windows rejoin them.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[\"'(\[]?[A-Z0-9])")
# "Title: text" as Passage.render() writes it (a short first line part without sentence marks)
_RENDERED_TITLE = re.compile(r"\A([^\n:.!?]{1,100}):[ \t]+(?=\S)")

# Words that match nearly every passage and only slow an OR query down.
_STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be been before being below
    between both but by can could did do does doing down during each few for from further had
    has have having he her here hers him his how i if in into is it its itself just me more most
    my no nor not now of off on once only or other our ours out over own same she should so some
    such than that the their theirs them then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you your
    yours""".split()
)


def normalize_space(text: str) -> str:
    """``text`` with every run of whitespace made one space, stripped."""
    return " ".join(text.split())


def word_count(text: str) -> int:
    """Number of whitespace-separated words."""
    return len(text.split())


def query_words(query: str) -> list[str]:
    """The distinct lowercase words of ``query`` worth searching for, in order.

    Stopwords are dropped unless the query has nothing else (``"The Who"`` keeps both).
    """
    words = list(dict.fromkeys(w.casefold() for w in _WORD.findall(query)))
    content = [w for w in words if w not in _STOPWORDS]
    return (content or words)[:_MAX_QUERY_WORDS]


def match_expression(query: str) -> str | None:
    """An FTS5 ``MATCH`` expression for free text: its words, each quoted, ORed together.

    Returns ``None`` when the query has no words (nothing can match).
    """
    words = query_words(query)
    if not words:
        return None
    # Words hold no '"' (they are letters and digits), so quoting makes every one a plain
    # string: "and", "near" and "not" lose their operator meaning.
    return " OR ".join(f'"{w}"' for w in words)


def sentences(text: str) -> list[str]:
    """``text`` split into sentences (roughly: at ``.!?`` before a capital or digit)."""
    return [s for s in (normalize_space(p) for p in _SENTENCE_END.split(text)) if s]


def _pieces(text: str, max_words: int) -> list[tuple[str, bool]]:
    """Paragraphs of ``text`` as ``(text, is_heading)``, none longer than ``max_words``.

    Markdown headings become paragraphs of their own, without the ``#`` marks; a paragraph
    longer than ``max_words`` is cut at sentence ends, a sentence longer than that at words.
    """
    pieces: list[tuple[str, bool]] = []
    lines: list[str] = []

    def flush() -> None:
        paragraph = normalize_space(" ".join(lines))
        lines.clear()
        if not paragraph:
            return
        if word_count(paragraph) <= max_words:
            pieces.append((paragraph, False))
            return
        for part in _pack(sentences(paragraph), max_words, " "):
            pieces.append((part, False))

    for line in text.replace("\r\n", "\n").split("\n"):
        heading = _HEADING.match(line)
        if heading:
            flush()
            if heading.group(1).strip():
                pieces.append((normalize_space(heading.group(1)), True))
        elif line.strip():
            lines.append(line)
        else:
            flush()
    flush()
    return pieces


def _pack(parts: list[str], max_words: int, glue: str) -> list[str]:
    """Join consecutive ``parts`` greedily into chunks of at most ``max_words`` words."""
    chunks: list[str] = []
    current: list[str] = []
    count = 0
    for part in parts:
        words = part.split()
        while len(words) > max_words:  # a run-on "sentence" (a table, a list) is cut at words
            if current:
                chunks.append(glue.join(current))
                current, count = [], 0
            chunks.append(" ".join(words[:max_words]))
            words = words[max_words:]
        if not words:
            continue
        if current and count + len(words) > max_words:
            chunks.append(glue.join(current))
            current, count = [], 0
        current.append(" ".join(words))
        count += len(words)
    if current:
        chunks.append(glue.join(current))
    return chunks


def split_passages(
    text: str, *, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS
) -> list[str]:
    """Split a document into passages of about ``min_words``-``max_words`` words.

    Passages end at paragraph boundaries where possible (paragraphs are separated by blank
    lines; markdown headings start a new paragraph and stay with the text after them);
    paragraphs inside a passage are joined by a newline. A text of at most ``max_words`` words
    is one passage. A last passage shorter than a third of ``min_words`` joins the one before
    it when that keeps the passage near ``max_words``.
    """
    pieces = _pieces(text, max_words)
    chunks: list[list[tuple[str, bool]]] = []
    current: list[tuple[str, bool]] = []
    count = 0
    for piece in pieces:
        words = word_count(piece[0])
        has_text = any(not is_heading for _, is_heading in current)
        if has_text and count + words > max_words:
            # headings at the end belong to the text after them
            carried: list[tuple[str, bool]] = []
            while current[-1][1]:
                carried.insert(0, current.pop())
            chunks.append(current)
            current = carried
            count = sum(word_count(p) for p, _ in current)
        current.append(piece)
        count += words
    if current:
        chunks.append(current)
    if len(chunks) > 1:
        tail = sum(word_count(p) for p, _ in chunks[-1])
        before = sum(word_count(p) for p, _ in chunks[-2])
        tiny = min_words // 3
        if tail < tiny and before + tail <= max_words + tiny:
            chunks[-2].extend(chunks.pop())
    return ["\n".join(p for p, _ in chunk) for chunk in chunks]


def context_units(context: str, *, max_words: int = 100) -> list[str]:
    """Split an earlier result into the units ParagraphRetrieve ranks, in order, without repeats.

    Blocks separated by blank lines (rendered passages) of at most ``max_words`` words are
    units as they are; a longer block is cut into windows of whole sentences of at most about
    ``max_words`` words. When the block starts like a rendered passage (``Title: text``), every
    window keeps the title, so each stands on its own.
    """
    units: list[str] = []
    for block in _BLANK_LINE.split(context.replace("\r\n", "\n")):
        block = block.strip()
        if not block:
            continue
        if word_count(block) <= max_words:
            units.append(block)
            continue
        prefix = ""
        titled = _RENDERED_TITLE.match(block)
        if titled and word_count(titled.group(1)) <= 12:
            prefix, block = f"{normalize_space(titled.group(1))}: ", block[titled.end() :]
        units.extend(prefix + window for window in _pack(sentences(block), max_words, " "))
    return list(dict.fromkeys(units))
