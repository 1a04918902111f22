"""The gateway's GET /metrics, in process: the series and their labels from the camera
table and the agent's reports, parsed with prometheus_client's own parser; who may read
it. (tests/metrics/test_gateway_metrics_e2e.py reads it from `camgate run` after real
traffic.)"""

from __future__ import annotations

import asyncio

import pytest
from django.test import Client

from camgate.cameras.models import Camera, TunnelStatus
from camgate.core import TunnelState
from camgate.config import ConfigError
from camgate.metrics.access import address_allowed, parse_allow_list
from camgate.metrics.reconcile_stats import ReconcileStats
from tests.conftest import make_token
from tests.support.agent_socket import control_socket
from tests.support.prometheus import Scrape

pytestmark = pytest.mark.django_db


def scrape(client: Client | None = None, **extra) -> Scrape:
    response = (client or Client()).get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    assert response["Cache-Control"] == "no-store"
    return Scrape(response.content.decode())


def assert_in_state(result: Scrape, family: str, camera_id: str, camid: str, state: str) -> None:
    """The camera's series says ``state``, and no other state at the same time."""
    assert result.value(family, camera_id=camera_id, camid=camid, state=state) == 1
    assert sum(s.value for s in result.samples if s.name == family and s.labels["camera_id"] == camera_id) == 1


@pytest.fixture
def cameras(db):
    up = Camera.objects.create(ip="10.0.0.1", access_token=make_token(4242), username="admin", password="s3cret",
                               name='Lobby "east"')
    TunnelStatus.objects.create(key=f"camera-{up.camera_id}", camera=up, state=TunnelState.UP, pid=1,
                                open_connections=2, bytes_to_cloud=36142, bytes_from_cloud=584)
    unseen = Camera.objects.create(ip="10.0.0.2", serial="S2", mac="M2", enabled=False)
    TunnelStatus.objects.create(key="gateway", camera=None, state=TunnelState.FAILED, reason="not provisioned")
    return up, unseen


def test_tunnel_series_per_camera_labelled_by_local_id_and_camid(cameras):
    up, unseen = cameras
    result = scrape()
    first, second = str(up.camera_id), str(unseen.camera_id)
    assert_in_state(result, "camgate_camera_tunnel_state", first, "4242", "up")
    assert result.value("camgate_camera_tunnel_open_connections", camera_id=first) == 2
    assert result.value("camgate_camera_tunnel_bytes_total", camera_id=first, direction="to_cloud") == 36142
    assert result.value("camgate_camera_tunnel_bytes_total", camera_id=first, direction="from_cloud") == 584
    assert result.value("camgate_camera_enabled", camera_id=first) == 1
    # Never reported by the agent: "unknown", no camid in its labels.
    assert result.value("camgate_camera_tunnel_state", camera_id=second, camid="", state="unknown") == 1
    assert result.value("camgate_camera_enabled", camera_id=second) == 0
    assert {tuple(sorted(labels)) for labels in result.labels_of("camgate_camera_tunnel_open_connections")} == {
        ("camera_id", "camid", "name")}
    # The camera's name labels its series (quotes escaped as the format says); empty when it has none.
    named = {labels["camera_id"]: labels["name"] for labels in result.labels_of("camgate_camera_enabled")}
    assert named == {first: 'Lobby "east"', second: ""}
    assert result.value("camgate_gateway_tunnel_state", state="failed") == 1
    assert result.families["camgate_camera_tunnel_bytes"].type == "counter"


def test_health_series_per_camera_from_the_agents_last_probe(cameras):
    from camgate.cameras.models import CameraHealth

    up, unseen = cameras
    CameraHealth.objects.create(camera=up, state="auth_failed", reason="401", checked_at="2026-03-04T05:06:07Z",
                                latency_ms=250)
    result = scrape()
    first, second = str(up.camera_id), str(unseen.camera_id)
    assert_in_state(result, "camgate_camera_health_state", first, "4242", "auth_failed")
    assert result.value("camgate_camera_probe_latency_seconds", camera_id=first) == 0.25
    # Inactive, never probed: unknown, and no latency series.
    assert result.value("camgate_camera_health_state", camera_id=second, camid="", state="unknown") == 1
    assert {labels["camera_id"] for labels in result.labels_of("camgate_camera_probe_latency_seconds")} == {first}


def test_no_credentials_or_addresses_in_the_output(cameras):
    text = Client().get("/metrics").content.decode()
    for secret in ("s3cret", "admin", make_token(4242), "10.0.0.1", "M2"):
        assert secret not in text


def test_agent_down_is_a_series_not_an_error(cameras):
    result = scrape()
    assert result.value("camgate_agent_up") == 0
    assert "camgate_agent_reconcile_duration_seconds" not in result.families


@pytest.fixture
def agent_socket():
    """The agent's control socket answering `metrics` as the agent does, from stats that
    saw two passes (one failed)."""
    stats = ReconcileStats()
    with stats.measure():
        pass
    with pytest.raises(RuntimeError), stats.measure():
        raise RuntimeError("database locked")

    async def metrics() -> dict:
        return {"ok": True, "reconcile": stats.as_dict()}

    with control_socket(lambda: {"metrics": metrics}):
        yield stats


def test_reconcile_duration_and_errors_from_the_agent(cameras, agent_socket):
    result = scrape()
    assert result.value("camgate_agent_up") == 1
    assert result.value("camgate_agent_reconcile_duration_seconds_count") == 2
    assert result.value("camgate_agent_reconcile_duration_seconds_bucket", le="+Inf") == 2
    assert result.value("camgate_agent_reconcile_duration_seconds_sum") == pytest.approx(agent_socket.seconds_sum)
    assert result.value("camgate_agent_reconcile_errors_total") == 1
    assert result.value("camgate_agent_start_time_seconds") == pytest.approx(agent_socket.started_at)


def test_a_cancelled_pass_is_not_counted():
    stats = ReconcileStats()
    with pytest.raises(asyncio.CancelledError), stats.measure():
        raise asyncio.CancelledError
    assert stats.as_dict()["passes"] == 0


# --- who may read it ---------------------------------------------------------------

OUTSIDE = {"REMOTE_ADDR": "203.0.113.5"}


def test_without_a_token_a_far_address_is_refused(cameras):
    response = Client().get("/metrics", **OUTSIDE)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Token")
    assert b"camgate_" not in response.content


def test_through_the_gateway_tunnel_loopback_is_not_enough(cameras, api_token):
    # The front marks what came in on the tunnel port; the agent connects from loopback
    # on behalf of anyone on the internet.
    tunnel = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_CAMGATE_ORIGIN": "tunnel"}
    assert Client().get("/metrics", **tunnel).status_code == 401
    assert scrape(HTTP_AUTHORIZATION=f"Token {api_token}", **tunnel).value(
        "camgate_camera_enabled", camera_id=str(cameras[0].camera_id)) == 1


def test_with_the_api_token_any_address_may_read(cameras, api_token):
    assert scrape(HTTP_AUTHORIZATION=f"Token {api_token}", **OUTSIDE).value("camgate_camera_enabled", camera_id=str(cameras[0].camera_id)) == 1


def test_a_wrong_token_is_refused_even_from_loopback(cameras):
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    assert response.status_code == 401


def test_a_logged_in_admin_may_read(cameras, admin_user):
    client = Client()
    client.force_login(admin_user)
    scrape(client, **OUTSIDE)


def test_the_allow_list_is_configurable(cameras, settings):
    settings.METRICS_ALLOW = parse_allow_list("CAMGATE_METRICS_ALLOW", ["203.0.113.0/24"])
    scrape(**OUTSIDE)
    assert Client().get("/metrics").status_code == 401  # loopback no longer listed


def test_both_spellings_and_only_safe_methods(cameras):
    assert Client().get("/metrics/").status_code == 200
    assert Client().post("/metrics").status_code == 405


@pytest.mark.parametrize("address, allowed", [
    ("127.0.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True), ("10.1.2.3", True),
    ("127.0.0.2", False), ("10.2.0.1", False), ("", False), ("not an address", False), (None, False),
])
def test_allow_list_matching(address, allowed):
    networks = parse_allow_list("X", ["127.0.0.1", "::1", "10.1.0.0/16"])
    assert address_allowed(address, networks) is allowed


def test_a_bad_allow_list_entry_is_named():
    with pytest.raises(ConfigError, match="CAMGATE_METRICS_ALLOW: '10.0.0.0/33'"):
        parse_allow_list("CAMGATE_METRICS_ALLOW", ["127.0.0.1", "10.0.0.0/33"])
