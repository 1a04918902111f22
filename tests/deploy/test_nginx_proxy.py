"""deploy/nginx.conf under Debian's real nginx, in front of `camgate web` on loopback.

The API contract tests (tests/cameras/test_api_contract.py) run again here, through
nginx, then the proxy's own duties: the token header, forwarded headers trusted only
from the proxy, static files served by nginx itself, the body limit, gzip.
"""

from __future__ import annotations

import gzip
import inspect
import json
import socket
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.cameras import test_api_contract as contract
from tests.cameras.test_api_contract import call, token  # noqa: F401  (token: the contract's fixture, reused)
from tests.deploy.echo_urls import ECHO_PATH
from tests.deploy.nginx_template import render, start_nginx
from tests.deploy.support import app_env, http_request, run_camgate
from tests.support.processes import camgate_process, free_port, wait_for_http

pytestmark = pytest.mark.e2e

ONE_MIB = 1024 * 1024
CLIENT = "127.0.0.2"  # loopback, but not the address nginx uses to reach Django
ADMIN = {"username": "super", "password": "1234"}  # what the contract tests log in as


class Stack:
    def __init__(self, root: Path):
        self.root = root
        self.static_root = root / "static"
        self.app_port = free_port()
        self.nginx_port = free_port()
        self.env = app_env(
            root / "data",
            CAMGATE_STATIC_ROOT=str(self.static_root),
            CAMGATE_TRUSTED_PROXIES="127.0.0.1",
            GATEWAY_ADMIN_USERNAME=ADMIN["username"],
            GATEWAY_ADMIN_PASSWORD=ADMIN["password"],
            DJANGO_SETTINGS_MODULE="tests.deploy.echo_settings",
        )
        self.app_log = root / "web.log"
        self._app = None
        self.nginx = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    def start_app(self) -> None:
        args = ["web", "--host", "127.0.0.1", "--port", str(self.app_port), "--tunnel-port", str(free_port())]
        self._app = camgate_process(args, self.env, self.app_log)
        self._app.__enter__()
        wait_for_http(f"http://127.0.0.1:{self.app_port}/healthz")

    def stop_app(self) -> None:
        if self._app is not None:
            self._app.__exit__(None, None, None)
            self._app = None


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("nginx-stack"))
    run_camgate(["collectstatic", "--noinput", "--verbosity", "0"], stack.env)
    conf = render(stack.nginx_port, f"127.0.0.1:{stack.app_port}", stack.static_root, stack.root / "nginx")
    with ExitStack() as cleanup:
        cleanup.callback(stack.stop_app)
        stack.start_app()
        stack.nginx = start_nginx(conf, stack.root / "nginx", stack.nginx_port)
        cleanup.callback(stack.nginx.stop)
        yield stack


@pytest.fixture(scope="module")
def admin_token(stack) -> str:
    status, body = call(stack.base, "POST", "/api/auth-token/", body=ADMIN)
    assert status == 200, body
    return body["token"]


# --- the API contract, through nginx ---------------------------------------------------

@pytest.fixture
def admin_user(stack):
    """The contract's admin exists in the app's own database (created at its start)."""
    return ADMIN


@pytest.fixture
def base(stack, admin_token) -> str:
    """nginx's address, on a gateway with no cameras (each contract test expects that)."""
    status, cameras = call(stack.base, "GET", "/api/cameras/", admin_token)
    assert status == 200
    for camera in cameras:
        assert call(stack.base, "DELETE", f"/api/cameras/{camera['camera_id']}/", admin_token)[0] == 204
    return stack.base


def _fixtures_this_module_provides(test) -> bool:
    parametrized = {name.strip() for mark in getattr(test, "pytestmark", []) if mark.name == "parametrize"
                    for name in (mark.args[0].split(",") if isinstance(mark.args[0], str) else mark.args[0])}
    return set(inspect.signature(test).parameters) - parametrized <= {"base", "token", "admin_user"}


# Every contract test that needs only a server address, a token and the admin runs here
# again; new ones join automatically.
CONTRACT_TESTS = {name: test for name, test in vars(contract).items()
                  if name.startswith("test_") and callable(test) and _fixtures_this_module_provides(test)}
globals().update(CONTRACT_TESTS)


def test_the_whole_contract_runs_through_nginx():
    assert {"test_reference_flow", "test_not_found_codes", "test_auth_token_rejects_bad_credentials",
            "test_validation_errors_are_400", "test_paths_without_trailing_slash_are_served_not_redirected"} <= set(CONTRACT_TESTS)


# --- what the proxy itself must do -----------------------------------------------------

def echo(port: int, headers: dict, source: str = CLIENT) -> dict:
    status, _, body = http_request(port, "GET", ECHO_PATH, headers=headers, source=source)
    assert status == 200, body
    return json.loads(body)


def test_token_host_and_forwarded_headers_reach_django(stack, admin_token):
    seen = echo(stack.nginx_port, {"Authorization": f"Token {admin_token}", "Host": "gw.example.test:8080"})
    assert seen["authorization"] == f"Token {admin_token}"
    assert seen["host"] == "gw.example.test:8080"
    assert seen["x_forwarded_host"] == "gw.example.test:8080"
    assert seen["x_forwarded_proto"] == "http"
    assert seen["remote_addr"] == CLIENT


def test_client_address_comes_from_the_trusted_proxy_only(stack):
    forged = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}

    # Through nginx: nginx appends the address it saw, Django (trusting nginx's
    # 127.0.0.1) takes that right-most entry; the forged one and the forged https lose.
    seen = echo(stack.nginx_port, forged)
    assert seen["x_forwarded_for"] == f"198.51.100.7, {CLIENT}"
    assert (seen["remote_addr"], seen["scheme"]) == (CLIENT, "http")

    # Straight to Django from an untrusted address: the headers are ignored.
    seen = echo(stack.app_port, forged)
    assert (seen["remote_addr"], seen["scheme"]) == (CLIENT, "http")

    # Straight to Django from the trusted address: believed. Trust alone decides.
    seen = echo(stack.app_port, forged, source="127.0.0.1")
    assert (seen["remote_addr"], seen["scheme"]) == ("198.51.100.7", "https")


def _a_static_file(stack) -> Path:
    css = sorted(path for path in stack.static_root.rglob("*.css") if path.stat().st_size > 2048)
    assert css, "collectstatic produced no CSS file"
    return css[0]


def test_static_files_come_from_nginx_compressed(stack):
    path = _a_static_file(stack)
    url = "/static/" + path.relative_to(stack.static_root).as_posix()
    status, headers, body = http_request(stack.nginx_port, "GET", url, headers={"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == path.read_bytes()
    # nginx's `expires 1h`; whitenoise, had Django served it, says max-age=60.
    assert headers["cache-control"] == "max-age=3600"


def test_api_responses_are_compressed(stack, admin_token):
    status, headers, body = http_request(stack.nginx_port, "GET", "/api/schema/",
                                         headers={"Authorization": f"Token {admin_token}", "Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert b"/api/add-camera/" in gzip.decompress(body)


def test_body_limit_matches_django(stack, admin_token):
    auth = {"Authorization": f"Token {admin_token}", "Content-Type": "application/json"}
    prefix, suffix = b'{"ip": "10.0.0.1", "serial": "', b'"}'
    exactly_the_limit = prefix + b"x" * (ONE_MIB - len(prefix) - len(suffix)) + suffix
    assert len(exactly_the_limit) == ONE_MIB

    # At the limit, nginx passes it and Django judges it (a serial that long is a 400).
    status, _, body = http_request(stack.nginx_port, "POST", "/api/add-camera/", body=exactly_the_limit, headers=auth)
    assert status == 400 and "serial" in json.loads(body)

    # One byte more, announced or chunked, nginx refuses it itself, in the API's shape.
    over = exactly_the_limit + b" "
    status, headers, body = http_request(stack.nginx_port, "POST", "/api/add-camera/", body=over, headers=auth)
    assert status == 413 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"detail": f"Request body is larger than {ONE_MIB} bytes."}
    chunks = (over[i:i + 65536] for i in range(0, len(over), 65536))
    status, _, body = http_request(stack.nginx_port, "POST", "/api/add-camera/", body=chunks, headers=auth, encode_chunked=True)
    assert status == 413
    log = stack.nginx.error_log()
    assert "client intended to send too large body" in log
    assert "client intended to send too large chunked body" in log


def test_slow_clients_at_nginx_stop_nobody(stack):
    # nginx reads whole requests before it passes them on; its own limits (worker
    # connections, header timeout) must leave room for the normal client too.
    held = []
    try:
        for _ in range(300):
            client = socket.create_connection(("127.0.0.1", stack.nginx_port), timeout=15)
            client.sendall(b"GET /api/cameras/ HTTP/1.1\r\nHost: gw\r\n")
            held.append(client)
        assert call(stack.base, "GET", "/healthz") == (200, {"status": "ok"})
    finally:
        for client in held:
            client.close()


def test_health_endpoint_through_nginx(stack):
    assert call(stack.base, "GET", "/healthz") == (200, {"status": "ok"})


# Last: it stops the web server (and starts it again).
def test_static_files_outlive_the_web_server(stack):
    path = _a_static_file(stack)
    url = "/static/" + path.relative_to(stack.static_root).as_posix()
    stack.stop_app()
    try:
        status, _, body = http_request(stack.nginx_port, "GET", url)
        assert (status, body) == (200, path.read_bytes())
        status, headers, body = http_request(stack.nginx_port, "GET", "/api/cameras/")
        assert status == 502 and headers["content-type"] == "application/json"
        assert "not answering" in json.loads(body)["detail"]
    finally:
        stack.start_app()
    assert call(stack.base, "GET", "/healthz") == (200, {"status": "ok"})
