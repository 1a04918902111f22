"""Bad input gets a 400 naming the field, and loses nothing."""

from __future__ import annotations

import base64
import json

import pytest

from camgate.cameras.models import Camera
from tests.conftest import make_token

pytestmark = pytest.mark.django_db


def add(api, **fields):
    return api.post("/api/add-camera/", fields, format="json")


def test_missing_ip(api):
    response = add(api, http_port=80)
    assert response.status_code == 400
    assert "required" in response.json()["ip"][0]


@pytest.mark.parametrize("ip", ["192.168.1.20", "::1", "[fe80::1]", "fe80::1%eth0", "fe80::1%wlp2s0.100", "cam-3.site.local", "camera"])
def test_valid_addresses(api, ip):
    response = add(api, ip=ip)
    assert response.status_code == 201, response.json()


@pytest.mark.parametrize("ip", ["", "300.1.1.1", "bad host", "-x.example", "a" * 64 + ".com", "1.2.3",
                                "fe80::1%<script>", "fe80::1%et h0", "fe80::1%" + "e" * 16, "fe80::1%"])
def test_invalid_addresses(api, ip):
    response = add(api, ip=ip)
    assert response.status_code == 400
    assert "ip" in response.json()


@pytest.mark.parametrize(
    "field, value",
    [
        ("http_port", 0), ("http_port", 65536), ("http_port", "eighty"), ("http_port", True), ("http_port", 80.5),
        ("http_port", "80.5"), ("http_port", "70000"), ("http_port", [80]),
        ("rtsp_port", -1), ("rtsp_port", None),
        ("enabled", "maybe"), ("enabled", 2), ("rtsp_only", "yes please"), ("rtsp_only", None),
        ("ip", 42), ("ip", True), ("serial", True), ("mac", ["x"]), ("username", {}), ("access_token", 5),
    ],
)
def test_wrong_types_name_the_field(api, field, value):
    body = {"ip": "10.0.0.1", field: value}
    response = add(api, **body)
    assert response.status_code == 400
    assert field in response.json()
    assert Camera.objects.count() == 0


def test_unknown_fields_are_ignored(api):
    response = add(api, ip="10.0.0.1", colour="blue", pid=99)
    assert response.status_code == 201
    assert "colour" not in response.json()
    assert response.json()["pid"] is None  # pid is the agent's fact, not the caller's


@pytest.mark.parametrize("raw", [b"not json", b"{", b"[1, 2]", b'"a string"', b"42"])
def test_body_that_is_not_a_json_object(api, raw):
    response = api.post("/api/add-camera/", raw, content_type="application/json")
    assert response.status_code == 400
    assert Camera.objects.count() == 0


def test_huge_body_is_refused(api):
    raw = json.dumps({"ip": "10.0.0.1", "serial": "x" * (2 * 1024 * 1024)}).encode()
    response = api.post("/api/add-camera/", raw, content_type="application/json")
    assert response.status_code == 413
    assert "too large" in response.json()["detail"] or "larger" in response.json()["detail"]
    assert Camera.objects.count() == 0


@pytest.mark.parametrize(
    "token, why",
    [
        ("not base64 at all!", "base64"),
        (base64.b64encode(b"plain text").decode(), "JSON"),
        (base64.b64encode(b"[1]").decode(), "object"),
        (base64.b64encode(b'{"camid": "12"}').decode(), "camid"),
        (base64.b64encode(b'{"camid": true}').decode(), "camid"),
        (base64.b64encode(b'{"cmngrid": 3}').decode(), "camid"),
    ],
)
def test_invalid_access_token(api, token, why):
    response = add(api, ip="10.0.0.1", access_token=token)
    assert response.status_code == 400
    assert why in response.json()["access_token"][0]


def test_empty_access_token_is_allowed(api):
    response = add(api, ip="10.0.0.1", access_token="", serial="SER1", mac="AA:BB")
    assert response.status_code == 201


def test_token_without_padding_is_accepted(api):
    token = make_token(77).rstrip("=")
    response = add(api, ip="10.0.0.1", access_token=token)
    assert response.status_code == 201
    assert Camera.objects.get().camid == 77


def test_duplicate_camid_is_refused(api):
    assert add(api, ip="10.0.0.1", access_token=make_token(500)).status_code == 201
    # Same camid in a token with different other keys: still the same VMS camera.
    response = add(api, ip="10.0.0.2", access_token=make_token(500, access="watch"))
    assert response.status_code == 400
    assert "500" in response.json()["access_token"][0]
    assert Camera.objects.count() == 1


def test_edit_cannot_steal_another_cameras_camid(api):
    add(api, ip="10.0.0.1", access_token=make_token(1))
    second = add(api, ip="10.0.0.2").json()
    response = api.post(f"/api/edit-camera/{second['camera_id']}/", {"access_token": make_token(1)}, format="json")
    assert response.status_code == 400 and "access_token" in response.json()
    # Re-saving a camera with its own token is not a duplicate.
    first = Camera.objects.get(camid=1)
    response = api.post(f"/api/edit-camera/{first.camera_id}/", {"access_token": make_token(1), "ip": "10.0.0.3"}, format="json")
    assert response.status_code == 200


def test_edit_is_partial_and_bad_edit_changes_nothing(api):
    camera = add(api, ip="10.0.0.1", http_port=8080, serial="S").json()
    response = api.post(f"/api/edit-camera/{camera['camera_id']}/", {"ip": "10.0.0.2", "rtsp_port": "x"}, format="json")
    assert response.status_code == 400
    stored = Camera.objects.get()
    assert (stored.ip, stored.http_port, stored.serial) == ("10.0.0.1", 8080, "S")
    response = api.post(f"/api/edit-camera/{camera['camera_id']}/", {"rtsp_only": True}, format="json")
    assert response.status_code == 200
    assert response.json()["rtsp_only"] is True and response.json()["http_port"] == 8080


def test_password_is_write_only(api):
    camera = add(api, ip="10.0.0.1", username="admin", password="s3cret!").json()
    assert "password" not in camera
    for path in ["/api/cameras/", f"/api/camera/{camera['camera_id']}/"]:
        assert "s3cret!" not in api.get(path).content.decode()
    edited = api.post(f"/api/edit-camera/{camera['camera_id']}/", {"password": "other"}, format="json")
    assert "password" not in edited.json()
    assert Camera.objects.get().password == "other"
