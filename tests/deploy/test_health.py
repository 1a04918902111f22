"""GET /healthz and the probes the compose health checks run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import OperationalError

from camgate import health
from tests.deploy.support import app_env


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


class FakeAgent:
    """A Unix socket answering each line with REPLY, like the agent's control socket."""

    def __init__(self, path: Path, reply: bytes):
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen()
        self.reply, self.received = reply, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                self.received.append(connection.makefile("rb").readline())
                connection.sendall(self.reply)

    def close(self):
        self.server.close()


@pytest.mark.parametrize("reply, healthy", [
    (b'{"ok": true}\n', True),
    (b'{"error": "unknown command: ping"}\n', True),  # alive, even if it has no ping
    (b"garbage\n", False),
    (b"", False),
])
def test_agent_probe(tmp_path, reply, healthy):
    path = tmp_path / "agent.sock"
    agent = FakeAgent(path, reply)
    try:
        assert health.probe_agent(path, timeout=2)[0] is healthy
        assert json.loads(agent.received[0]) == {"command": "ping"}
    finally:
        agent.close()


def test_agent_probe_without_an_agent(tmp_path):
    healthy, message = health.probe_agent(tmp_path / "agent.sock", timeout=2)
    assert not healthy and "agent.sock" in message


def test_health_command_exit_codes(tmp_path):
    """`python -m camgate.health agent`, as the compose health check runs it."""
    data = tmp_path / "data"
    data.mkdir()
    env = app_env(data)
    command = [sys.executable, "-m", "camgate.health"]
    assert subprocess.run([*command, "agent"], env=env, capture_output=True).returncode == 1
    agent = FakeAgent(data / "agent.sock", b'{"ok": true}\n')
    try:
        assert subprocess.run([*command, "agent"], env=env, capture_output=True).returncode == 0
    finally:
        agent.close()
    assert subprocess.run([*command, "bogus"], env=env, capture_output=True).returncode == 2
