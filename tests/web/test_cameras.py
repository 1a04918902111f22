"""Adding, editing and deleting cameras through the forms."""

from __future__ import annotations

import base64

import pytest

from camgate.cameras.models import Camera, TunnelStatus
from tests.conftest import make_token

pytestmark = pytest.mark.django_db

VALID = {"ip": "192.0.2.20", "http_port": "80", "rtsp_port": "554", "enabled": "on"}


def errors_of(response) -> dict:
    return {name: [str(e) for e in errs] for name, errs in response.context["form"].errors.items()}


def test_add_form_is_prefilled_with_the_usual_ports(admin_client):
    response = admin_client.get("/add-camera")
    form = response.context["form"]
    assert form["http_port"].value() == 80 and form["rtsp_port"].value() == 554
    assert form["enabled"].value() is True
    html = response.content.decode()
    assert 'name="http_port" value="80"' in html and 'name="rtsp_port" value="554"' in html
    assert '<label for="id_ip">' in html


def test_add_saves_and_pokes_the_agent(admin_client, agent_calls):
    token = make_token(501)
    response = admin_client.post("/add-camera", {**VALID, "access_token": token, "serial": "SN1",
                                                 "username": "viewer", "password": "cam-pw-1"}, follow=True)
    camera = Camera.objects.get()
    assert (camera.ip, camera.http_port, camera.rtsp_port, camera.camid) == ("192.0.2.20", 80, 554, 501)
    assert camera.enabled and not camera.rtsp_only
    assert camera.password == "cam-pw-1" and camera.local_token == token
    assert agent_calls == ["reconcile"]
    assert f"Camera {camera.camera_id} (192.0.2.20) added." in response.content.decode()


def test_the_stream_path_is_saved_and_shown_again(admin_client, agent_calls):
    admin_client.post("/add-camera", {**VALID, "rtsp_path": "/cam/realmonitor?channel=1&subtype=0"})
    camera = Camera.objects.get()
    assert camera.rtsp_path == "/cam/realmonitor?channel=1&subtype=0" and agent_calls == ["reconcile"]
    html = admin_client.get(f"/edit-camera/{camera.camera_id}").content.decode()
    assert 'value="/cam/realmonitor?channel=1&amp;subtype=0"' in html


def test_name_and_onvif_port_are_saved_and_shown_again(admin_client, agent_calls):
    admin_client.post("/add-camera", {**VALID, "name": "Gate <east>", "onvif_port": "8080"})
    camera = Camera.objects.get()
    assert (camera.name, camera.onvif_port) == ("Gate <east>", 8080)
    html = admin_client.get(f"/edit-camera/{camera.camera_id}").content.decode()
    assert 'value="Gate &lt;east&gt;"' in html and 'name="onvif_port" value="8080"' in html
    admin_client.post(f"/edit-camera/{camera.camera_id}", {**VALID, "name": "", "onvif_port": ""})
    camera.refresh_from_db()
    assert (camera.name, camera.onvif_port) == ("", None)
    response = admin_client.post(f"/edit-camera/{camera.camera_id}", {**VALID, "name": "n" * 101, "onvif_port": "0"})
    assert set(errors_of(response)) == {"name", "onvif_port"}


def test_empty_serial_and_mac_are_stored_as_null_like_the_api(admin_client, agent_calls):
    admin_client.post("/add-camera", VALID)
    camera = Camera.objects.get()
    assert camera.serial is None and camera.mac is None


def test_empty_serial_and_mac_are_null_in_the_api_too(api):
    added = api.post("/api/add-camera/", {"ip": "10.0.0.1", "serial": "", "mac": ""}, format="json").json()
    assert (added["serial"], added["mac"]) == (None, None)
    edited = api.post(f"/api/edit-camera/{added['camera_id']}/", {"serial": "S1", "mac": ""}, format="json").json()
    assert (edited["serial"], edited["mac"]) == ("S1", None)


@pytest.mark.parametrize("field,value,message", [
    ("http_port", "70000", "Port must be between 1 and 65535."),
    ("rtsp_port", "0", "Port must be between 1 and 65535."),
    ("http_port", "eighty", "Enter a port number (1-65535)."),
    ("rtsp_port", "", "This field is required."),
    ("ip", "not a host!", "is not an IPv4 or IPv6 address or a host name."),
    ("ip", "   ", "This field is required."),
    ("access_token", "not-base64", "Invalid access token"),
    ("access_token", make_token(2**63), "does not fit in 64 bits"),  # was a 500 (OverflowError on save)
    ("access_token", base64.b64encode(b'{"camid": 1, "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}").decode(),
     "nested too deeply"),  # was a 500 (RecursionError in the token decoder)
    ("ip", "cam\x00era", "Null characters are not allowed."),
    ("http_port", "8\x000", "Enter a port number (1-65535)."),
    ("rtsp_port", "9" * 40, "Port must be between 1 and 65535."),
    ("rtsp_path", "Streaming/Channels/101", "must start with '/'"),
    ("rtsp_path", "/live?user=admin&password=1234", "may not carry a password"),
    ("rtsp_path", "/a b", "spaces or control characters"),
])
def test_bad_fields_get_their_own_message_and_nothing_is_saved(admin_client, agent_calls, field, value, message):
    response = admin_client.post("/add-camera", {**VALID, field: value})
    assert response.status_code == 400
    errors = errors_of(response)
    assert list(errors) == [field]
    assert message in errors[field][0]
    html = response.content.decode()
    assert f'id="id_{field}_error"' in html and 'aria-invalid="true"' in html
    assert not Camera.objects.exists() and agent_calls == []


def test_ip_is_normalised_like_the_api(admin_client, agent_calls):
    admin_client.post("/add-camera", {**VALID, "ip": " [2001:db8::7] "})
    assert Camera.objects.get().ip == "2001:db8::7"


def test_duplicate_camid_is_refused_on_add_and_edit(admin_client, agent_calls):
    first = Camera.objects.create(ip="192.0.2.1", access_token=make_token(77))
    second = Camera.objects.create(ip="192.0.2.2")
    response = admin_client.post("/add-camera", {**VALID, "access_token": make_token(77)})
    assert response.status_code == 400
    assert errors_of(response)["access_token"] == [
        f"A camera with camid 77 already exists on this gateway (camera {first.camera_id})."
    ]
    response = admin_client.post(f"/edit-camera/{second.camera_id}", {**VALID, "access_token": make_token(77, x=1)})
    assert response.status_code == 400 and "access_token" in errors_of(response)
    # A camera keeping its own token is not a duplicate of itself.
    response = admin_client.post(f"/edit-camera/{first.camera_id}", {**VALID, "access_token": make_token(77)})
    assert response.status_code == 302
    assert Camera.objects.count() == 2 and agent_calls == ["reconcile"]


def test_password_is_never_rendered(admin_client, camera, agent_calls):
    pages = [f"/edit-camera/{camera.camera_id}", f"/delete/{camera.camera_id}", "/", "/status.json"]
    for page in pages:
        assert "stored-pw-7c1e" not in admin_client.get(page).content.decode(), page
    # Nor echoed back after a failed submit.
    response = admin_client.post(f"/edit-camera/{camera.camera_id}", {**VALID, "http_port": "0", "password": "typed-pw-93a"})
    assert response.status_code == 400
    assert "typed-pw-93a" not in response.content.decode()
    assert "stored-pw-7c1e" not in response.content.decode()
    assert "A password is stored" in response.content.decode()


def test_edit_with_blank_password_keeps_the_stored_one(admin_client, camera, agent_calls):
    response = admin_client.post(f"/edit-camera/{camera.camera_id}", {**VALID, "ip": "192.0.2.11", "password": ""})
    assert response.status_code == 302
    camera.refresh_from_db()
    assert camera.ip == "192.0.2.11" and camera.password == "stored-pw-7c1e"
    assert agent_calls == ["reconcile"]


def test_edit_can_replace_or_remove_the_password(admin_client, camera, agent_calls):
    admin_client.post(f"/edit-camera/{camera.camera_id}", {**VALID, "password": "new-pw"})
    camera.refresh_from_db()
    assert camera.password == "new-pw"
    admin_client.post(f"/edit-camera/{camera.camera_id}", {**VALID, "clear_password": "on"})
    camera.refresh_from_db()
    assert camera.password == ""


def test_edit_form_shows_the_current_values(admin_client, camera):
    camera.rtsp_port = 8554
    camera.rtsp_only = True
    camera.save()
    form = admin_client.get(f"/edit-camera/{camera.camera_id}/").context["form"]
    assert form["ip"].value() == "192.0.2.10" and form["rtsp_port"].value() == 8554
    assert form["rtsp_only"].value() is True


def test_unchecking_active_deactivates(admin_client, camera, agent_calls):
    data = {k: v for k, v in VALID.items() if k != "enabled"}
    admin_client.post(f"/edit-camera/{camera.camera_id}", data)
    camera.refresh_from_db()
    assert camera.enabled is False


def test_delete_asks_first_then_deletes_on_post(admin_client, camera, agent_calls):
    TunnelStatus.objects.create(key=f"camera-{camera.camera_id}", camera=camera, state="up")
    response = admin_client.get(f"/delete/{camera.camera_id}")
    assert response.status_code == 200
    assert b"Delete camera" in response.content and b"192.0.2.10" in response.content
    assert Camera.objects.exists() and agent_calls == []

    response = admin_client.post(f"/delete/{camera.camera_id}/", follow=True)
    assert not Camera.objects.exists() and not TunnelStatus.objects.exists()
    assert agent_calls == ["reconcile"]
    assert f"Camera {camera.camera_id} (192.0.2.10) deleted." in response.content.decode()
    assert admin_client.post(f"/delete/{camera.camera_id}").status_code == 404


def test_camera_ids_are_local_ids_only(admin_client):
    # The API also resolves a VMS camid; the UI's links always carry the local id, and a
    # delete page must never quietly show a different camera than the one linked.
    Camera.objects.create(ip="192.0.2.1", access_token=make_token(4242))
    assert admin_client.get("/edit-camera/4242").status_code == 404
