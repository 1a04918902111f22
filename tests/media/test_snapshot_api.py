"""GET /api/camera/<id>/snapshot/ in process, with the agent's snapshot service on the
real control socket and real cameras: GStreamer's RTSP server, and scripted RTSP
servers for what it will not do (refuse a password, describe no video, never answer)."""

from __future__ import annotations

import email.utils
import logging
import socket
import time

import pytest
from rest_framework.test import APIClient

from camgate.cameras.models import Camera
from tests.conftest import make_token
from tests.support.processes import free_port
from tests.support.rtsp_doubles import CountingProxy, ScriptedRtspCamera

from .conftest import CAMERA_SIZE, TIMEOUT_S, jpeg_size

pytestmark = pytest.mark.e2e  # GStreamer's RTSP server and capture processes


def add_camera(port: int, **fields) -> Camera:
    return Camera.objects.create(ip="127.0.0.1", rtsp_port=port, **fields)


def snapshot(api, camera_id, **headers):
    return api.get(f"/api/camera/{camera_id}/snapshot/", **headers)


def test_a_jpeg_of_the_cameras_own_size(api, snapshot_service, rtsp_camera):
    camera = add_camera(rtsp_camera.port)
    response = snapshot(api, camera.camera_id)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "image/jpeg"
    assert jpeg_size(response.content) == CAMERA_SIZE
    assert response["Cache-Control"].startswith("private, max-age=")
    assert 0 <= int(response["Cache-Control"].split("=")[1]) <= 10
    assert email.utils.parsedate_to_datetime(response["Last-Modified"]).timestamp() == pytest.approx(time.time(), abs=5)


def test_the_cached_frame_is_served_until_the_interval_ends(api, snapshot_service, rtsp_camera):
    camera = add_camera(rtsp_camera.port, access_token=make_token(777))
    first = snapshot(api, camera.camera_id)
    again = snapshot(api, 777)  # by camid, like every camera route
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again["Last-Modified"] == first["Last-Modified"]
    assert snapshot_service.captures_started == 1
    unchanged = snapshot(api, camera.camera_id, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged["Last-Modified"] == first["Last-Modified"]


def test_the_rtsp_session_is_closed_once_the_frame_is_decoded(api, snapshot_service, rtsp_camera):
    door = CountingProxy(rtsp_camera.port)
    try:
        camera = add_camera(door.port)
        assert snapshot(api, camera.camera_id).status_code == 200
        deadline = time.monotonic() + 5
        while door.closed < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (door.opened, door.closed) == (1, 1)
    finally:
        door.stop()


def test_unknown_camera_is_404(api, snapshot_service):
    response = snapshot(api, 424242)
    assert response.status_code == 404 and "424242" in response.json()["detail"]


def test_token_or_session_required(snapshot_service, rtsp_camera, admin_user):
    camera = add_camera(rtsp_camera.port)
    assert APIClient().get(f"/api/camera/{camera.camera_id}/snapshot/").status_code == 401
    session = APIClient()
    session.force_login(admin_user)
    assert session.get(f"/api/camera/{camera.camera_id}/snapshot").status_code == 200


def test_a_client_asking_for_jpeg_still_gets_errors_as_json(api, snapshot_service):
    response = snapshot(api, 424242, HTTP_ACCEPT="image/jpeg")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"


def expect_503(api, camera, reason_starts: str, within: float) -> dict:
    """A 503 with its reason, never a hang: ``within`` bounds the wait (the capture's
    timeout and a process start's slack on a busy machine); the reason tells an answer
    from the camera apart from a timeout."""
    started = time.monotonic()
    response = snapshot(api, camera.camera_id)
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.content
    assert elapsed < within, f"answered after {elapsed:.1f} s"
    body = response.json()
    assert body["error"].startswith(reason_starts), body
    assert int(response["Retry-After"]) >= 1
    return body


def test_nothing_listening_is_unreachable_at_once(api, snapshot_service):
    expect_503(api, add_camera(free_port()), "unreachable: connection refused", within=TIMEOUT_S + 1.5)


def test_a_camera_that_never_answers_is_503_within_its_timeout(api, snapshot_service):
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        camera = add_camera(listener.getsockname()[1])
        body = expect_503(api, camera, "unreachable: no answer within", within=TIMEOUT_S + 1.5)
        assert body["error"] == f"unreachable: no answer within {TIMEOUT_S} s"
    finally:
        listener.close()


def test_a_name_that_does_not_resolve(api, snapshot_service):
    camera = Camera.objects.create(ip="no-such-camera.invalid", rtsp_port=554)
    expect_503(api, camera, "unreachable: name not resolved", within=TIMEOUT_S + 1.5)


def test_refused_credentials_are_auth_failed_and_never_echoed(api, snapshot_service, caplog):
    scripted = ScriptedRtspCamera("unauthorized")
    try:
        caplog.set_level(logging.DEBUG)
        camera = add_camera(scripted.port, username="admin", password="s3cret-Pa55")
        body = expect_503(api, camera, "auth failed: the camera refused the stored credentials", within=TIMEOUT_S + 1.5)
        assert scripted.authorizations, "the stored credentials were never presented"
        nobody = add_camera(scripted.port)
        expect_503(api, nobody, "auth failed: the camera wants credentials and none are stored", within=TIMEOUT_S + 1.5)
        assert "s3cret" not in str(body) and "s3cret" not in caplog.text
    finally:
        scripted.stop()


def test_a_password_with_url_characters_reaches_the_camera_intact(api, snapshot_service):
    password = "p@ss:w/rd?#%"
    scripted = ScriptedRtspCamera("basic", "cam admin", password)
    try:
        camera = add_camera(scripted.port, username="cam admin", password=password)
        # 404 comes only after the right credentials: they got through as stored.
        expect_503(api, camera, "no stream: the camera has no stream at its RTSP path", within=TIMEOUT_S + 1.5)
    finally:
        scripted.stop()


def test_a_stream_without_video_is_no_video(api, snapshot_service):
    scripted = ScriptedRtspCamera("audio_only")
    try:
        # Known from the SDP, not after waiting out the timeout for packets to probe.
        expect_503(api, add_camera(scripted.port), "no video", within=TIMEOUT_S - 1)
    finally:
        scripted.stop()


def test_a_failure_is_not_retried_before_the_interval(api, snapshot_service):
    scripted = ScriptedRtspCamera("unauthorized")
    try:
        camera = add_camera(scripted.port, username="admin", password="wrong")
        first = expect_503(api, camera, "auth failed", within=TIMEOUT_S + 1.5)
        presented = len(scripted.authorizations)
        second = expect_503(api, camera, "auth failed", within=1)
        assert second == first and len(scripted.authorizations) == presented  # cameras lock accounts
        assert snapshot_service.captures_started == 1
    finally:
        scripted.stop()


def test_no_agent_is_503_with_the_reason(api, db, rtsp_camera):
    camera = add_camera(rtsp_camera.port)
    response = snapshot(api, camera.camera_id)
    assert response.status_code == 503
    assert response.json() == {"error": "the agent is not running (no control socket)"}
