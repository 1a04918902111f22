"""Snapshots from `camgate run` (gunicorn workers, the agent, real processes): a burst of
100 requests for one camera, spread over the web server's workers, opens one RTSP
session to it; a camera that is down is a 503 with the reason."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.cameras import RtspCamera
from tests.support.processes import free_port
from tests.support.rtsp_doubles import CountingProxy
from tests.test_tunnels_e2e import gateway  # noqa: F401 (a fixture: `camgate run`)

from .conftest import CAMERA_SIZE, jpeg_size

pytestmark = pytest.mark.e2e
BURST = 100


def get_snapshot(gateway, camera_id: int) -> tuple[int, dict, bytes]:  # noqa: F811
    request = urllib.request.Request(f"{gateway.base}/api/camera/{camera_id}/snapshot/",
                                     headers={"Authorization": f"Token {gateway.token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_a_burst_of_requests_opens_one_rtsp_session(gateway):  # noqa: F811
    camera = RtspCamera(free_port(), *CAMERA_SIZE, path="/").start()
    door = CountingProxy(camera.port)
    try:
        status, added = gateway.api("POST", "/api/add-camera/", {"ip": "127.0.0.1", "rtsp_port": door.port})
        assert status == 201, added
        with ThreadPoolExecutor(BURST) as pool:
            answers = list(pool.map(lambda _: get_snapshot(gateway, added["camera_id"]), range(BURST)))
        assert [status for status, _, _ in answers] == [200] * BURST
        assert len({body for _, _, body in answers}) == 1  # the same frame for everyone
        assert len({headers["Last-Modified"] for _, headers, _ in answers}) == 1
        assert jpeg_size(answers[0][2]) == CAMERA_SIZE
        # One capture: one streaming session (the agent's health probe may also have
        # connected, for OPTIONS and DESCRIBE only).
        assert door.streaming == 1
        deadline = time.monotonic() + 5
        while door.closed < door.opened and time.monotonic() < deadline:
            time.sleep(0.05)
        assert door.closed == door.opened  # torn down once the frame was decoded
    finally:
        door.stop()
        camera.stop()


def test_a_camera_that_is_down_is_503_with_the_reason(gateway):  # noqa: F811
    status, added = gateway.api("POST", "/api/add-camera/", {"ip": "127.0.0.1", "rtsp_port": free_port()})
    assert status == 201, added
    status, headers, body = get_snapshot(gateway, added["camera_id"])
    assert status == 503 and body == b'{"error":"unreachable: connection refused"}'
    assert headers["Content-Type"] == "application/json"
