"""rtsp_path, tunnel endpoint URLs and the camera's health in the REST API."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from camgate.cameras.models import Camera, CameraHealth, TunnelStatus
from camgate.core import TunnelState

pytestmark = pytest.mark.django_db

RTSP_ENDPOINT = {"name": "rtsp", "proxy_host": "relay.example", "proxy_port": 20001, "url": "rtsp://relay.example:20001/"}
HTTP_ENDPOINT = {"name": "http", "proxy_host": "relay.example", "proxy_port": 20002, "url": "http://relay.example:20002/"}


def test_rtsp_path_is_taken_on_add_and_edit_and_shown(api):
    response = api.post("/api/add-camera/", {"ip": "10.0.0.5", "rtsp_path": "/Streaming/Channels/101?transportmode=unicast"}, format="json")
    assert response.status_code == 201, response.json()
    camera_id = response.json()["camera_id"]
    assert response.json()["rtsp_path"] == "/Streaming/Channels/101?transportmode=unicast"
    response = api.post(f"/api/edit-camera/{camera_id}/", {"rtsp_path": "/cam/realmonitor?channel=1&subtype=0"}, format="json")
    assert response.status_code == 200 and Camera.objects.get().rtsp_path == "/cam/realmonitor?channel=1&subtype=0"
    assert api.post("/api/add-camera/", {"ip": "10.0.0.6"}, format="json").json()["rtsp_path"] == ""


@pytest.mark.parametrize("path, words", [
    ("Streaming/Channels/101", "must start with '/'"),
    ("/a b", "spaces or control"),
    ("//admin:pw@10.0.0.5/x", "without a login"),
    ("/x" * 300, "no more than 512 characters"),
    (7, "Must be a string."),
], ids=["relative", "space", "credentials", "long", "number"])
def test_bad_rtsp_paths_are_400s_naming_the_field(api, path, words):
    response = api.post("/api/add-camera/", {"ip": "10.0.0.5", "rtsp_path": path}, format="json")
    assert response.status_code == 400
    (message,) = response.json()["rtsp_path"]
    assert words in message


def test_the_rtsp_url_carries_the_path_and_never_credentials(api):
    camera = Camera.objects.create(ip="10.0.0.5", rtsp_path="/Streaming/Channels/101", username="admin", password="s3cret")
    TunnelStatus.objects.create(key=f"camera-{camera.camera_id}", camera=camera, state=TunnelState.UP,
                                endpoints=[HTTP_ENDPOINT, RTSP_ENDPOINT])
    body = api.get(f"/api/camera/{camera.camera_id}/").json()
    assert [e["url"] for e in body["tunnel"]["endpoints"]] == [
        "http://relay.example:20002/", "rtsp://relay.example:20001/Streaming/Channels/101"]
    listed = api.get("/api/cameras/").content.decode()
    assert "s3cret" not in listed and "admin@" not in listed


@pytest.mark.parametrize("state", [TunnelState.FAILED, TunnelState.STOPPED])
def test_a_failed_or_stopped_tunnel_lists_no_endpoints(api, state):
    camera = Camera.objects.create(ip="10.0.0.5")
    TunnelStatus.objects.create(key=f"camera-{camera.camera_id}", camera=camera, state=state, endpoints=[RTSP_ENDPOINT])
    assert api.get(f"/api/camera/{camera.camera_id}/").json()["tunnel"]["endpoints"] == []


def test_health_before_the_first_probe_after_it_and_when_inactive(api):
    camera = Camera.objects.create(ip="10.0.0.5")
    assert api.get(f"/api/camera/{camera.camera_id}/").json()["health"] == {
        "state": "unknown", "reason": "not probed yet", "checked_at": None, "latency_ms": None, "video": None, "audio": None}

    checked = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    CameraHealth.objects.create(camera=camera, state="ok", checked_at=checked, latency_ms=12,
                                video={"codec": "H.264", "width": 1920, "height": 1080, "fps": 25.0}, audio={"codec": "AAC"})
    assert api.get("/api/cameras/").json()[0]["health"] == {
        "state": "ok", "reason": "", "checked_at": "2026-01-02T03:04:05+00:00", "latency_ms": 12,
        "video": {"codec": "H.264", "width": 1920, "height": 1080, "fps": 25.0}, "audio": {"codec": "AAC"}}

    api.post(f"/api/edit-camera/{camera.camera_id}/", {"enabled": False}, format="json")
    health = api.get(f"/api/camera/{camera.camera_id}/").json()["health"]
    assert (health["state"], health["reason"], health["video"]) == ("unknown", "not probed: the camera is inactive", None)


def test_health_is_not_writable(api):
    camera = Camera.objects.create(ip="10.0.0.5")
    response = api.post(f"/api/edit-camera/{camera.camera_id}/", {"health": {"state": "ok"}}, format="json")
    assert response.status_code == 200 and response.json()["health"]["state"] == "unknown"
