"""`camgate backup` / `camgate restore`: an online, WAL-aware copy of the data directory."""

from __future__ import annotations

import io
import shutil
import sqlite3
import tarfile
from pathlib import Path

import pytest

from tests.deploy.support import app_env, run_camgate
from tests.support.processes import camgate_process, wait_for_path

pytestmark = pytest.mark.e2e

DB = "camgate.sqlite3"


def serials(db: Path) -> list[str]:
    connection = sqlite3.connect(db)
    try:
        return [row[0] for row in connection.execute("SELECT serial FROM cameras_camera ORDER BY camera_id")]
    finally:
        connection.close()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("prepared") / "data"
    env = app_env(data)
    run_camgate(["prepare"], env)
    run_camgate(["shell", "-c", "from camgate.cameras.models import Camera; Camera.objects.create(ip='192.0.2.1', serial='COMMITTED')"], env)
    return data


@pytest.fixture
def gateway(prepared, tmp_path) -> tuple[Path, dict]:
    """A prepared data directory holding one camera (a copy: nothing has it open)."""
    data = tmp_path / "data"
    shutil.copytree(prepared, data)
    return data, app_env(data)


def test_backup_while_running_includes_writes_still_in_the_wal(gateway, tmp_path):
    data, env = gateway
    # A writer that keeps the database open with its last commit only in the WAL, as
    # the agent does between checkpoints.
    writer = sqlite3.connect(data / DB)
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("UPDATE cameras_camera SET serial='IN-WAL'")
        writer.commit()
        assert (data / f"{DB}-wal").stat().st_size > 0
        # What a plain `cp camgate.sqlite3` would have saved:
        copied = tmp_path / "copied.sqlite3"
        shutil.copy(data / DB, copied)
        assert serials(copied) == ["COMMITTED"]

        run_camgate(["backup", str(tmp_path / "gw.tar.gz")], env)
    finally:
        writer.close()

    archive = tmp_path / "gw.tar.gz"
    assert archive.stat().st_mode & 0o777 == 0o600
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == sorted([DB, "gateway-uuid", "secret-key", "manifest.json"])

    restored = tmp_path / "restored"
    run_camgate(["restore", str(archive)], app_env(restored))
    assert serials(restored / DB) == ["IN-WAL"]
    for name in ("gateway-uuid", "secret-key"):
        assert (restored / name).read_text() == (data / name).read_text()


def test_backup_to_stdout_and_restore_from_stdin(gateway, tmp_path):
    data, env = gateway
    archive = run_camgate(["backup", "-"], env).stdout
    assert tarfile.open(fileobj=io.BytesIO(archive)).getnames()[0] == DB

    target = tmp_path / "target"
    run_camgate(["restore", "-"], app_env(target), input=archive)
    assert serials(target / DB) == ["COMMITTED"]


def test_restore_refuses_to_overwrite_without_force_and_drops_stale_wal(gateway, tmp_path):
    data, env = gateway
    archive = tmp_path / "gw.tar.gz"
    run_camgate(["backup", str(archive)], env)
    run_camgate(["shell", "-c", "from camgate.cameras.models import Camera; Camera.objects.create(ip='192.0.2.2', serial='LATER')"], env)

    refused = run_camgate(["restore", str(archive)], env, check=False)
    assert refused.returncode != 0 and b"--force" in refused.stderr
    assert serials(data / DB) == ["COMMITTED", "LATER"]

    for suffix in ("-wal", "-shm"):
        (data / f"{DB}{suffix}").write_bytes(b"left over from the old database")
    run_camgate(["restore", "--force", str(archive)], env)
    assert not (data / f"{DB}-wal").exists() and not (data / f"{DB}-shm").exists()
    assert serials(data / DB) == ["COMMITTED"]


def test_restore_refuses_while_the_agent_runs(gateway, tmp_path):
    data, env = gateway
    archive = tmp_path / "gw.tar.gz"
    run_camgate(["backup", str(archive)], env)
    with camgate_process(["agent", "--no-prepare"], {**env, "CAMGATE_GATEWAY_TUNNEL": "false"}, tmp_path / "agent.log"):
        wait_for_path(data / "agent.sock")
        refused = run_camgate(["restore", "--force", str(archive)], env, check=False)
    assert refused.returncode != 0 and b"stop it" in refused.stderr


def test_restore_rejects_foreign_archives(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        payload = b"x"
        info = tarfile.TarInfo("../outside")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    target = tmp_path / "target"
    refused = run_camgate(["restore", str(evil)], app_env(target), check=False)
    assert refused.returncode != 0 and b"unexpected entry" in refused.stderr
    assert not (tmp_path / "outside").exists()
