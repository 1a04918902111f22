"""The dashboard, settings and restart pages, and the default-password banner."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from camgate import config
from camgate.agent.control import AgentUnavailable
from camgate.cameras.models import Camera, CameraHealth, TunnelStatus
from camgate.core import GATEWAY_STATUS_KEY
from tests.conftest import make_token

pytestmark = pytest.mark.django_db

BANNER = b"The admin account still has the default password."


def test_empty_dashboard_says_what_to_do_next(admin_client, settings):
    settings.GATEWAY_NAME = "site-gw-1"
    html = admin_client.get("/").content.decode()
    assert "No cameras yet" in html
    assert 'href="/add-camera"' in html and 'href="/settings/"' in html
    assert "site-gw-1" in html and config.gateway_uuid() in html


def test_dashboard_shows_cameras_and_their_tunnels(admin_client):
    camera = Camera.objects.create(ip="192.0.2.30", rtsp_port=8554, access_token=make_token(9001), rtsp_only=True)
    TunnelStatus.objects.create(
        key=f"camera-{camera.camera_id}", camera=camera, state="failed", reason="relay refused: bad token",
        endpoints=[{"name": "rtsp", "proxy_host": "relay.example", "proxy_port": 41554, "url": "rtsp://relay.example:41554/"}],
        open_connections=3, bytes_to_cloud=5 * 1024 * 1024, bytes_from_cloud=2048,
    )
    streaming = Camera.objects.create(ip="192.0.2.31", rtsp_path="/Streaming/Channels/101")
    TunnelStatus.objects.create(
        key=f"camera-{streaming.camera_id}", camera=streaming, state="up",
        endpoints=[{"name": "rtsp", "proxy_host": "relay.example", "proxy_port": 41555, "url": "rtsp://relay.example:41555/"}],
    )
    CameraHealth.objects.create(camera=streaming, state="ok", video={"codec": "H.264", "width": 1920, "height": 1080, "fps": 25})
    CameraHealth.objects.create(camera=camera, state="auth_failed", reason="the camera refused the stored login")
    TunnelStatus.objects.create(key=GATEWAY_STATUS_KEY, state="up")
    html = admin_client.get("/").content.decode()
    for text in ["192.0.2.30", "9001", "RTSP 8554 only", "Failed", "relay refused: bad token",
                 'data-copy="rtsp://relay.example:41555/Streaming/Channels/101"',
                 "5.0 MiB", "2.0 KiB", 'class="badge state-up"', 'class="badge health-ok"', "Reachable",
                 "H.264 · 1920×1080 · 25 fps", "Login failed", "the camera refused the stored login",
                 "2 cameras: 1 ok, 1 login failed", f'src="/api/camera/{streaming.camera_id}/snapshot/?v='
                 ]:
        assert text in html, text
    # A failed tunnel lists no endpoints; a camera that cannot give a picture is not asked for one.
    assert "41554" not in html and f"/api/camera/{camera.camera_id}/snapshot/" not in html
    assert "No cameras yet" in html  # present in the page for live updates…
    assert 'id="empty-state" hidden' in html  # …but hidden


def test_an_inactive_camera_reads_inactive(admin_client):
    camera = Camera.objects.create(ip="192.0.2.32", enabled=False)
    TunnelStatus.objects.create(key=GATEWAY_STATUS_KEY, state="up")
    TunnelStatus.objects.create(key=f"camera-{camera.camera_id}", camera=camera, state="stopped", reason="inactive",
                                endpoints=[{"name": "rtsp", "proxy_host": "relay.example", "proxy_port": 41556}])
    [entry] = admin_client.get("/status.json").json()["cameras"]
    assert (entry["tunnel"]["label"], entry["tunnel"]["endpoints"]) == ("Inactive", [])
    assert (entry["health"]["label"], entry["health"]["snapshot_url"]) == ("Inactive", "")
    html = admin_client.get("/").content.decode()
    assert "Not reported" not in html and "1 camera: 1 inactive" in html


def test_status_json_matches_the_dashboard(admin_client):
    camera = Camera.objects.create(ip="192.0.2.31")
    TunnelStatus.objects.create(key="c", camera=camera, state="up", endpoints="not a list", bytes_to_cloud=10)
    body = admin_client.get("/status.json").json()
    [entry] = body["cameras"]
    assert entry["camera_id"] == camera.camera_id and entry["ip"] == "192.0.2.31"
    assert entry["tunnel"]["state"] == "up" and entry["tunnel"]["endpoints"] == []
    assert entry["tunnel"]["to_cloud"] == "10 B"
    assert entry["edit_url"] == f"/edit-camera/{camera.camera_id}"
    assert "password" not in entry and "access_token" not in entry


def test_settings_shows_token_uuid_and_configuration(admin_client, default_admin, monkeypatch):
    monkeypatch.setenv("CAMGATE_SECRET_KEY", "super-secret-value")
    monkeypatch.setenv("CAMGATE_ALLOWED_HOSTS", "gw.example")
    response = admin_client.get("/settings/")
    html = response.content.decode()
    assert "No token yet" in html
    assert config.gateway_uuid() in html
    assert "super-secret-value" not in html and "(set)" in html
    rows = {row["name"]: row for row in response.context["settings_in_effect"]}
    assert set(rows) == {setting.name for setting in config.SETTINGS}
    assert rows["CAMGATE_ALLOWED_HOSTS"]["value"] == "gw.example" and rows["CAMGATE_ALLOWED_HOSTS"]["from_environment"]
    assert rows["CAMGATE_DEBUG"]["from_environment"] is False


def test_settings_show_what_the_running_agent_uses(admin_client, default_admin, monkeypatch):
    # Under `camgate run` the agent is pointed at the embedded relay; the web server's
    # own environment does not say so.
    monkeypatch.delenv("CAMGATE_UPLINK_HOST", raising=False)
    monkeypatch.setattr("camgate.web.views.gateway.agent_settings",
                        lambda: {"CAMGATE_UPLINK_HOST": "127.0.0.1:8800", "CAMGATE_UPLINK_TLS": "false"})
    rows = {row["name"]: row for row in admin_client.get("/settings/").context["settings_in_effect"]}
    assert (rows["CAMGATE_UPLINK_HOST"]["value"], rows["CAMGATE_UPLINK_HOST"]["source"]) == ("127.0.0.1:8800", "agent")
    assert (rows["CAMGATE_UPLINK_TLS"]["value"], rows["CAMGATE_UPLINK_TLS"]["source"]) == ("false", "agent")
    assert rows["CAMGATE_DEBUG"]["source"] == "default"


def test_regenerating_the_token_replaces_it(admin_client, default_admin):
    admin_client.post("/settings/", {"action": "regenerate-token"})
    first = Token.objects.get(user=default_admin).key
    assert first in admin_client.get("/settings/").content.decode()
    response = admin_client.post("/settings", {"action": "regenerate-token"}, follow=True)
    second = Token.objects.get(user=default_admin).key
    assert second != first
    assert second in response.content.decode() and first not in response.content.decode()
    assert b"The old one no longer works" in response.content


def test_unknown_settings_action_changes_nothing(admin_client, default_admin):
    response = admin_client.post("/settings/", {"action": "drop-tables"}, follow=True)
    assert b"Unknown action" in response.content
    assert not Token.objects.exists()


def test_password_change_keeps_the_session_and_removes_the_banner(admin_client, default_admin, client):
    assert BANNER in admin_client.get("/settings/").content
    response = admin_client.post("/settings/", {
        "action": "change-password", "old_password": "wrong",
        "new_password1": "correct-horse-battery", "new_password2": "correct-horse-battery",
    })
    assert response.status_code == 400
    assert b"Your old password was entered incorrectly" in response.content

    response = admin_client.post("/settings/", {
        "action": "change-password", "old_password": "admin",
        "new_password1": "correct-horse-battery", "new_password2": "correct-horse-battery",
    }, follow=True)
    assert b"Password changed." in response.content
    assert BANNER not in response.content
    assert admin_client.get("/").status_code == 200  # still signed in
    default_admin.refresh_from_db()
    assert default_admin.check_password("correct-horse-battery")


def test_password_change_enforces_the_validators(admin_client):
    response = admin_client.post("/settings/", {
        "action": "change-password", "old_password": "admin", "new_password1": "short", "new_password2": "short",
    })
    assert response.status_code == 400
    assert b"This password is too short" in response.content


def test_banner_on_every_signed_in_page_but_not_for_strangers(admin_client, client, camera):
    for page in ["/", "/add-camera", f"/edit-camera/{camera.camera_id}", f"/delete/{camera.camera_id}",
                 "/settings/", "/restart/", "/logout/"]:
        assert BANNER in admin_client.get(page).content, page
    assert BANNER not in client.get("/login/").content


def test_no_banner_once_the_password_is_changed(client, default_admin):
    default_admin.set_password("another-good-one")
    default_admin.save()
    client.force_login(default_admin)
    assert BANNER not in client.get("/").content


def test_restart_asks_first(admin_client, monkeypatch):
    called = []
    monkeypatch.setattr("camgate.agent.control.send_command", lambda command, timeout=None: called.append(command))
    response = admin_client.get("/restart/")
    assert response.status_code == 200 and b"Restart tunnel" in response.content
    assert called == []


def test_restart_shows_that_the_agent_is_not_running(admin_client):
    # No agent in tests: the real send_command finds no control socket.
    response = admin_client.post("/restart/", follow=True)
    assert b"Restart failed: the agent is not running (no control socket)." in response.content


@pytest.mark.parametrize("answer,message", [
    ({"ok": True}, "Gateway tunnel restarted."),
    ({"ok": False, "error": "relay unreachable"}, "Restart failed: relay unreachable."),
    ({"ok": False}, "Restart failed: the agent could not restart the gateway tunnel."),
])
def test_restart_shows_the_agents_answer(admin_client, monkeypatch, answer, message):
    monkeypatch.setattr("camgate.agent.control.send_command", lambda command, timeout=None: answer)
    response = admin_client.post("/restart", follow=True)
    assert message in response.content.decode()


def test_restart_reports_an_agent_timeout(admin_client, monkeypatch):
    def timeout(command, timeout=None):
        raise AgentUnavailable("the agent did not answer within 10 s")

    monkeypatch.setattr("camgate.agent.control.send_command", timeout)
    response = admin_client.post("/restart/", follow=True)
    assert b"Restart failed: the agent did not answer within 10 s." in response.content


def test_the_default_password_check_follows_password_changes(default_admin):
    from camgate.cameras.admin_bootstrap import default_password_in_use

    assert default_password_in_use() is True
    default_admin.set_password("not-the-default")
    default_admin.save()
    assert default_password_in_use() is False
    default_admin.set_password("admin")
    default_admin.save()
    assert default_password_in_use() is True
    default_admin.delete()
    assert default_password_in_use() is False


def test_the_dashboard_shows_a_cameras_name(admin_client):
    """The name an ONVIF camera was added with (its model) says which camera a row is."""
    named = Camera.objects.create(ip="192.0.2.32", name="DS-2CD2143G2-I <lobby>")
    Camera.objects.create(ip="192.0.2.33")
    html = admin_client.get("/").content.decode()
    assert '<span class="camera-name">DS-2CD2143G2-I &lt;lobby&gt;</span>' in html
    assert html.count('class="camera-name"') == 1
    names = {c["camera_id"]: c["name"] for c in admin_client.get("/status.json").json()["cameras"]}
    assert names[named.camera_id] == "DS-2CD2143G2-I <lobby>"
