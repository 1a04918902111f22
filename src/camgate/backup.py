"""Backup and restore of the data directory (`camgate backup`, `camgate restore`).

A backup is a gzipped tar holding a consistent snapshot of the SQLite database, taken
with SQLite's online backup API while the gateway keeps running, plus the files that
give the gateway its identity (its UUID and, when generated, the secret key). Copying
camgate.sqlite3 with cp while the services run is not a backup: in WAL mode recent
writes live in camgate.sqlite3-wal, and the two files copied at different moments do
not make one database.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import tarfile
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from camgate.datadir import database_verdict

DB_NAME = "camgate.sqlite3"
IDENTITY_FILES = ("gateway-uuid", "secret-key")
MANIFEST = "manifest.json"
FORMAT = 1


class BackupError(RuntimeError):
    pass


def _snapshot(db: Path, destination: Path) -> None:
    source = sqlite3.connect(db, timeout=30)
    try:
        target = sqlite3.connect(destination)
        try:
            # The backup API reads through the WAL, so committed writes not yet
            # checkpointed are included, and it never blocks the gateway's writers
            # for more than one step.
            source.backup(target)
            # One self-contained file in the archive; Django turns WAL back on.
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    finally:
        source.close()


def write_backup(data_dir: Path, out: BinaryIO) -> list[str]:
    """Write a backup of DATA_DIR to OUT (a binary stream); return the names stored."""
    db = data_dir / DB_NAME
    if not db.is_file():
        raise BackupError(f"no database at {db}: nothing to back up")
    stored = [DB_NAME]
    with tempfile.TemporaryDirectory(prefix="camgate-backup-") as tmp:
        snapshot = Path(tmp) / DB_NAME
        _snapshot(db, snapshot)
        with tarfile.open(fileobj=out, mode="w|gz") as archive:
            archive.add(snapshot, arcname=DB_NAME)
            for name in IDENTITY_FILES:
                if (data_dir / name).is_file():
                    archive.add(data_dir / name, arcname=name)
                    stored.append(name)
            manifest = json.dumps({"format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": stored}).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(manifest), int(time.time()), 0o600
            archive.addfile(info, io.BytesIO(manifest))
    return stored


def write_backup_file(data_dir: Path, path: Path) -> list[str]:
    """Write the backup to PATH atomically, readable by its owner only (it holds
    camera passwords and the secret key)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            stored = write_backup(data_dir, out)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return stored


def _check_database(path: Path) -> None:
    try:
        result = database_verdict(path, "integrity_check", require_table="django_migrations")
    except sqlite3.DatabaseError as error:
        raise BackupError(f"the backup's database is not usable: {error}") from None
    if result != "ok":
        raise BackupError(f"the backup's database failed its integrity check: {result}")


def restore_backup(data_dir: Path, source: BinaryIO, force: bool = False) -> list[str]:
    """Replace DATA_DIR's database and identity files with those in a backup.

    The services must be stopped: a running web server or agent would keep the old
    database open. Refuses to overwrite an existing database unless FORCE.
    """
    db = data_dir / DB_NAME
    if db.exists() and not force:
        raise BackupError(f"{db} exists; stop the gateway and pass --force to replace it")
    allowed = {DB_NAME, MANIFEST, *IDENTITY_FILES}
    staged: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=data_dir) as tmp:
        try:
            with tarfile.open(fileobj=source, mode="r|gz") as archive:
                for member in archive:
                    if member.name not in allowed or not member.isfile():
                        raise BackupError(f"unexpected entry in the backup: {member.name!r}")
                    target = Path(tmp) / member.name
                    with archive.extractfile(member) as data, open(target, "wb") as out:
                        out.write(data.read())
                    staged[member.name] = target
        except (tarfile.TarError, OSError, EOFError) as error:
            raise BackupError(f"not a camgate backup: {error}") from None
        if DB_NAME not in staged:
            raise BackupError("the backup holds no database")
        _check_database(staged[DB_NAME])
        # A WAL or shared-memory file left from the old database would be replayed onto
        # the restored one and corrupt it: they go first.
        for suffix in ("-wal", "-shm", "-journal"):
            (data_dir / (DB_NAME + suffix)).unlink(missing_ok=True)
        restored = []
        for name in (DB_NAME, *IDENTITY_FILES):
            if name in staged:
                os.chmod(staged[name], 0o600)
                os.replace(staged[name], data_dir / name)
                restored.append(name)
    return restored
