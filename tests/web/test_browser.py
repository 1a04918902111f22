"""The web UI in a real browser: Debian's Chromium driven by Playwright against
pytest-django's live server. Each page is saved as a full-page screenshot under
test-artifacts/screenshots/ for a human to look at."""

from __future__ import annotations

import os
import re

import pytest

from camgate.cameras.models import Camera, CameraHealth, TunnelStatus
from tests.conftest import make_token
from tests.support.chromium import DESKTOP, PHONE, SCREENSHOTS, launched_chromium, sideways_overflow, watched_page

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

# Playwright's sync API drives its own event loop in this thread; the ORM calls the test
# makes between browser steps are plain blocking calls and safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser():
    with launched_chromium() as launched:
        yield launched


@pytest.fixture
def ui(browser, live_server, default_admin, monkeypatch):
    """A fresh browser context on the live server, failing the test on any script error."""
    monkeypatch.setattr("camgate.web.views.dashboard.REFRESH_SECONDS", 1)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    contexts, problems = [], []

    def open_page(viewport=DESKTOP, color_scheme="light"):
        return watched_page(browser, live_server.url, contexts, problems, viewport, color_scheme)

    yield open_page
    for context in contexts:
        context.close()
    # Pages answered with 4xx on purpose (form errors, 404, 429), and thumbnails the
    # snapshot endpoint answers 503 (no agent runs in these tests), log "Failed to load
    # resource"; anything else in the console is a bug.
    expected = ("Failed to load resource: the server responded with a status of 4",
                "Failed to load resource: the server responded with a status of 503")
    assert [p for p in problems if not any(text in p for text in expected)] == []


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in_with_keyboard(page, password: str) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    # The username box has focus on arrival; the rest is Tab and Enter.
    page.keyboard.type("admin")
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")


def test_a_new_user_manages_cameras_settings_and_restart(ui):
    page = ui()

    # Log in: first a typo, then the default password.
    page.goto("/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    shot(page, "login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("admn")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password.")
    shot(page, "login-wrong-password")
    log_in_with_keyboard(page, "admin")

    # The empty dashboard says what to do, and warns about the default password.
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_text("No cameras yet")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("still has the default password")
    shot(page, "dashboard-empty")

    # Add a camera: the ports come prefilled; a bad port is refused beside the field.
    page.get_by_role("main").get_by_role("link", name="Add camera").click()
    expect(page.get_by_label("HTTP port")).to_have_value("80")
    expect(page.get_by_label("RTSP port")).to_have_value("554")
    expect(page.get_by_label("Active")).to_be_checked()
    shot(page, "add-camera")
    page.get_by_label("IP address or host name").fill("192.168.1.20")
    page.get_by_label("HTTP port").fill("70000")
    page.get_by_label("Access token").fill(make_token(1234))
    page.get_by_label("Serial number").fill("SN-0042")
    page.get_by_label("Camera username").fill("viewer")
    page.get_by_label("Camera password").fill("cam-secret-81")
    page.get_by_role("button", name="Add camera").click()
    expect(page.locator("#id_http_port_error")).to_have_text("Port must be between 1 and 65535.")
    expect(page.get_by_label("HTTP port")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Camera password")).to_have_value("")
    shot(page, "add-camera-error")
    page.get_by_label("HTTP port").fill("80")
    page.get_by_label("Camera password").fill("cam-secret-81")
    page.get_by_role("button", name="Add camera").click()

    # It is on the dashboard.
    camera = Camera.objects.get()
    expect(page.get_by_role("status")).to_contain_text(f"Camera {camera.camera_id} (192.168.1.20) added.")
    row = page.locator(f'tr[data-camera-id="{camera.camera_id}"]')
    expect(row).to_contain_text("192.168.1.20")
    expect(row).to_contain_text("1234")
    expect(row).to_contain_text("Not reported")
    assert camera.password == "cam-secret-81"

    # The agent reports on the tunnel: the page picks it up without reloading.
    page.evaluate("window.__sameDocument = true")
    TunnelStatus.objects.create(
        key=f"camera-{camera.camera_id}", camera=camera, state="up", pid=4242, open_connections=2,
        endpoints=[
            {"name": "rtsp", "proxy_host": "relay.example.net", "proxy_port": 41554, "url": "rtsp://relay.example.net:41554/"},
            {"name": "http", "proxy_host": "relay.example.net", "proxy_port": 41080, "url": "http://relay.example.net:41080/"},
        ],
        bytes_to_cloud=734_003_200, bytes_from_cloud=1_843_200,
    )
    TunnelStatus.objects.create(
        key="gateway", state="connecting", reason="relay.example.net:443: connection refused; retrying in 5 s",
    )
    expect(row.locator(".tunnel .badge")).to_have_text("Up")
    expect(row).to_contain_text("rtsp://relay.example.net:41554/")
    expect(row).to_contain_text("700 MiB")
    expect(page.locator("#gateway-tunnel")).to_contain_text("Connecting")
    expect(page.locator("#live-status")).to_contain_text("Live · updated")
    assert page.evaluate("window.__sameDocument") is True
    assert sideways_overflow(page) == []
    copy = row.get_by_role("button", name="Copy rtsp URL")
    copy.focus()
    page.keyboard.press("Enter")
    expect(copy).to_have_text("Copied")
    # A refresh that changes nothing leaves the button, its focus and its "Copied" be.
    refreshed = page.locator("#dashboard").get_attribute("data-refreshed")
    expect(page.locator("#dashboard")).not_to_have_attribute("data-refreshed", refreshed)
    expect(copy).to_have_text("Copied")
    expect(copy).to_be_focused()
    shot(page, "dashboard")

    # Edit it: the stored password is not shown; leaving it empty keeps it.
    row.get_by_role("link", name=f"Edit camera {camera.camera_id}").click()
    expect(page.get_by_label("IP address or host name")).to_have_value("192.168.1.20")
    expect(page.get_by_label("Camera password")).to_have_value("")
    assert "cam-secret-81" not in page.content()
    page.get_by_label("IP address or host name").fill("192.168.1.21")
    page.get_by_label("RTSP port").fill("8554")
    page.get_by_label("RTSP only").check()
    shot(page, "edit-camera")
    page.get_by_role("button", name="Save changes").click()
    expect(row).to_contain_text("192.168.1.21")
    expect(row).to_contain_text("RTSP 8554")
    camera.refresh_from_db()
    assert (camera.ip, camera.rtsp_port, camera.rtsp_only, camera.password) == ("192.168.1.21", 8554, True, "cam-secret-81")

    # Delete it, after a confirmation page.
    row.get_by_role("link", name=f"Delete camera {camera.camera_id}").click()
    expect(page.get_by_role("heading", name=f"Delete camera {camera.camera_id}?")).to_be_visible()
    shot(page, "delete-camera")
    assert Camera.objects.exists()
    page.get_by_role("button", name="Delete camera").click()
    expect(page.get_by_role("status")).to_contain_text("deleted")
    expect(page.get_by_text("No cameras yet")).to_be_visible()
    assert not Camera.objects.exists()

    # Restart: the agent is not running in tests, and the page says so.
    page.get_by_role("navigation").get_by_role("link", name="Restart").click()
    expect(page.get_by_role("heading", name="Restart the gateway tunnel")).to_be_visible()
    shot(page, "restart")
    page.get_by_role("button", name="Restart tunnel").click()
    expect(page.get_by_role("status")).to_contain_text("Restart failed: the agent is not running")
    shot(page, "restart-result")

    # Settings: create the API token, then change the password.
    page.get_by_role("navigation").get_by_role("link", name="Settings").click()
    expect(page.get_by_text("No token yet")).to_be_visible()
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("textbox", name="API token")).to_have_value(re.compile(r"^[0-9a-f]{40}$"))
    shot(page, "settings")
    page.get_by_label("Old password").fill("admin")
    page.get_by_label("New password", exact=True).fill("correct-horse-battery")
    page.get_by_label("New password confirmation").fill("correct-horse-battery")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("Password changed.")
    expect(page.get_by_text("still has the default password")).to_have_count(0)
    shot(page, "settings-password-changed")

    # Log out; the old password no longer works, the new one does.
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("status")).to_contain_text("You have been logged out.")
    shot(page, "logged-out")
    log_in_with_keyboard(page, "admin")
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password.")
    log_in_with_keyboard(page, "correct-horse-battery")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_phone_width_and_dark_mode(ui):
    streaming = Camera.objects.create(ip="10.20.30.1", access_token=make_token(3001))
    broken = Camera.objects.create(ip="10.20.30.2", rtsp_only=True)
    TunnelStatus.objects.create(
        key="camera-a", camera=streaming, state="up", open_connections=1,
        endpoints=[{"name": "rtsp", "proxy_host": "relay.example.net", "proxy_port": 41554,
                    "url": "rtsp://relay.example.net:41554/"}],
        bytes_to_cloud=12_345_678, bytes_from_cloud=54_321,
    )
    TunnelStatus.objects.create(key="camera-b", camera=broken, state="failed",
                                reason="camera 10.20.30.2:554 unreachable: no route to host")
    TunnelStatus.objects.create(key="gateway", state="up", endpoints=[
        {"name": "http", "proxy_host": "relay.example.net", "proxy_port": 40080, "url": "http://relay.example.net:40080/"},
        {"name": "ssh", "proxy_host": "relay.example.net", "proxy_port": 40022},
    ])
    page = ui(PHONE)
    log_in_with_keyboard(page, "admin")
    expect(page.locator(f'tr[data-camera-id="{broken.camera_id}"]')).to_contain_text("no route to host")
    expect(page.locator("#live-status")).to_contain_text("Live · updated")
    assert sideways_overflow(page) == []
    shot(page, "dashboard-phone")
    page.goto("/add-camera")
    page.get_by_role("button", name="Add camera").click()
    expect(page.locator("#id_ip_error")).to_be_visible()
    assert sideways_overflow(page) == []
    shot(page, "add-camera-phone")
    page.goto("/settings/")
    assert sideways_overflow(page) == []
    shot(page, "settings-phone")

    page = ui(DESKTOP, color_scheme="dark")
    log_in_with_keyboard(page, "admin")
    expect(page.locator("#live-status")).to_contain_text("Live · updated")
    shot(page, "dashboard-dark")
    assert sideways_overflow(page) == []


def test_not_found_and_throttled_pages(ui):
    page = ui()
    log_in_with_keyboard(page, "admin")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    response = page.goto("/edit-camera/not-a-number")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    shot(page, "not-found")

    page = ui()
    page.goto("/login/")
    for _ in range(5):
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill("guess")
        page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-in attempts")
    shot(page, "login-throttled")


def test_dashboard_tells_camera_health_apart_from_the_tunnel(ui):
    """An ok, a login-failed and an unreachable camera, each with its tunnel up, and an
    inactive one; no agent runs to capture pictures (503), so placeholders stand in."""
    def camera(ip, camid, health, **extra):
        made = Camera.objects.create(ip=ip, access_token=make_token(camid), **extra)
        TunnelStatus.objects.create(key=f"camera-{camid}", camera=made, state="up", open_connections=0, endpoints=[
            {"name": "rtsp", "proxy_host": "relay.example.net", "proxy_port": camid, "url": ""},
            {"name": "http", "proxy_host": "relay.example.net", "proxy_port": camid + 1, "url": f"http://relay.example.net:{camid + 1}/"}])
        CameraHealth.objects.create(camera=made, checked_at="2026-03-04T05:06:07Z", **health)
        return made

    ok = camera("192.168.1.20", 41001, {"state": "ok", "latency_ms": 4, "video": {"codec": "H.264", "width": 1920,
                "height": 1080, "fps": 25.0}, "audio": {"codec": "AAC"}}, rtsp_path="/Streaming/Channels/101")
    login = camera("192.168.1.21", 41011, {"state": "auth_failed", "reason": "the camera refused the stored login (RTSP/1.0 401 Unauthorized)"})
    gone = camera("192.168.1.22", 41021, {"state": "unreachable", "reason": "no answer in 5 s (connecting to RTSP port 554)"})
    off = Camera.objects.create(ip="192.168.1.23", enabled=False)
    TunnelStatus.objects.create(key="gateway", state="up")
    page = ui()
    log_in_with_keyboard(page, "admin")
    rows = {c.camera_id: page.locator(f'tr[data-camera-id="{c.camera_id}"]') for c in (ok, login, gone, off)}
    expect(page.locator("#camera-summary")).to_have_text("4 cameras: 1 ok, 1 login failed, 1 unreachable, 1 inactive")
    expect(rows[ok.camera_id].locator(".health .badge")).to_have_text("Reachable")
    expect(rows[ok.camera_id]).to_contain_text("H.264 · 1920×1080 · 25 fps · audio AAC")
    expect(rows[ok.camera_id]).to_contain_text("rtsp://relay.example.net:41001/Streaming/Channels/101")
    expect(rows[login.camera_id].locator(".health .badge")).to_have_text("Login failed")
    expect(rows[gone.camera_id].locator(".health .badge")).to_have_text("Unreachable")
    expect(rows[gone.camera_id]).to_contain_text("no answer in 5 s")
    for camera_row in (rows[ok.camera_id], rows[login.camera_id], rows[gone.camera_id]):
        expect(camera_row.locator(".tunnel .badge")).to_have_text("Up")
    expect(rows[off.camera_id].locator(".health .badge")).to_have_text("Inactive")
    expect(rows[off.camera_id].locator(".tunnel .badge")).to_have_text("Inactive")
    # The ok camera's picture is asked for; while there is none, its placeholder shows.
    expect(rows[ok.camera_id].locator(".thumb img")).to_be_hidden()
    expect(rows[ok.camera_id].locator(".thumb-placeholder")).to_have_text("No picture yet")
    expect(rows[login.camera_id].locator(".thumb-placeholder")).to_have_text("Login failed")
    assert rows[login.camera_id].locator(".thumb img").count() == 0
    assert sideways_overflow(page) == []
    shot(page, "dashboard-health")

    # The agent's next probe finds the login fixed: the row and the summary follow.
    CameraHealth.objects.filter(camera=login).update(state="ok", reason="", video={"codec": "MJPEG", "width": None, "height": None, "fps": 15})
    expect(rows[login.camera_id].locator(".health .badge")).to_have_text("Reachable")
    expect(rows[login.camera_id]).to_contain_text("MJPEG · 15 fps")
    expect(page.locator("#camera-summary")).to_have_text("4 cameras: 2 ok, 1 unreachable, 1 inactive")

    page.set_viewport_size(PHONE)
    assert sideways_overflow(page) == []
    shot(page, "dashboard-health-phone")
