"""The UI as `camgate web` serves it: the web front before gunicorn with several
workers, static files from the app through whitenoise (no collectstatic, no CDN), one
login throttle for all workers, slow clients that stop nobody, and the gateway tunnel's
own port, where no forwarded header is believed."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from tests.support.browser import Browser
from tests.support.processes import camgate_env, camgate_process, free_port, http_json, wait_for_http

pytestmark = pytest.mark.e2e


def test_camgate_web_serves_the_ui_its_assets_and_one_throttle_for_all_workers(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["web", "--port", str(port), "--tunnel-port", str(free_port()), "--workers", "3"]
    with camgate_process(args, camgate_env(tmp_path / "data"), tmp_path / "web.log"):
        wait_for_http(base + "/login/")
        browser = Browser(base)

        status, _, html = browser.request("/login/")
        assert status == 200 and "Log in" in html
        for asset, kind in [("app.css", "text/css"), ("app.js", "javascript"), ("favicon.svg", "image/svg")]:
            assert f"/static/web/{asset}" in html
            status, headers, _ = browser.request(f"/static/web/{asset}")
            assert status == 200 and kind in headers["Content-Type"], asset
        # Nothing is loaded from elsewhere: the box may be offline.
        assert all(url.startswith(("/", "#")) and not url.startswith("//") for url in re.findall(r'(?:src|href)="([^"]*)"', html))

        # Each attempt is a new connection, so the workers share them out; the count is
        # still one count.
        for attempt in range(5):
            token = browser.csrf("/login/")
            status, _, html = browser.request("/login/", {"csrfmiddlewaretoken": token, "username": "admin", "password": f"guess{attempt}"})
        assert status == 429 and "Too many failed sign-in attempts" in html
        token = browser.csrf("/login/")
        status, _, _ = browser.request("/login/", {"csrfmiddlewaretoken": token, "username": "admin", "password": "admin"})
        assert status == 429

        # A different client address (as the trusted local proxy reports it) may still log in.
        other = Browser(base)
        token = other.csrf("/login/")
        status, headers, _ = other.request("/login/", {"csrfmiddlewaretoken": token, "username": "admin", "password": "admin"},
                                           headers={"X-Forwarded-For": "192.0.2.44"})
        assert status == 302 and headers["Location"] == "/"
        status, _, html = other.request("/")
        assert status == 200 and "still has the default password" in html


NOT_HUNG_S = 15  # generous: proves an answer came, says nothing about speed
SLOW_CLIENTS = 300  # each holds a connection with half a request head (slowloris)


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    port, tunnel_port = free_port(), free_port()
    args = ["web", "--port", str(port), "--tunnel-port", str(tunnel_port)]
    with camgate_process(args, camgate_env(tmp / "data"), tmp / "web.log") as process:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        yield process, port, tunnel_port


def slow_clients(port: int, count: int) -> list[socket.socket]:
    clients = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port), timeout=NOT_HUNG_S)
        client.sendall(b"GET /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow")
        clients.append(client)
    return clients


def ask_token(port: int, password: str, headers: dict | None = None):
    return http_json("POST", f"http://127.0.0.1:{port}/api/auth-token/", {"username": "admin", "password": password},
                     headers=headers)


def test_slow_clients_do_not_keep_the_ui_and_api_from_answering(web):
    _, port, tunnel_port = web
    # 8 were enough to stop gunicorn's 2 x 4 threads; the front holds them all cheaply.
    held = slow_clients(port, SLOW_CLIENTS) + slow_clients(tunnel_port, SLOW_CLIENTS // 3)
    try:
        for target in (port, tunnel_port):
            with urllib.request.urlopen(f"http://127.0.0.1:{target}/login/", timeout=NOT_HUNG_S) as response:
                assert response.status == 200 and b"Log in" in response.read()
            status, body = http_json("GET", f"http://127.0.0.1:{target}/api/cameras/")
            assert status == 401
    finally:
        for client in held:
            client.close()


def test_through_the_tunnel_port_no_forwarded_address_is_believed_and_the_lan_keeps_its_own_count(web):
    _, port, tunnel_port = web
    # Everyone behind the gateway tunnel arrives from the agent on loopback, a trusted
    # proxy address: a rotating X-Forwarded-For must not buy a fresh count of guesses.
    answers = [ask_token(tunnel_port, "guess", {"X-Forwarded-For": f"198.51.100.{attempt}"})[0] for attempt in range(5)]
    assert answers == [400, 400, 400, 400, 429]  # the fifth failure starts the lock
    status, body = ask_token(tunnel_port, "admin", {"X-Forwarded-For": "198.51.100.200"})
    assert status == 429 and "Too many failed sign-in attempts" in body["detail"]
    # The LAN admin (straight, or through the local proxy) was not locked out.
    assert ask_token(port, "admin")[0] == 200
    assert ask_token(port, "admin", {"X-Forwarded-For": "192.168.1.10"})[0] == 200


def test_the_app_server_dies_with_the_front(tmp_path):
    port = free_port()
    args = ["web", "--port", str(port), "--tunnel-port", "0"]
    with camgate_process(args, camgate_env(tmp_path / "data"), tmp_path / "web.log") as front:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        (app_server,) = [int(pid) for pid in subprocess.run(["pgrep", "-P", str(front.pid)], capture_output=True,
                                                               text=True).stdout.split()]
        os.kill(front.pid, signal.SIGKILL)
        front.wait()
        deadline = time.monotonic() + NOT_HUNG_S
        while _alive(app_server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(app_server), "gunicorn outlived the front that was its only way in"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False
