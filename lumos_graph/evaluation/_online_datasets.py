"""Public benchmarks fetched at run time from where their authors publish them.

==============================  ===================================================================
set                             source, format and conversion
==============================  ===================================================================
``gsm8k-test``                  :data:`GSM8K_TEST`, JSONL ``{"question", "answer"}``; the answer is
                                the worked solution ending ``#### 42``: the gold is the number
                                after ``####`` without commas, the solution is kept in
                                ``solution``
``svamp-test``                  :data:`SVAMP`, a JSON list of ``{"ID", "Body", "Question",
                                "Equation", "Answer", "Type"}``: the question is ``Body`` and
                                ``Question`` joined by a space, the gold ``Answer`` written
                                without a trailing ``.0``
``hotpotqa-dev`` (and           :data:`HOTPOTQA_DEV` (~46 MB), a JSON list of ``{"_id",
``hotpotqa-distractor-dev``)    "question", "answer", "type", "level", "supporting_facts",
                                "context": [[title, [sentence, ...]], ...]}``; the distractor
                                set gives the ten paragraphs as ``context``
==============================  ===================================================================

:func:`fetch` downloads a file once into the cache (streamed to a ``.part`` file, renamed when
complete) and raises :class:`~lumos_graph.errors.ConfigError` when it cannot. Setting
``$LUMOS_GRAPH_DATASET_MIRROR`` to a base URL (``https://host/benchmarks``,
``file:///data/benchmarks``) fetches each file by its original name from there instead.
The converters turn the file's bytes into items in the file's order.
"""

from __future__ import annotations

import http.client
import json
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from lumos_graph.errors import ConfigError
from lumos_graph.evaluation.metrics import to_number

Item = dict[str, Any]

GSM8K_TEST = ("https://raw.githubusercontent.com/openai/grade-school-math/master/"
              "grade_school_math/data/test.jsonl")
SVAMP = "https://raw.githubusercontent.com/arkilpatel/SVAMP/main/SVAMP.json"
HOTPOTQA_DEV = "http://curtis.ml.cmu.edu/datasets/hotpot/hotpot_dev_distractor_v1.json"
MIRROR_ENV = "LUMOS_GRAPH_DATASET_MIRROR"
TIMEOUT = 60.0  # seconds without a byte before giving up (not for the whole download)
_CHUNK = 1 << 20


def source_url(url: str) -> str:
    """``url``, or the file of the same name under ``$LUMOS_GRAPH_DATASET_MIRROR`` when set."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{url.rsplit('/', 1)[1]}" if mirror else url


def fetch(url: str, target: Path, *, timeout: float = TIMEOUT) -> Path:
    """``target``, downloaded from ``url`` (or its mirror, :func:`source_url`) unless cached.

    The bytes go to a ``.part`` file beside ``target`` that is renamed only once the whole file
    has arrived, so an interrupted download is never taken for the file.

    Raises:
        ConfigError: the file cannot be downloaded (one line: the URL, why, and where to put
            the file by hand).
    """
    if target.is_file():
        return target
    url = source_url(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f"{target.name}.", suffix=".part", dir=target.parent)
    os.close(handle)
    part = Path(name)
    try:
        _download(url, part, timeout)
        os.replace(part, target)
    except (OSError, http.client.HTTPException) as exc:
        raise ConfigError(
            f"could not download {url} ({_reason(exc, timeout)}); no network? Save that file "
            f"as {target} and run again") from None
    finally:
        part.unlink(missing_ok=True)
    return target


def _download(url: str, part: Path, timeout: float) -> None:
    from lumos_graph import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"lumos-graph/{__version__}"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as out:
        expected = response.headers.get("Content-Length")
        received = 0
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            received += len(chunk)
    # http.client ends a body cut short by a closed connection silently: compare the length
    if expected is not None and expected.isdigit() and received != int(expected):
        raise http.client.IncompleteRead(b"", int(expected) - received)


def _reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, TimeoutError):
        return f"no answer for {timeout:g} s"
    if isinstance(exc, http.client.IncompleteRead):
        return "the connection closed before the whole file arrived"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


# ---- converters: the file's bytes -> items, in the file's order --------------------------------
def gsm8k_items(data: bytes) -> list[Item]:
    """GSM8K's JSONL: the gold is the number after ``####`` (commas removed)."""
    items: list[Item] = []
    for line in data.decode("utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        _, marker, gold = record["answer"].rpartition("####")
        gold = gold.strip().replace(",", "")
        if not marker or to_number(gold) is None:
            raise ValueError(f"GSM8K answer without '#### <number>': {record['answer'][-40:]!r}")
        items.append({"id": f"gsm8k-test-{len(items):04d}", "question": record["question"],
                      "answer": gold, "kind": "maths", "solution": record["answer"]})
    return items


def svamp_items(data: bytes) -> list[Item]:
    """SVAMP's JSON list: ``Body`` and ``Question`` make the question, ``Answer`` the gold."""
    return [
        {"id": f"svamp-{record['ID']}",
         "question": f"{record['Body'].strip()} {record['Question'].strip()}",
         "answer": _plain_number(record["Answer"]), "kind": "maths",
         "solution": record["Equation"].strip(), "type": record["Type"]}
        for record in json.loads(data)
    ]


def _plain_number(value: object) -> str:
    """``51.0`` -> ``"51"``, ``2.5`` -> ``"2.5"``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"not a number: {value!r}")
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def hotpotqa_items(data: bytes, *, distractor: bool) -> list[Item]:
    """HotpotQA's JSON list, with its ten paragraphs as ``context`` when ``distractor``."""
    items: list[Item] = []
    for record in json.loads(data):
        item: Item = {"id": f"hotpotqa-{record['_id']}", "question": record["question"],
                "answer": record["answer"], "kind": "qa", "type": record["type"],
                "level": record["level"]}
        if distractor:
            item["context"] = render_context(record["context"])
        items.append(item)
    return items


def render_context(paragraphs: list[list[Any]]) -> str:
    """HotpotQA paragraphs ``[[title, [sentence, ...]], ...]`` as ``Title: sentences`` blocks
    separated by blank lines (its sentences carry their own leading spaces, or not)."""
    return "\n\n".join(
        f"{title}: {' '.join(s.strip() for s in sentences if s.strip())}"
        for title, sentences in paragraphs
    )
