"""The agent's connection to the gateway's SQLite database: Python's sqlite3, not Django.

The agent reads cameras and writes what it reports (tunnel status, camera health, a
provisioned token) in a handful of statements (store.py, health_store.py). Loading
Django's ORM for them (its models import forms, templates, serializers, mail...) was
15 MiB of the agent's 55 MiB at rest, more than any other part. The tables are still
Django's: cameras/models.py defines them and its migrations, which only `camgate web`
and `camgate migrate` run, make them; the statements here write what Django would (see
the converters below).

Each call opens its own connection and closes it (blocking: the agent calls from a
worker thread), as Django did with CONN_MAX_AGE 0: nothing, not even SQLite's page
cache, is held between passes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime, timezone

from camgate import config
from camgate.datadir import DATABASE_NAME

# As camgate/settings.py gives Django: the web server's short write locks are waited out.
BUSY_TIMEOUT_S = 20

_location: str | None = None  # another database, for tests (use_database)


def use_database(location: str | None) -> None:
    """Point the agent at ``location`` (a path or a ``file:`` URI); None: the data directory's."""
    global _location
    _location = location


def _connect() -> sqlite3.Connection:
    location = _location or str(config.data_dir() / DATABASE_NAME)
    connection = sqlite3.connect(location, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                 uri=location.startswith("file:"))
    # As Django's own connections: foreign keys checked (at commit: they are deferred), and
    # camgate/settings.py's synchronous=NORMAL (the database is in WAL mode).
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("PRAGMA synchronous = NORMAL")
    return connection


def read(sql: str, parameters: Sequence = ()) -> list[tuple]:
    with closing(_connect()) as connection:
        return connection.execute(sql, parameters).fetchall()


@contextmanager
def writing() -> Iterator[sqlite3.Connection]:
    """One transaction, its write lock taken at once (BEGIN IMMEDIATE, as camgate/settings.py
    has Django do): a transaction that read first and then wanted to write could fail
    at once when the web server wrote meanwhile, where this one waits its turn."""
    with closing(_connect()) as connection:
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


def placeholders(count: int) -> str:
    return ", ".join("?" * count)


def existing_cameras(connection: sqlite3.Connection, camera_ids) -> set[int]:
    """Those of ``camera_ids`` still in the camera table: what the agent reports of a
    camera deleted meanwhile is dropped (its rows went with it)."""
    ids = sorted(set(camera_ids))
    return {row[0] for row in connection.execute(
        f"SELECT camera_id FROM cameras_camera WHERE camera_id IN ({placeholders(len(ids))})", ids)}


# --- values as Django keeps them in SQLite ---------------------------------------------


def to_datetime(value: datetime | None) -> str | None:
    """A DateTimeField's value (USE_TZ): UTC without an offset, "2026-05-06 07:08:09.123456"."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return str(value)


def from_datetime(text: str | None) -> datetime | None:
    """A DateTimeField's value as Django reads it back: aware, in UTC."""
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def to_json(value) -> str | None:
    """A JSONField's value; None is SQL NULL, as Django stores it in a nullable one."""
    return None if value is None else json.dumps(value)


def now() -> str:
    """An auto_now field's value, as Django sets it on save."""
    return to_datetime(datetime.now(timezone.utc))
