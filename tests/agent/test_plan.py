"""The agent's plan: which tunnels, with which forwards and credentials."""

from __future__ import annotations

from dataclasses import replace

from camgate.agent.plan import CameraRow, UplinkSettings, plan_camera, plan_tunnels
from camgate.uplink.protocol import Forward
from tests.conftest import make_token

UUID = "0b5d1f8e-7c1e-4d7e-9a55-3f0d3b8f2a10"
SETTINGS = UplinkSettings(uplink_host="127.0.0.1:8800", tls=False, provisioning_url="http://127.0.0.1:8800")
CAMERA = CameraRow(camera_id=7, access_token=make_token(70), ip="192.168.1.20", http_port=80,
                   rtsp_port=554, serial=None, mac=None, rtsp_only=False)


def test_camera_with_token_gets_http_and_rtsp_forwards():
    planned = plan_camera(CAMERA, SETTINGS, UUID)
    assert planned.key == "camera-7" and planned.camera_id == 7
    assert planned.spec.forwards == (Forward("http", "http", "192.168.1.20", 80), Forward("rtsp", "tcp", "192.168.1.20", 554))
    assert planned.spec.token == CAMERA.access_token and planned.spec.serial == ""
    assert (planned.spec.uplink, planned.spec.tls) == ("127.0.0.1:8800", False)


def test_rtsp_only_camera_gets_only_the_rtsp_forward():
    planned = plan_camera(replace(CAMERA, rtsp_only=True), SETTINGS, UUID)
    assert [f.name for f in planned.spec.forwards] == ["rtsp"]


def test_ipv6_camera():
    planned = plan_camera(replace(CAMERA, ip="fe80::1"), SETTINGS, UUID)
    assert planned.spec.forwards[1] == Forward("rtsp", "tcp", "fe80::1", 554)


def test_camera_without_token_provisions_by_serial_and_mac():
    planned = plan_camera(replace(CAMERA, access_token="", serial="ABC123", mac="00:11:22:33:44:55"), SETTINGS, UUID)
    assert (planned.spec.token, planned.spec.serial, planned.spec.password) == ("", "ABC123", "00:11:22:33:44:55")


def test_camera_without_any_credentials_is_a_problem_not_a_crash():
    planned = plan_camera(replace(CAMERA, access_token="", serial="ABC123"), SETTINGS, UUID)
    assert planned.spec is None and "serial + MAC" in planned.problem


def test_embedded_relay_enrolls_a_camera_without_credentials():
    settings = replace(SETTINGS, embedded_relay=True)
    planned = plan_camera(replace(CAMERA, access_token=""), settings, UUID)
    assert planned.spec.serial == f"CAMGATE-{UUID}-CAMERA-7" and planned.spec.password == UUID


def test_spec_changes_only_when_a_used_field_changes():
    base = plan_camera(CAMERA, SETTINGS, UUID).spec
    assert plan_camera(replace(CAMERA, serial="NEW", mac="NEW"), SETTINGS, UUID).spec == base
    for change in [{"ip": "192.168.1.21"}, {"rtsp_port": 8554}, {"http_port": 8080}, {"rtsp_only": True}, {"access_token": make_token(71)}]:
        assert plan_camera(replace(CAMERA, **change), SETTINGS, UUID).spec != base, change


def test_gateway_tunnel_forwards_web_and_ssh_and_provisions_by_uuid():
    plan = plan_tunnels([CAMERA], UUID, replace(SETTINGS, gateway_http_port=8123, ssh_port=2222))
    gateway = plan["gateway"].spec
    assert gateway.forwards == (Forward("web", "http", "127.0.0.1", 8123), Forward("ssh", "tcp", "127.0.0.1", 2222))
    assert gateway.serial == gateway.password == UUID
    assert set(plan) == {"gateway", "camera-7"}


def test_gateway_tunnel_without_ssh_or_disabled():
    assert [f.name for f in plan_tunnels([], UUID, replace(SETTINGS, ssh_port=0))["gateway"].spec.forwards] == ["web"]
    assert plan_tunnels([], UUID, replace(SETTINGS, gateway_tunnel=False)) == {}


def test_uplink_settings_read_from_and_shown_as_the_environment(monkeypatch):
    monkeypatch.setenv("CAMGATE_UPLINK_HOST", "127.0.0.1:8800")
    monkeypatch.setenv("CAMGATE_UPLINK_TLS", "false")
    monkeypatch.setenv("CAMGATE_SSH_PORT", "0")
    settings = UplinkSettings.from_environment()
    assert (settings.uplink_host, settings.tls, settings.ssh_port, settings.verify) == ("127.0.0.1:8800", False, 0, True)
    shown = settings.as_environment()
    assert shown["CAMGATE_UPLINK_HOST"] == "127.0.0.1:8800" and shown["CAMGATE_UPLINK_TLS"] == "false"
    assert shown["CAMGATE_SSH_PORT"] == "0" and shown["CAMGATE_UPLINK_CAFILE"] == ""
    for variable, value in shown.items():
        monkeypatch.setenv(variable, value)
    assert UplinkSettings.from_environment() == settings


def test_the_enrollment_secret_goes_only_to_the_embedded_relay_and_is_never_shown(monkeypatch):
    monkeypatch.setenv("CAMGATE_ENROLLMENT_SECRET", "s3cret-of-this-instance")
    settings = replace(UplinkSettings.from_environment(), embedded_relay=True)
    planned = plan_camera(replace(CAMERA, access_token=""), settings, UUID)
    assert planned.spec.enrollment_secret == "s3cret-of-this-instance"
    assert "s3cret" not in repr(planned.spec) and "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings.as_environment())
    cloud = plan_camera(CAMERA, replace(settings, embedded_relay=False), UUID)
    assert cloud.spec.enrollment_secret == ""
