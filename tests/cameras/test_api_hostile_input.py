"""Hostile or odd requests get a clear 4xx naming what is wrong (or a 2xx where the
input is valid), never a 500, and change nothing they should not.

Regression tests for what the schema conformance tests, the schemathesis run
(test_api_fuzz.py) and probing a real `camgate web` with curl found.
"""

from __future__ import annotations

import base64
import json

import pytest

from camgate.cameras.models import Camera
from tests.conftest import make_token

pytestmark = pytest.mark.django_db

INT64_MAX = 2**63 - 1


def token_with_camid(camid) -> str:
    return base64.b64encode(json.dumps({"camid": camid}).encode()).decode()


@pytest.fixture
def camera(api) -> dict:
    response = api.post("/api/add-camera/", {"ip": "10.0.0.1", "http_port": 8080}, format="json")
    assert response.status_code == 201
    return response.json()


def post_raw(client, path, raw: bytes | str, content_type="application/json"):
    return client.post(path, raw, content_type=content_type)


# Bug: Python's JSON decoder raises RecursionError (not ValueError) on deep nesting, and
# DRF let it through: a 2 KB body of "[[[[..." was a 500 on every JSON route.
@pytest.mark.parametrize("raw", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"ip": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001,
    b"[" * 2000,  # not even closed
], ids=["arrays", "objects", "unclosed"])
@pytest.mark.parametrize("path", ["/api/add-camera/", "/api/edit-camera/{id}/", "/api/auth-token/"])
def test_deeply_nested_json_is_a_400(api, camera, raw, path):
    response = post_raw(api, path.format(id=camera["camera_id"]), raw)
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
    assert Camera.objects.count() == 1 and Camera.objects.get().ip == "10.0.0.1"


def test_json_nested_a_little_is_still_read(api):
    body = {"ip": "10.0.0.2", "extra": json.loads("[" * 200 + "]" * 200)}  # unknown field: ignored
    assert api.post("/api/add-camera/", body, format="json").status_code == 201


# Bug: a token whose camid does not fit the 64-bit camid column passed validation and
# crashed the INSERT/UPDATE (OverflowError): 500 on add-camera and edit-camera.
@pytest.mark.parametrize("camid", [2**63, -(2**63) - 1, 99999999999999999999, 10**300], ids=["2^63", "-2^63-1", "20 digits", "10^300"])
def test_a_camid_beyond_64_bits_is_a_400_on_access_token(api, camera, camid):
    response = api.post("/api/add-camera/", {"ip": "10.0.0.2", "access_token": token_with_camid(camid)}, format="json")
    assert response.status_code == 400
    assert "64 bits" in response.json()["access_token"][0]
    response = api.post(f"/api/edit-camera/{camera['camera_id']}/", {"access_token": token_with_camid(camid)}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["access_token"]
    assert Camera.objects.count() == 1 and Camera.objects.get().access_token == ""


# Bug: JSON nested deeply *inside* a base64 access_token raised RecursionError in the
# token decoder (the body itself is fine JSON): 500 on add-camera and edit-camera.
@pytest.mark.parametrize("payload", [
    '{"camid": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
    '{"a": ' * 100_000,
    '{"camid": ' + "7" * 5000 + "}",  # past Python's 4300-digit int-from-text limit
], ids=["nested arrays", "nested objects", "5000-digit camid"])
def test_a_token_hiding_hostile_json_is_a_400_on_access_token(api, camera, payload):
    token = base64.b64encode(payload.encode()).decode()
    response = api.post("/api/add-camera/", {"ip": "10.0.0.2", "access_token": token}, format="json")
    assert response.status_code == 400
    assert "Invalid access token" in response.json()["access_token"][0]
    response = api.post(f"/api/edit-camera/{camera['camera_id']}/", {"access_token": token}, format="json")
    assert response.status_code == 400 and list(response.json()) == ["access_token"]
    assert Camera.objects.count() == 1 and Camera.objects.get().access_token == ""


@pytest.mark.parametrize("camid", [INT64_MAX, -(2**63), 0])
def test_camids_at_the_64_bit_limits_are_stored(api, camid):
    response = api.post("/api/add-camera/", {"ip": "10.0.0.2", "access_token": token_with_camid(camid)}, format="json")
    assert response.status_code == 201
    assert Camera.objects.get().camid == camid


def test_the_largest_camid_is_addressable_by_path(api):
    api.post("/api/add-camera/", {"ip": "10.0.0.2", "access_token": token_with_camid(INT64_MAX)}, format="json")
    response = api.get(f"/api/camera/{INT64_MAX}/")
    assert response.status_code == 200 and response.json()["ip"] == "10.0.0.2"


# Schema mismatch found by schemathesis: edit-camera documented a required body with a
# required ip, but a partial update with no body (or without ip) is valid and changes nothing.
@pytest.mark.parametrize("raw, content_type", [(b"", "application/json"), (b"", None), (b"{}", "application/json")])
def test_edit_with_an_empty_body_changes_nothing(api, camera, raw, content_type):
    if content_type is None:
        response = api.generic("POST", f"/api/edit-camera/{camera['camera_id']}/", raw)
    else:
        response = post_raw(api, f"/api/edit-camera/{camera['camera_id']}/", raw, content_type)
    assert response.status_code == 200
    assert {k: response.json()[k] for k in ("ip", "http_port")} == {"ip": "10.0.0.1", "http_port": 8080}


@pytest.mark.parametrize("content_type", ["application/json", None])
def test_add_with_an_empty_body_names_the_missing_ip(api, content_type):
    if content_type is None:
        response = api.generic("POST", "/api/add-camera/", b"")
    else:
        response = post_raw(api, "/api/add-camera/", b"", content_type)
    assert response.status_code == 400
    assert response.json() == {"ip": ["This field is required."]}
    assert not Camera.objects.exists()


@pytest.mark.parametrize("path, status", [
    ("/api/camera/9223372036854775807/", 404),          # the largest id: looked up, not there
    ("/api/camera/9223372036854775808/", 404),          # 19 digits, past 64 bits
    ("/api/camera/99999999999999999999/", 404),         # 20 digits
    ("/api/camera/123456789012345678901234567890/", 404),
    ("/api/camera/-1/", 404),
    ("/api/camera/1.5/", 404),
])
def test_ids_beyond_64_bits_or_not_integers_are_json_404s(api, camera, path, status):
    for method, route in [("get", path), ("delete", path.replace("/camera/", "/cameras/")),
                          ("post", path.replace("/camera/", "/edit-camera/"))]:
        response = getattr(api, method)(route)
        assert response.status_code == status, (method, route)
        assert response["Content-Type"] == "application/json" and "detail" in response.json()
    assert Camera.objects.count() == 1


def test_leading_zeros_name_the_same_camera(api, camera):
    response = api.get(f"/api/camera/000{camera['camera_id']}/")
    assert response.status_code == 200 and response.json()["camera_id"] == camera["camera_id"]


@pytest.mark.parametrize("raw, field", [
    (b'{"ip": "10.0.0.2", "http_port": 1e30}', "http_port"),
    (b'{"ip": "10.0.0.2", "http_port": 99999999999999999999}', "http_port"),
    (b'{"ip": "10.0.0.2", "rtsp_port": -99999999999999999999}', "rtsp_port"),
    (b'{"ip": "10.0.0.2", "rtsp_port": 1e400}', "rtsp_port"),  # infinity once decoded
    (b'{"ip": "10.0.0.2", "rtsp_port": 554.5}', "rtsp_port"),
])
def test_huge_or_fractional_numbers_for_ports_name_the_port(api, raw, field):
    response = post_raw(api, "/api/add-camera/", raw)
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert not Camera.objects.exists()


@pytest.mark.parametrize("raw", [
    b'{"ip": "\xff\xfe10.0.0.2"}',                  # not UTF-8
    b'{"ip": "10.0.0.2", "rtsp_port": NaN}',        # not JSON
    b'{"ip": "10.0.0.2", "http_port": Infinity}',
    b'{"ip": "10.0.0.2", "http_port": 1' + b"0" * 5000 + b"}",  # past Python's int digit limit
])
def test_bodies_that_are_not_json_are_a_400_detail(api, raw):
    response = post_raw(api, "/api/add-camera/", raw)
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
    assert not Camera.objects.exists()


@pytest.mark.parametrize("content_type, raw", [
    ("text/plain", '{"ip": "10.0.0.2"}'),
    ("application/xml", "<ip>10.0.0.2</ip>"),
])
def test_bodies_that_are_not_json_nor_forms_are_a_415_on_camera_routes(api, camera, content_type, raw):
    for path in ["/api/add-camera/", f"/api/edit-camera/{camera['camera_id']}/"]:
        response = post_raw(api, path, raw, content_type)
        assert response.status_code == 415, path
        assert content_type.split(";")[0] in response.json()["detail"]
    assert Camera.objects.count() == 1 and Camera.objects.get().ip == "10.0.0.1"


def test_auth_token_takes_a_form_too_but_not_text(admin_user):
    from rest_framework.test import APIClient

    client = APIClient()
    assert client.post("/api/auth-token/", "username=super&password=1234",
                       content_type="application/x-www-form-urlencoded").status_code == 200
    assert client.post("/api/auth-token/", '{"username": "super", "password": "1234"}',
                       content_type="text/plain").status_code == 415


@pytest.mark.parametrize("fields", [
    {"ip": None},
    {"is_active": None},
    {"rtsp_only": None},
    {"http_port": None, "rtsp_port": None},
    {"ip": None, "is_active": None, "rtsp_only": None, "http_port": None},
    {"access_token": None},
    {"username": None, "password": None},
])
def test_null_where_null_is_not_allowed_names_each_field(api, camera, fields):
    response = api.post("/api/add-camera/", {"ip": "10.0.0.2", **fields}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == set(fields)
    assert all("may not be null" in messages[0] for messages in response.json().values())
    response = api.post(f"/api/edit-camera/{camera['camera_id']}/", fields, format="json")
    assert response.status_code == 400 and set(response.json()) == set(fields)
    assert Camera.objects.count() == 1 and Camera.objects.get().ip == "10.0.0.1"


def test_null_serial_and_mac_are_accepted(api, camera):
    api.post(f"/api/edit-camera/{camera['camera_id']}/", {"serial": "S", "mac": "M"}, format="json")
    response = api.post(f"/api/edit-camera/{camera['camera_id']}/", {"serial": None, "mac": None}, format="json")
    assert response.status_code == 200 and (response.json()["serial"], response.json()["mac"]) == (None, None)
    response = api.post("/api/add-camera/", {"ip": "10.0.0.3", "serial": None, "mac": None, "pid": None}, format="json")
    assert response.status_code == 201


@pytest.mark.parametrize("raw", [b"null", b"[]", b'"x"', b"42", b"true"])
def test_edit_with_a_body_that_is_not_an_object(api, camera, raw):
    response = post_raw(api, f"/api/edit-camera/{camera['camera_id']}/", raw)
    assert response.status_code == 400
    assert list(response.json()) == ["non_field_errors"]


@pytest.mark.parametrize("fields, field", [
    ({"serial": "\ud800"}, "serial"),   # a lone surrogate: cannot be stored as UTF-8
    ({"username": "a\udfffb"}, "username"),
    ({"ip": "cam\u0000era"}, "ip"),
    ({"mac": "\u0000"}, "mac"),
])
def test_strings_that_cannot_be_stored_name_the_field(api, fields, field):
    response = post_raw(api, "/api/add-camera/", json.dumps({"ip": "10.0.0.2", **fields}))  # sent as \uXXXX escapes
    assert response.status_code == 400 and list(response.json()) == [field]


def test_duplicate_camid_through_a_huge_but_valid_token_still_names_the_holder(api):
    api.post("/api/add-camera/", {"ip": "10.0.0.2", "access_token": make_token(INT64_MAX)}, format="json")
    response = api.post("/api/add-camera/", {"ip": "10.0.0.3", "access_token": make_token(INT64_MAX)}, format="json")
    assert response.status_code == 400 and str(INT64_MAX) in response.json()["access_token"][0]
