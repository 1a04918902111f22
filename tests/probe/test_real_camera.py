"""The probe against a real camera: GStreamer's RTSP server with a Digest (or Basic)
login, an H.264 stream at a mount path other than "/", and the picture size from its SPS."""

from __future__ import annotations

from dataclasses import replace

import pytest

from camgate.probe.net import ProbeTarget, probe_camera
from camgate.probe.result import HealthState
from tests.support.cameras import CameraWebServer, RtspCamera
from tests.support.processes import free_port

pytestmark = pytest.mark.e2e

PATH = "/Streaming/Channels/101"


@pytest.fixture(scope="module")
def digest_camera():
    camera = RtspCamera(free_port(), 640, 360, path=PATH, codec="h264", username="admin", password="s3cret pass").start()
    yield camera
    camera.stop()


@pytest.fixture(scope="module")
def web():
    server = CameraWebServer()
    yield server
    server.stop()


@pytest.fixture
def target(digest_camera, web):
    return ProbeTarget("127.0.0.1", digest_camera.port, web.port, rtsp_path=PATH + "?transportmode=unicast",
                       username="admin", password="s3cret pass")


async def test_right_digest_login_is_ok_with_codec_size_and_frame_rate(target):
    result = await probe_camera(target)
    assert (result.state, result.reason) == (HealthState.OK, "")
    assert result.video.as_dict() == {"codec": "H.264", "width": 640, "height": 360, "fps": 15.0}
    assert result.audio is None and result.latency_ms is not None


async def test_wrong_password_is_auth_failed(target):
    result = await probe_camera(replace(target, password="wrong"))
    assert (result.state, result.reason) == (HealthState.AUTH_FAILED, "the camera refused the stored login (RTSP/1.0 401 Unauthorized)")


async def test_no_stored_login_is_auth_failed(target):
    result = await probe_camera(replace(target, username="", password=""))
    assert (result.state, result.reason) == (HealthState.AUTH_FAILED, "the camera asks for a login and none is stored")


async def test_wrong_path_is_no_stream(target):
    result = await probe_camera(replace(target, rtsp_path="/Streaming/Channels/999"))
    assert (result.state, result.reason) == (HealthState.NO_STREAM, "no stream at /Streaming/Channels/999 (RTSP/1.0 404 Not Found)")


async def test_basic_login_and_mjpeg_whose_size_the_sdp_does_not_give():
    camera = RtspCamera(free_port(), 320, 240, path="/live", username="viewer", password="pw", basic=True).start()
    try:
        target = ProbeTarget("127.0.0.1", camera.port, 0, rtsp_only=True, rtsp_path="/live", username="viewer", password="pw")
        result = await probe_camera(target)
        assert result.state is HealthState.OK
        # An MJPEG picture's size is only in its RTP packets, which a probe never asks for.
        assert result.video.as_dict() == {"codec": "MJPEG", "width": None, "height": None, "fps": 15.0}
        assert (await probe_camera(replace(target, password="nope"))).state is HealthState.AUTH_FAILED
    finally:
        camera.stop()
