"""`camgate relay` as an operator scripts it: flags, TLS, the admin token from the
environment, devices and public ports kept in its state file across a restart."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from camgate.uplink.tokens import decode_access_token
from tests.support.processes import camgate_env, camgate_process, free_port

pytestmark = pytest.mark.e2e

ADMIN = "relay-admin-secret"


def https_json(url: str, cafile: str, method: str = "GET", body=None, headers=None):
    context = ssl.create_default_context(cafile=cafile)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for_https(url: str, cafile: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            https_json(url, cafile)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_relay_command_serves_tls_and_keeps_devices_across_restarts(tmp_path, certificate):
    cert, key = certificate
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    admin = {"Authorization": f"Bearer {ADMIN}"}
    env = camgate_env(tmp_path / "data", CAMGATE_RELAY_ADMIN_TOKEN=ADMIN)
    args = ["relay", "--host", "127.0.0.1", "--port", str(port), "--public-host", "relay.test",
            "--tls-cert", cert, "--tls-key", key, "--state", str(tmp_path / "relay.json")]

    with camgate_process(args, env, tmp_path / "relay.log"):
        wait_for_https(base + "/api/devices", cert)
        assert https_json(base + "/api/devices", cert)[0] == 401  # no admin token
        status, body = https_json(base + "/api/devices", cert, "POST", {"camid": 1001, "cmngrid": 1}, admin)
        assert status == 201 and body["camid"] == 1001
        token = decode_access_token(body["access_token"])
        # Reached over TLS on its own port, the token names the public host and port.
        assert token.uplink == f"relay.test:{port}"
        status, endpoint = https_json(base + "/api/ws-endpoint", cert, headers={"Authorization": body["access_token"]})
        assert (status, endpoint) == (200, {"domain": f"relay.test:{port}", "path": "/ra-proxy"})
        assert https_json(base + "/api/device/1001", cert, headers=admin)[0] == 404  # no tunnel yet

    with camgate_process(args, env, tmp_path / "relay.log"):
        wait_for_https(base + "/api/devices", cert)
        status, endpoint = https_json(base + "/api/ws-endpoint", cert, headers={"Authorization": body["access_token"]})
        assert status == 200  # the device and its token survived the restart
    assert ADMIN not in (tmp_path / "relay.log").read_text()
    assert body["access_token"] not in (tmp_path / "relay.log").read_text()
    assert "event loop: uvloop" in (tmp_path / "relay.log").read_text()  # installed, so chosen


def test_relay_command_refuses_half_a_tls_pair(tmp_path, certificate):
    cert, _ = certificate
    result = subprocess.run([sys.executable, "-m", "camgate.cli", "relay", "--tls-cert", cert],
                            env=camgate_env(tmp_path / "data"), capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "--tls-cert and --tls-key go together" in result.stderr
