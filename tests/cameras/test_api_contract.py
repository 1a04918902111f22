"""Replays every request of gateway-rest-api-reference.txt against a real server on
loopback (only the host changed) and checks each documented status code and shape."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.conftest import make_token

pytestmark = pytest.mark.django_db(transaction=True)

CAMERA_KEYS = {"camera_id", "access_token", "ip", "http_port", "rtsp_port", "is_active", "pid", "serial", "mac", "rtsp_only"}


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect must show up as itself: the API never redirects (it would drop a body).
    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def call(base: str, method: str, path: str, token: str | None = None, body=None, raw: bytes | None = None):
    headers = {}
    if token:
        headers["Authorization"] = f"Token {token}"
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with _OPENER.open(request, timeout=10) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    return status, (json.loads(payload) if payload else None)


@pytest.fixture
def base(live_server) -> str:
    return live_server.url


@pytest.fixture
def token(base, admin_user) -> str:
    status, body = call(base, "POST", "/api/auth-token/", body={"username": "super", "password": "1234"})
    assert status == 200
    assert set(body) == {"token"}
    assert len(body["token"]) == 40 and int(body["token"], 16) >= 0
    return body["token"]


def test_auth_token_rejects_bad_credentials(base, admin_user):
    status, body = call(base, "POST", "/api/auth-token/", body={"username": "super", "password": "wrong"})
    assert status == 400
    status, _ = call(base, "POST", "/api/auth-token/", raw=b"{not json")
    assert status == 400


def test_auth_token_is_stable(base, token):
    status, body = call(base, "POST", "/api/auth-token/", body={"username": "super", "password": "1234"})
    assert (status, body) == (200, {"token": token})


def test_reference_flow(base, token):
    status, body = call(base, "GET", "/api/cameras/", token)
    assert (status, body) == (200, [])

    # "Add camera" exactly as the reference's curl example sends it.
    status, added = call(base, "POST", "/api/add-camera/", token, body={
        "ip": "104.251.103.214", "http_port": 7080, "rtsp_port": 7554, "is_active": False,
        "pid": None, "serial": "FAKECAMERA", "mac": "FAKECAMERA",
    })
    assert status == 201
    assert CAMERA_KEYS <= set(added)
    assert added["access_token"] == "" and added["ip"] == "104.251.103.214"
    assert (added["http_port"], added["rtsp_port"]) == (7080, 7554)
    assert added["is_active"] is False and added["pid"] is None and added["rtsp_only"] is False
    assert (added["serial"], added["mac"]) == ("FAKECAMERA", "FAKECAMERA")
    local_id = added["camera_id"]

    status, listed = call(base, "GET", "/api/cameras/", token)
    assert status == 200 and [c["camera_id"] for c in listed] == [local_id]
    assert CAMERA_KEYS <= set(listed[0])

    # A camera carrying a VMS token, then addressed by the VMS's camid.
    vms_token = make_token(15446)
    status, second = call(base, "POST", "/api/add-camera/", token, body={"ip": "192.168.2.10", "access_token": vms_token, "is_active": True, "rtsp_only": False, "username": "admin", "password": "pass"})
    assert status == 201 and second["username"] == "admin" and "password" not in second

    status, edited = call(base, "POST", "/api/edit-camera/15446/", token, body={"ip": "192.168.2.136"})
    assert status == 200
    assert edited["camera_id"] == second["camera_id"] and edited["ip"] == "192.168.2.136"
    assert (edited["http_port"], edited["rtsp_port"]) == (80, 554)
    assert edited["access_token"] == vms_token

    status, info = call(base, "GET", "/api/camera/15446/", token)
    assert status == 200
    assert CAMERA_KEYS | {"local_token"} <= set(info)
    assert info["local_token"] == vms_token and info["ip"] == "192.168.2.136"

    status, body = call(base, "DELETE", f"/api/cameras/{local_id}/", token)
    assert (status, body) == (204, None)
    status, _ = call(base, "DELETE", f"/api/cameras/{local_id}/", token)
    assert status == 404
    status, _ = call(base, "DELETE", "/api/cameras/15446/", token)
    assert status == 204
    assert call(base, "GET", "/api/cameras/", token) == (200, [])


def test_not_found_codes(base, token):
    assert call(base, "GET", "/api/camera/4242/", token)[0] == 404
    assert call(base, "POST", "/api/edit-camera/4242/", token, body={"ip": "10.0.0.1"})[0] == 404
    assert call(base, "DELETE", "/api/cameras/4242/", token)[0] == 404


def test_validation_errors_are_400(base, token):
    status, body = call(base, "POST", "/api/add-camera/", token, body={"http_port": 80})
    assert status == 400 and "ip" in body
    status, added = call(base, "POST", "/api/add-camera/", token, body={"ip": "10.0.0.5"})
    assert status == 201
    status, body = call(base, "POST", f"/api/edit-camera/{added['camera_id']}/", token, body={"rtsp_port": 70000})
    assert status == 400 and "rtsp_port" in body


def test_restart_answers_500_with_reason_when_agent_is_down(base, token):
    status, body = call(base, "POST", "/api/restart/", token)
    assert status == 500
    assert "agent" in body["error"]


@pytest.mark.parametrize("path", ["/api/cameras", "/api/add-camera", "/api/camera/1", "/api/edit-camera/1", "/api/restart", "/api/auth-token"])
def test_paths_without_trailing_slash_are_served_not_redirected(base, token, path):
    method = "GET" if path.startswith(("/api/cameras", "/api/camera/")) else "POST"
    body = {"username": "super", "password": "1234"} if path == "/api/auth-token" else {"ip": "10.0.0.9"}
    status, _ = call(base, method, path, token, body=None if method == "GET" else body)
    assert status not in (301, 302, 307, 308, 405)
    if path == "/api/add-camera":
        assert status == 201  # the body survived
