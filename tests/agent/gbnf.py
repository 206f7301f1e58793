"""A small GBNF recognizer for tests: does a grammar admit a whole text?

It reads the subset of llama.cpp's GBNF our grammars use (rules ``name ::= ...``, literals,
character classes with ranges and ``^``, groups, ``|``, ``*``, ``+``, ``?``, rule references)
and answers by memoized search over end positions, so unit tests can check what a grammar
admits without loading a model. ``tests/agent/test_grammar.py`` also checks, with the real
model, that llama.cpp's own sampler agrees on the same texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-",
            "^": "^"}


@dataclass(frozen=True)
class _Node:
    kind: str  # "lit", "class", "ref", "seq", "alt", "rep"
    value: object
    low: int = 0
    high: int | None = None


class _Reader:
    def __init__(self, text: str) -> None:
        self.text, self.i = text, 0

    def skip(self) -> None:
        while self.i < len(self.text):
            if self.text[self.i] in " \t":
                self.i += 1
            elif self.text[self.i] == "#":
                while self.i < len(self.text) and self.text[self.i] != "\n":
                    self.i += 1
            else:
                return

    def char(self) -> str:
        ch = self.text[self.i]
        self.i += 1
        if ch == "\\":
            ch = _ESCAPES[self.text[self.i]]
            self.i += 1
        return ch

    def alternatives(self) -> _Node:
        options = [self.sequence()]
        self.skip()
        while self.i < len(self.text) and self.text[self.i] == "|":
            self.i += 1
            options.append(self.sequence())
            self.skip()
        return options[0] if len(options) == 1 else _Node("alt", tuple(options))

    def sequence(self) -> _Node:
        items: list[_Node] = []
        while True:
            self.skip()
            if self.i >= len(self.text) or self.text[self.i] in "|)\n":
                return items[0] if len(items) == 1 else _Node("seq", tuple(items))
            items.append(self.postfix(self.atom()))

    def atom(self) -> _Node:
        ch = self.text[self.i]
        if ch == '"':
            self.i += 1
            out = []
            while self.text[self.i] != '"':
                out.append(self.char())
            self.i += 1
            return _Node("lit", "".join(out))
        if ch == "[":
            self.i += 1
            negated = self.text[self.i] == "^"
            self.i += negated
            ranges = []
            while self.text[self.i] != "]":
                low = self.char()
                if self.text[self.i] == "-" and self.text[self.i + 1] != "]":
                    self.i += 1
                    ranges.append((low, self.char()))
                else:
                    ranges.append((low, low))
            self.i += 1
            return _Node("class", (negated, tuple(ranges)))
        if ch == "(":
            self.i += 1
            inner = self.alternatives()
            self.skip()
            self.text[self.i] == ")" or _fail(self.text, self.i)
            self.i += 1
            return inner
        start = self.i
        while self.i < len(self.text) and (self.text[self.i].isalnum() or self.text[self.i] in "-_"):
            self.i += 1
        if start == self.i:
            _fail(self.text, self.i)
        return _Node("ref", self.text[start:self.i])

    def postfix(self, node: _Node) -> _Node:
        if self.i < len(self.text) and self.text[self.i] in "*+?":
            op = self.text[self.i]
            self.i += 1
            low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[op]
            return _Node("rep", node, low, high)
        return node


def _fail(text: str, i: int) -> None:
    raise ValueError(f"cannot read the grammar at {text[i:i + 40]!r}")


def parse(grammar: str) -> dict[str, _Node]:
    """The rules of a GBNF text by name."""
    rules: dict[str, _Node] = {}
    for line in grammar.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, body = line.partition("::=")
        reader = _Reader(body)
        rules[name.strip()] = reader.alternatives()
        reader.skip()
        if reader.i != len(body):
            _fail(body, reader.i)
    return rules


def accepts(grammar: str, text: str) -> bool:
    """True when the grammar's ``root`` derives exactly ``text``."""
    rules = parse(grammar)

    @cache
    def ends(node: _Node, i: int) -> frozenset[int]:
        if node.kind == "lit":
            value = str(node.value)
            return frozenset({i + len(value)}) if text.startswith(value, i) else frozenset()
        if node.kind == "class":
            negated, ranges = node.value  # type: ignore[misc]
            if i >= len(text):
                return frozenset()
            inside = any(low <= text[i] <= high for low, high in ranges)
            return frozenset({i + 1}) if inside != negated else frozenset()
        if node.kind == "ref":
            return ends(rules[str(node.value)], i)
        if node.kind == "alt":
            return frozenset().union(*(ends(o, i) for o in node.value))  # type: ignore[union-attr]
        if node.kind == "seq":
            positions = frozenset({i})
            for part in node.value:  # type: ignore[union-attr]
                positions = frozenset().union(*(ends(part, j) for j in positions))
                if not positions:
                    break
            return positions
        inner: _Node = node.value  # type: ignore[assignment]
        out: set[int] = {i} if node.low == 0 else set()
        frontier, seen, count = {i}, {i}, 0
        while frontier and (node.high is None or count < node.high):
            count += 1
            reached = set().union(*(ends(inner, j) for j in frontier))
            if count >= node.low:
                out |= reached
            # unbounded: a position reached before adds no new ends
            frontier = reached - seen if node.high is None else reached
            seen |= reached
        return frozenset(out)

    return len(text) in ends(rules["root"], 0)
