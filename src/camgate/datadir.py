"""The data directory: private, checked before use, and prepared at start.

It holds camera passwords, tokens, sessions and password hashes, so the directory is
0700 and its files 0600, created so (never readable for a moment and chmod-ed after).
An install from before this rule is fixed at start, with a log line. An existing
database that is empty or unreadable stops the start with one line naming the file:
replacing it silently with an empty one (admin/admin, every camera gone) loses a site.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path

log = logging.getLogger("camgate.security")

DATABASE_NAME = "camgate.sqlite3"
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


class DataDirError(RuntimeError):
    """The data directory cannot be used as it is; the message says what to do."""


def write_private_file(path: Path, text: str) -> None:
    """Create ``path`` with ``text``, owner-only from the first byte; an existing file
    is left as it is (the first writer wins, so concurrent starts agree)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def secure(directory: Path) -> None:
    """Make ``directory`` and the files in it owner-only, saying so when they were not."""
    loose = []
    if stat.S_IMODE(directory.stat().st_mode) & 0o077:
        directory.chmod(DIRECTORY_MODE)
        loose.append(directory.name + "/")
    for entry in directory.iterdir():
        if entry.is_file() and not entry.is_symlink() and stat.S_IMODE(entry.stat().st_mode) & 0o077:
            entry.chmod(FILE_MODE)
            loose.append(entry.name)
    if loose:
        log.warning("data directory %s was readable by other users; made owner-only: %s", directory, ", ".join(loose))


def check_database(path: Path) -> None:
    """Refuse an existing database that is empty or that SQLite cannot read."""
    if not path.exists():
        return
    advice = f"restore a backup with `camgate restore --force FILE`, or move {path.name} away to start afresh"
    if path.stat().st_size == 0:
        raise DataDirError(f"the database {path} is empty (0 bytes): {advice}")
    try:
        verdict = database_verdict(path)
    except sqlite3.DatabaseError as error:
        raise DataDirError(f"the database {path} cannot be read ({error}): {advice}") from None
    if verdict != "ok":
        raise DataDirError(f"the database {path} is damaged ({verdict}): {advice}")


def database_verdict(path: Path, pragma: str = "quick_check", require_table: str | None = None) -> str:
    """SQLite's own check of the database at ``path``, read-only: "ok" or what is wrong.
    sqlite3.DatabaseError when it is not a database (or lacks ``require_table``)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        (verdict,) = connection.execute(f"PRAGMA {pragma}").fetchone()
        if require_table:
            connection.execute(f"SELECT COUNT(*) FROM {require_table}").fetchone()
    finally:
        connection.close()
    return verdict


def create_database(path: Path) -> None:
    """Create the database owner-only (SQLite's -wal and -shm files take its mode), with
    its header written at once, so that no other process ever sees it empty."""
    if path.exists():
        return
    write_private_file(path, "")
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def prepare(directory: Path) -> None:
    """Bring the data directory up to date before a part starts: permissions, the
    database's health, schema, admin account, gateway UUID, warnings."""
    from django.core.management import call_command

    from camgate import config
    from camgate.cameras.admin_bootstrap import bootstrap_admin, warn_if_default_password

    secure(directory)
    database = directory / DATABASE_NAME
    check_database(database)
    create_database(database)
    call_command("migrate", interactive=False, verbosity=0)
    bootstrap_admin()
    config.gateway_uuid()
    warn_if_default_password()
