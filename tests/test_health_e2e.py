"""Camera health through `camgate run`: the agent probes real cameras (GStreamer's RTSP
server with a Digest login and a mount path), a port with nothing behind it, and the
rtsp URL the API gives plays in ffprobe through the embedded relay."""

from __future__ import annotations

import time

import pytest

from tests.support.cameras import CameraWebServer, RtspCamera, ffprobe_stream
from tests.support.processes import free_port
from tests.test_tunnels_e2e import is_up, relay_ports, running_gateway

pytestmark = pytest.mark.e2e

INTERVAL = 2  # CAMGATE_PROBE_INTERVAL for this gateway
STEP = 5  # the probe's step timeout (config.PROBE_STEP_TIMEOUT_S)
SLACK = 3  # the agent's batched write (1 s) and this test's polling, on a busy machine
PATH = "/Streaming/Channels/101"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("health")
    with running_gateway(tmp, relay_ports(48000, 56000), CAMGATE_PROBE_INTERVAL=str(INTERVAL)) as started:
        yield started
    log = (tmp / "camgate.log").read_text()
    assert "s3cret-pw" not in log and "wrong-pw" not in log  # passwords never in the log


@pytest.fixture(scope="module")
def web():
    server = CameraWebServer()
    yield server
    server.stop()


def health_is(state: str):
    return lambda camera: camera["health"]["state"] == state


def test_a_camera_with_nothing_behind_it_is_unreachable_within_one_interval(gateway):
    rtsp_port, http_port = free_port(), free_port()
    added_at = time.monotonic()
    status, added = gateway.api("POST", "/api/add-camera/", {"ip": "127.0.0.1", "rtsp_port": rtsp_port, "http_port": http_port})
    # The add pokes the agent, which probes at once: a refused connection takes a
    # millisecond, so the answer to the add may already carry its verdict.
    assert status == 201 and added["health"]["state"] in ("unknown", "unreachable")
    camera = gateway.wait_for_camera(added["camera_id"], health_is("unreachable"), timeout=INTERVAL + STEP + SLACK)
    assert camera["health"]["reason"] == f"connection refused (RTSP port {rtsp_port})"
    assert camera["health"]["checked_at"] and camera["health"]["video"] is None
    # Its tunnel is up all the same: the tunnel and the camera are told apart.
    assert gateway.wait_for_camera(added["camera_id"], is_up)["health"]["state"] == "unreachable"
    # It stays so: the next probe, an interval later, finds the same.
    first_check = camera["health"]["checked_at"]
    again = gateway.wait_for_camera(added["camera_id"], lambda c: c["health"]["checked_at"] != first_check)
    assert again["health"]["state"] == "unreachable" and time.monotonic() - added_at >= INTERVAL


def test_wrong_login_is_auth_failed_and_the_right_one_ok_at_once(gateway, web):
    camera = RtspCamera(free_port(), 640, 360, path=PATH, codec="h264", username="admin", password="s3cret-pw").start()
    try:
        status, added = gateway.api("POST", "/api/add-camera/", {
            "ip": "127.0.0.1", "rtsp_port": camera.port, "http_port": web.port, "rtsp_path": PATH,
            "username": "admin", "password": "wrong-pw"})
        assert status == 201
        failed = gateway.wait_for_camera(added["camera_id"], health_is("auth_failed"), timeout=INTERVAL + STEP + SLACK)
        assert failed["health"]["reason"] == "the camera refused the stored login (RTSP/1.0 401 Unauthorized)"

        # The person fixes the password: probed again (at once, as tests/agent/test_prober.py
        # shows with an interval too long to wait for).
        gateway.api("POST", f"/api/edit-camera/{added['camera_id']}/", {"password": "s3cret-pw"})
        ok = gateway.wait_for_camera(added["camera_id"], health_is("ok"), timeout=INTERVAL + STEP + SLACK)
        assert ok["health"]["video"] == {"codec": "H.264", "width": 640, "height": 360, "fps": 15.0}
        assert ok["health"]["reason"] == "" and ok["health"]["latency_ms"] >= 0
        assert "s3cret-pw" not in str(gateway.api("GET", "/api/cameras/")[1])
    finally:
        camera.stop()


def test_the_rtsp_url_given_plays_as_it_is_through_the_relay(gateway, web):
    path = PATH + "?transportmode=unicast"
    camera = RtspCamera(free_port(), 640, 360, path=PATH, codec="h264").start()
    try:
        status, added = gateway.api("POST", "/api/add-camera/", {
            "ip": "127.0.0.1", "rtsp_port": camera.port, "http_port": web.port, "rtsp_path": path})
        assert status == 201
        up = gateway.wait_for_camera(added["camera_id"], lambda c: is_up(c) and c["health"]["state"] == "ok")
        (url,) = [e["url"] for e in up["tunnel"]["endpoints"] if e["name"] == "rtsp"]
        assert url.endswith(path) and "@" not in url
        stream = ffprobe_stream(url)
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 640, 360)
    finally:
        camera.stop()


def test_the_dashboard_shows_real_probes_apart_from_the_tunnels(gateway, web):
    """An ok, a login-failed and an unreachable camera, probed for real, in Chromium."""
    from pathlib import Path

    playwright_sync = pytest.importorskip("playwright.sync_api")
    from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS, DESKTOP, SCREENSHOTS

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    for camera in gateway.api("GET", "/api/cameras/")[1]:  # what the tests before left
        gateway.api("DELETE", f"/api/cameras/{camera['camera_id']}/")
    ok = RtspCamera(free_port(), 1280, 720, path=PATH, codec="h264").start()
    locked = RtspCamera(free_port(), 640, 360, path="/live", username="admin", password="s3cret-pw").start()
    try:
        cameras = [
            {"ip": "127.0.0.1", "rtsp_port": ok.port, "http_port": web.port, "rtsp_path": PATH},
            {"ip": "127.0.0.1", "rtsp_port": locked.port, "http_port": web.port, "rtsp_path": "/live",
             "username": "admin", "password": "wrong-pw"},
            {"ip": "127.0.0.1", "rtsp_port": free_port(), "rtsp_only": True},
        ]
        ids = [gateway.api("POST", "/api/add-camera/", body)[1]["camera_id"] for body in cameras]
        for camera_id, state in zip(ids, ["ok", "auth_failed", "unreachable"]):
            gateway.wait_for_camera(camera_id, lambda c, state=state: is_up(c) and c["health"]["state"] == state)

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        with playwright_sync.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=DESKTOP, base_url=gateway.base)
            page.goto("/")
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill("admin")
            page.get_by_role("button", name="Log in").click()
            expect = playwright_sync.expect
            expect(page.locator("#camera-summary")).to_have_text("3 cameras: 1 ok, 1 login failed, 1 unreachable")
            rows = [page.locator(f'tr[data-camera-id="{camera_id}"]') for camera_id in ids]
            expect(rows[0].locator(".health")).to_contain_text("H.264 · 1280×720 · 15 fps")
            expect(rows[1].locator(".health .badge")).to_have_text("Login failed")
            expect(rows[2].locator(".health")).to_contain_text("connection refused (RTSP port")
            for row in rows:
                expect(row.locator(".tunnel .badge")).to_have_text("Up")
            page.screenshot(path=str(SCREENSHOTS / "dashboard-health-live.png"), full_page=True)
            browser.close()
    finally:
        ok.stop()
        locked.stop()
