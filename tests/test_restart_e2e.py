"""`camgate run` as a real process: concurrent `POST /api/restart/` calls, and the open
files limit of the processes that hold a socket per peer (relay and agent)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.processes import camgate_env, free_port, http_json, stop_process_group, wait_for_http

pytestmark = pytest.mark.e2e


def restart(base: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"{base}/api/restart/", method="POST", headers={"Authorization": f"Token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=40) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def children(pid: int) -> dict[str, int]:
    """The direct children of ``pid``, by their camgate subcommand."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == pid and b"camgate.cli" in cmdline:
            found[cmdline[cmdline.index(b"camgate.cli") + 1].decode()] = int(stat.parent.name)
    return found


def open_files_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-files line")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("restart")
    port, relay_port = free_port(), free_port()
    env = camgate_env(tmp / "data", CAMGATE_EMBEDDED_RELAY_PORT=str(relay_port), CAMGATE_SSH_PORT="0",
                      CAMGATE_RELAY_PORT_RANGE=f"{relay_port + 1}-{relay_port + 40}")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low_soft = min(hard, 256)  # a soft limit below the hard one, as many systems start services
    with open(tmp / "camgate.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "camgate.cli", "run", "--port", str(port)], env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (low_soft, hard)),
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + "/api/cameras/")
        wait_for_http(f"http://127.0.0.1:{relay_port}/api/devices")
        _, body = http_json("POST", base + "/api/auth-token/", {"username": "admin", "password": "admin"})
        yield base, body["token"], process, low_soft
    finally:
        stop_process_group(process)


def test_concurrent_restarts_all_report_the_tunnel_that_came_up(gateway):
    base, token, _, _ = gateway
    assert restart(base, token) == (200, {"message": "Server restarted successfully"})
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: restart(base, token), range(10)))
    # Each restart but the last is superseded by the next; each reports how the last went.
    assert answers == [(200, {"message": "Server restarted successfully"})] * 10


def test_relay_and_agent_raise_their_open_files_limit_to_the_hard_one(gateway):
    _, _, process, low_soft = gateway
    started = children(process.pid)
    assert {"relay", "agent", "web"} <= set(started), started
    _, hard = open_files_limits(started["web"])
    if hard <= low_soft:
        pytest.skip(f"the hard open-files limit here ({hard}) leaves nothing to raise")
    # Every child started with the low soft limit; each holds a socket per client, viewer
    # or tunnel connection, so each raises it (the web front too, for slow clients).
    for name in ("relay", "agent", "web"):
        assert open_files_limits(started[name]) == (hard, hard), name
