"""What a stock DRF ModelSerializer (the reference) accepts, camgate accepts too, and
the reference's `is_active` is reported, not a switch the add can turn off."""

from __future__ import annotations

import pytest

from camgate.cameras.models import Camera
from tests.conftest import make_token


@pytest.mark.parametrize("given, stored", [(80, 80), ("80", 80), (" 8080 ", 8080), (80.0, 80), ("80.0", 80)])
def test_ports_as_numbers_numeric_text_or_integral_floats(api, given, stored):
    response = api.post("/api/add-camera/", {"ip": "10.0.0.1", "http_port": given, "rtsp_port": given}, format="json")
    assert response.status_code == 201, response.json()
    assert (response.json()["http_port"], response.json()["rtsp_port"]) == (stored, stored)


@pytest.mark.parametrize("given, stored", [
    (True, True), (False, False), (1, True), (0, False),
    ("true", True), ("TRUE", True), ("tRuE", True), ("1", True), ("yes", True), ("On", True),
    ("false", False), ("False", False), ("0", False), ("no", False), ("OFF", False), ("", False),
])
def test_booleans_as_drf_reads_them_in_any_case(api, given, stored):
    response = api.post("/api/add-camera/", {"ip": "10.0.0.1", "rtsp_only": given, "enabled": given}, format="json")
    assert response.status_code == 201, response.json()
    camera = Camera.objects.get()
    assert (camera.rtsp_only, camera.enabled) == (stored, stored)


def test_form_encoded_and_multipart_adds_and_edits(api):
    form = api.post("/api/add-camera/", {"ip": "10.0.0.1", "http_port": "8080", "rtsp_only": "on", "pid": ""})
    assert form.status_code == 201, form.json()
    assert (form.json()["http_port"], form.json()["rtsp_only"], form.json()["enabled"]) == (8080, True, True)
    multipart = api.post("/api/add-camera/", {"ip": "10.0.0.2", "rtsp_port": "8554"}, format="multipart")
    assert multipart.status_code == 201 and multipart.json()["rtsp_port"] == 8554
    # A partial form edit changes what it names and nothing else (a boolean left out
    # of a form is not read as false).
    edited = api.post(f"/api/edit-camera/{form.json()['camera_id']}/", "ip=10.0.0.9", content_type="application/x-www-form-urlencoded")
    assert edited.status_code == 200
    assert (edited.json()["ip"], edited.json()["rtsp_only"], edited.json()["http_port"]) == ("10.0.0.9", True, 8080)


def test_what_drf_refuses_is_a_400_naming_the_field(api):
    for field, value in [("http_port", 80.5), ("http_port", "eighty"), ("rtsp_port", "0"), ("http_port", True),
                         ("rtsp_only", "perhaps"), ("enabled", 7)]:
        response = api.post("/api/add-camera/", {"ip": "10.0.0.1", field: value}, format="json")
        assert response.status_code == 400 and list(response.json()) == [field], (field, value)
    assert not Camera.objects.exists()


def test_an_add_with_is_active_false_is_enabled_and_reports_is_active_from_its_tunnel(api):
    # The reference's cloud adds every camera this way and expects it served.
    response = api.post("/api/add-camera/", {"ip": "10.0.0.1", "is_active": False, "pid": None,
                                             "access_token": make_token(15446)}, format="json")
    assert response.status_code == 201
    assert (response.json()["is_active"], response.json()["pid"], response.json()["enabled"]) == (False, None, True)
    assert Camera.objects.get().enabled is True


def test_an_edit_of_is_active_switches_the_camera_and_enabled_wins_when_both_are_given(api):
    camera_id = api.post("/api/add-camera/", {"ip": "10.0.0.1"}, format="json").json()["camera_id"]
    assert api.post(f"/api/edit-camera/{camera_id}/", {"is_active": False}, format="json").json()["enabled"] is False
    assert api.post(f"/api/edit-camera/{camera_id}/", {"is_active": "true"}, format="json").json()["enabled"] is True
    both = api.post(f"/api/edit-camera/{camera_id}/", {"is_active": True, "enabled": False}, format="json")
    assert both.json()["enabled"] is False
    # Other edits leave the switch alone.
    assert api.post(f"/api/edit-camera/{camera_id}/", {"ip": "10.0.0.2"}, format="json").json()["enabled"] is False
