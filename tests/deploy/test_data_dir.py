"""The data directory as `camgate` leaves it: owner-only from the first byte, an old
install fixed at start, and a database that is empty or damaged refused in one line."""

from __future__ import annotations

import os
import stat

import pytest

from tests.deploy.support import app_env as env_for, run_camgate

pytestmark = pytest.mark.e2e


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_directory_and_its_files_are_owner_only(tmp_path):
    data = tmp_path / "data"
    env = env_for(data)
    run_camgate(["prepare"], env)
    # A write leaves the -wal and -shm beside the database while a connection is open.
    run_camgate(["shell", "-c", "from camgate.cameras.models import Camera; Camera.objects.create(ip='192.0.2.1', password='pw')"], env)
    assert mode(data) == 0o700
    files = sorted(path.name for path in data.iterdir() if path.is_file())
    assert {"camgate.sqlite3", "gateway-uuid", "secret-key"} <= set(files)
    assert {name: oct(mode(data / name)) for name in files} == {name: oct(0o600) for name in files}


def test_an_install_readable_by_others_is_fixed_at_start_and_says_so(tmp_path):
    data = tmp_path / "data"
    env = env_for(data)
    run_camgate(["prepare"], env)
    data.chmod(0o755)
    for name in ("camgate.sqlite3", "gateway-uuid", "secret-key"):
        (data / name).chmod(0o644)
    result = run_camgate(["prepare"], env)
    assert "made owner-only" in result.stderr.decode()
    assert mode(data) == 0o700
    assert all(mode(path) == 0o600 for path in data.iterdir() if path.is_file())


@pytest.mark.parametrize("content, says", [(b"", "is empty"), (os.urandom(8192), "cannot be read")], ids=["empty", "garbage"])
@pytest.mark.parametrize("command", [["run", "--port", "0"], ["web", "--port", "0"], ["prepare"]])
def test_an_empty_or_damaged_database_stops_the_start_in_one_line(tmp_path, content, says, command):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "camgate.sqlite3").write_bytes(content)
    (data / "camgate.sqlite3").chmod(0o600)
    result = run_camgate(command, env_for(data), check=False)
    assert result.returncode != 0
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert str(data / "camgate.sqlite3") in lines[0] and says in lines[0] and "camgate restore" in lines[0]
    # Nothing was replaced: the file is as it was.
    assert (data / "camgate.sqlite3").read_bytes() == content
