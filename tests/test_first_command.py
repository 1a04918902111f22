"""The README's first command, `camgate run`, as a new user meets it: real processes,
real TCP, and the data directory surviving a restart."""

from __future__ import annotations

import pytest

from tests.conftest import make_token
from tests.support.processes import camgate_env, camgate_process, free_port, http_json, wait_for_http

pytestmark = pytest.mark.e2e


def test_camgate_run_serves_the_api_and_keeps_data_across_restarts(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = camgate_env(tmp_path / "data")
    log = tmp_path / "camgate.log"
    args = ["run", "--port", str(port), "--tunnel-port", str(free_port())]

    with camgate_process(args, env, log):
        wait_for_http(base + "/api/cameras/")
        status, body = http_json("POST", base + "/api/auth-token/", {"username": "admin", "password": "admin"})
        assert status == 200
        token = body["token"]
        status, camera = http_json("POST", base + "/api/add-camera/", {"ip": "192.0.2.10", "access_token": make_token(321), "enabled": False, "password": "pw-9f3c-secret"}, token)
        assert status == 201
        uuid_before = (tmp_path / "data" / "gateway-uuid").read_text()

    assert "default password" in log.read_text()

    with camgate_process(args, env, log):
        wait_for_http(base + "/api/cameras/")
        status, body = http_json("POST", base + "/api/auth-token/", {"username": "admin", "password": "admin"})
        assert (status, body["token"]) == (200, token)
        status, cameras = http_json("GET", base + "/api/cameras/", token=token)
        assert status == 200 and cameras == [camera]
        status, detail = http_json("GET", base + "/api/camera/321/", token=token)
        assert status == 200 and detail["camera_id"] == camera["camera_id"]
    assert (tmp_path / "data" / "gateway-uuid").read_text() == uuid_before
    assert "pw-9f3c-secret" not in log.read_text()
