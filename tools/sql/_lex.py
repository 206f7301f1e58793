"""Reading SQL text just enough: unwrap a quoted query, and find a second statement.

Neither function decides what a query may do (the database does, see
:mod:`lumos_graph.tools.sql.actions`).
:func:`has_several_statements` backs up drivers that would run ``SELECT 1; DROP TABLE t`` as
two statements (psycopg2 does). SQL dialects disagree on how text is quoted and commented, so it
scans the query under each combination of the rules that matter (backslash escapes in strings,
``#`` comments, nested ``/* */`` comments) and reports a second statement if any reading finds
one: an odd query may be refused, a second statement is never missed by a misreading.
"""

from __future__ import annotations

import itertools
import re

__all__ = ["has_several_statements", "unwrap_query"]

_STATEMENT_START = re.compile(
    r"\s*\(*\s*(select|with|values|insert|update|delete|replace|create|drop|alter|pragma|"
    r"explain|show|describe|table)\b",
    re.I,
)


def unwrap_query(text: str) -> str:
    """The query a model meant: surrounding whitespace and one pair of quotes around the whole
    statement removed (``"SELECT 1"`` is ``SELECT 1``; ``'abc'`` stays a string literal)."""
    query = text.strip()
    if len(query) >= 2 and query[0] == query[-1] and query[0] in "\"'`":
        inner = query[1:-1]
        if query[0] not in inner and _STATEMENT_START.match(inner):
            query = inner.strip()
    return query


def _separator_found(sql: str, *, backslash: bool, hash_comments: bool, nested: bool) -> bool:
    """A ';' outside quotes and comments with more than blanks and comments after it."""
    i, n = 0, len(sql)
    ended = False  # a ';' was seen; anything but blanks and comments now is a second statement
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            if ended:
                return True
            i += 1
            while i < n and sql[i] != ch:
                i += 2 if backslash and sql[i] == "\\" else 1
            i += 1
        elif sql.startswith("--", i) or (hash_comments and ch == "#"):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if nested and sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif ch == ";":
            ended = True
            i += 1
        elif ch.isspace():
            i += 1
        else:
            if ended:
                return True
            i += 1
    return False


def has_several_statements(sql: str) -> bool:
    """True when any common SQL reading of ``sql`` finds a second statement after a ``;``.

    A trailing ``;`` (followed only by blanks or comments) is one statement.
    """
    return any(
        _separator_found(sql, backslash=b, hash_comments=h, nested=d)
        for b, h, d in itertools.product((False, True), repeat=3)
    )
