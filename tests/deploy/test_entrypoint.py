"""deploy/entrypoint.sh run outside Docker, with the environment the image and the
systemd units give it (only the port and the paths changed): the web service prepares
and serves, data survive a restart, the agent waits for web's migrations."""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import make_token
from tests.deploy.support import DEPLOY, app_env, write_camgate_shim
from tests.support.processes import free_port, http_json, stop_process_group, wait_for_http, wait_for_path

pytestmark = pytest.mark.e2e

ENTRYPOINT = DEPLOY / "entrypoint.sh"


def entrypoint_env(tmp_path: Path, port: int | None = None, **extra) -> dict:
    shims = write_camgate_shim(tmp_path / "bin")
    env = app_env(tmp_path / "data", CAMGATE_STATIC_ROOT=str(tmp_path / "static"), CAMGATE_WEB_HOST="127.0.0.1",
                  CAMGATE_WEB_PORT=str(port or free_port()), CAMGATE_WEB_TUNNEL_PORT=str(free_port()), **extra)
    env["PATH"] = f"{shims}{os.pathsep}{env['PATH']}"
    return env


@contextmanager
def entrypoint(args: list[str], env: dict, log: Path):
    with open(log, "ab") as out:
        process = subprocess.Popen(["sh", str(ENTRYPOINT), *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        yield process
    finally:
        stop_process_group(process)


def test_entrypoint_web_prepares_serves_and_keeps_everything_across_restarts(tmp_path):
    port = free_port()
    env = entrypoint_env(tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    data, log = tmp_path / "data", tmp_path / "web.log"

    with entrypoint(["web"], env, log) as process:
        wait_for_http(base + "/healthz")
        # exec all the way down: the service's pid is the server itself, so the stop
        # signal of Docker or systemd reaches gunicorn, not a shell.
        assert b"camgate.cli\0web\0" in Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert list((tmp_path / "static").rglob("*.css")), "collectstatic did not run"
        status, body = http_json("POST", base + "/api/auth-token/", {"username": "admin", "password": "admin"})
        assert status == 200
        token = body["token"]
        status, camera = http_json("POST", base + "/api/add-camera/", {"ip": "192.0.2.10", "access_token": make_token(321), "is_active": False}, token)
        assert status == 201
        identity = {name: (data / name).read_text() for name in ("gateway-uuid", "secret-key")}
    assert "default password" in log.read_text()

    with entrypoint(["web"], env, log):
        wait_for_http(base + "/healthz")
        status, body = http_json("POST", base + "/api/auth-token/", {"username": "admin", "password": "admin"})
        assert (status, body["token"]) == (200, token)
        assert http_json("GET", base + "/api/cameras/", token=token) == (200, [camera])
        status, detail = http_json("GET", base + "/api/camera/321/", token=token)
        assert status == 200 and detail["camera_id"] == camera["camera_id"]
    assert {name: (data / name).read_text() for name in identity} == identity


def test_agent_waits_until_web_has_migrated_then_runs(tmp_path):
    port = free_port()
    # No gateway tunnel: nothing to dial from this test.
    env = entrypoint_env(tmp_path, port, CAMGATE_SCHEMA_WAIT_SECONDS="60", CAMGATE_GATEWAY_TUNNEL="false")
    control_socket = tmp_path / "data" / "agent.sock"
    agent_log = tmp_path / "agent.log"

    with entrypoint(["agent"], env, agent_log) as agent:
        deadline = time.monotonic() + 30
        while "waiting for the web service to migrate" not in agent_log.read_text():
            assert time.monotonic() < deadline and agent.poll() is None, agent_log.read_text()
            time.sleep(0.05)
        assert agent.poll() is None and not control_socket.exists(), "the agent started on an empty database"
        with entrypoint(["web"], env, tmp_path / "web.log"):
            wait_for_path(control_socket)
            assert control_socket.exists(), agent_log.read_text()
            # exec all the way down: the agent is the service's process itself.
            assert b"camgate.cli\0agent\0--no-prepare" in Path(f"/proc/{agent.pid}/cmdline").read_bytes()


def test_agent_gives_up_with_a_reason_when_nothing_migrates(tmp_path):
    env = entrypoint_env(tmp_path, CAMGATE_SCHEMA_WAIT_SECONDS="1")
    result = subprocess.run(["sh", str(ENTRYPOINT), "agent"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "is the web service running?" in result.stderr


def test_other_commands_pass_through(tmp_path):
    env = entrypoint_env(tmp_path)
    result = subprocess.run(["sh", str(ENTRYPOINT), "check"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
