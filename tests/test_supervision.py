"""`camgate run`'s processes: none outlives the supervisor, and one agent per data
directory however many are started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from camgate.agent.control import send_command_to

from tests.support.processes import camgate_env, camgate_process, free_port, wait_for_http, wait_for_path

pytestmark = pytest.mark.e2e


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def ping(socket_path: Path) -> dict:
    return send_command_to(socket_path, "ping", timeout=5)


def run_env(tmp_path):
    return camgate_env(tmp_path / "data", CAMGATE_EMBEDDED_RELAY_PORT=str(free_port()), CAMGATE_SSH_PORT="0")


def test_children_die_with_a_killed_supervisor_and_a_second_run_refuses_to_start(tmp_path):
    port = free_port()
    env = run_env(tmp_path)
    with camgate_process(["run", "--port", str(port)], env, tmp_path / "camgate.log") as supervisor:
        wait_for_http(f"http://127.0.0.1:{port}/api/cameras/")
        wait_for_path(tmp_path / "data" / "agent.sock")
        children = children_of(supervisor.pid)
        assert len(children) == 3, children  # relay, web, agent

        second = subprocess.run([sys.executable, "-m", "camgate.cli", "run", "--port", str(free_port())],
                                env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "already running for the data directory" in second.stderr
        assert ping(tmp_path / "data" / "agent.sock").get("ok")  # the first agent's socket is intact

        os.kill(supervisor.pid, signal.SIGKILL)
        supervisor.wait()
        assert wait_until(lambda: not any(alive(pid) for pid in children)), \
            f"left over: {[pid for pid in children if alive(pid)]}"


def test_a_second_agent_exits_in_one_line_and_leaves_the_first_ones_socket(tmp_path):
    env = camgate_env(tmp_path / "data", CAMGATE_GATEWAY_TUNNEL="false")
    subprocess.run([sys.executable, "-m", "camgate.cli", "prepare"], env=env, check=True, capture_output=True, timeout=60)
    with camgate_process(["agent", "--no-prepare"], env, tmp_path / "agent.log") as first:
        socket = tmp_path / "data" / "agent.sock"
        wait_for_path(socket)
        second = subprocess.run([sys.executable, "-m", "camgate.cli", "agent", "--no-prepare"],
                                env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert second.stderr.strip().splitlines() == [
            f"camgate agent: another camgate agent (pid {first.pid}) is already running for the data directory {tmp_path / 'data'}"
        ]
        assert first.poll() is None and ping(socket).get("ok")
