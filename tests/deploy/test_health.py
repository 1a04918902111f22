"""GET /healthz and the probes the compose health checks run."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import threading

import pytest
from django.db import OperationalError

from camgate import health
from tests.deploy.support import app_env
from tests.support.processes import camgate_process, wait_for_path


@pytest.mark.django_db
def test_healthz_needs_no_login_and_queries_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response["Cache-Control"] == "no-store"
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_healthz_is_503_when_the_database_fails(client, monkeypatch):
    def broken_cursor(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(health.connection, "cursor", broken_cursor)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "error"


@pytest.mark.parametrize("allowed, host", [
    ("*", "localhost"),
    ("", "localhost"),
    ("gw.example.test", "gw.example.test"),
    ("*, .example.test", "example.test"),
])
def test_probe_host_header(allowed, host):
    assert health.probe_host_header(allowed) == host


@pytest.mark.django_db
def test_probe_host_passes_a_restricted_allowed_hosts(client, settings):
    settings.ALLOWED_HOSTS = ["gw.example.test", ".site.test"]
    host = health.probe_host_header("gw.example.test,.site.test")
    assert client.get("/healthz", HTTP_HOST=host).status_code == 200
    host = health.probe_host_header(".site.test")
    assert client.get("/healthz", HTTP_HOST=host).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_web_probe(live_server):
    port = int(live_server.url.rsplit(":", 1)[1])
    assert health.probe_web(port) == (True, "web ok")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    healthy, message = health.probe_web(closed_port, timeout=2)
    assert not healthy and "unreachable" in message


@contextlib.contextmanager
def control_server(handlers):
    """The agent's real control socket server, on a loop in a thread."""
    from camgate.agent.control import socket_path
    from camgate.agent.control_server import serve_control

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(serve_control(socket_path(), handlers), loop).result(5)
    try:
        yield
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        socket_path().unlink(missing_ok=True)


@pytest.mark.parametrize("answer, healthy", [({"ok": True, "pid": 1}, True), ({"ok": False, "error": "x"}, False)])
def test_agent_probe(answer, healthy):
    async def ping():
        return answer

    with control_server({"ping": ping}):
        assert health.probe_agent(timeout=2)[0] is healthy


def test_agent_probe_without_an_agent():
    healthy, message = health.probe_agent(timeout=2)
    assert not healthy and "not running" in message


def test_health_command_exit_codes(tmp_path):
    """`python -m camgate.health agent`, as the compose health check runs it."""
    data = tmp_path / "data"
    data.mkdir()
    env = app_env(data)
    command = [sys.executable, "-m", "camgate.health"]
    assert subprocess.run([*command, "agent"], env=env, capture_output=True).returncode == 1
    # The real agent (no gateway tunnel: nothing to dial in this test).
    agent_env = {**env, "CAMGATE_GATEWAY_TUNNEL": "false"}
    with camgate_process(["agent"], agent_env, tmp_path / "agent.log"):
        wait_for_path(data / "agent.sock")
        assert subprocess.run([*command, "agent"], env=env, capture_output=True).returncode == 0
    assert subprocess.run([*command, "bogus"], env=env, capture_output=True).returncode == 2
