"""Opening a database by what the user gave: an SQLite file path or an SQLAlchemy URL."""

from __future__ import annotations

import os
from pathlib import Path

from lumos_graph.errors import ConfigError
from lumos_graph.tools.sql._alchemy import AlchemyDatabase  # imports SQLAlchemy only when used
from lumos_graph.tools.sql._base import Database
from lumos_graph.tools.sql._sqlite import SQLiteDatabase

__all__ = ["open_database"]


def open_database(db: str | os.PathLike[str], *, allow_writes: bool, timeout: float) -> Database:
    """The database ``db`` names: a URL (anything containing ``://``) through SQLAlchemy, else
    an SQLite file; raises ConfigError for anything else."""
    if isinstance(db, str) and "://" in db:
        return AlchemyDatabase(db, allow_writes=allow_writes, timeout=timeout)
    if not isinstance(db, str | os.PathLike):
        raise ConfigError(f"db must be a file path or a database URL, got {db!r}")
    return SQLiteDatabase(Path(db), allow_writes=allow_writes, timeout=timeout)
