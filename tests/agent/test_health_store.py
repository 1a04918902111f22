"""The agent's health table writes: upserts, cameras deleted meanwhile, forgetting."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from camgate.agent import health_store
from camgate.agent.health_store import HealthRecord
from camgate.cameras.models import Camera, CameraHealth
from camgate.probe.net import ProbeTarget

pytestmark = pytest.mark.usefixtures("agent_database")

NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


def test_only_enabled_cameras_are_probe_targets_with_their_login_and_path():
    on = Camera.objects.create(ip="10.0.0.5", rtsp_port=8554, rtsp_path="/live", username="u", password="p")
    Camera.objects.create(ip="10.0.0.6", enabled=False)
    assert health_store.load_probe_targets() == {
        on.camera_id: ProbeTarget("10.0.0.5", 8554, 80, False, "/live", "u", "p")}


def test_reports_are_upserted_and_a_deleted_cameras_report_dropped():
    camera = Camera.objects.create(ip="10.0.0.5")
    health_store.write_reports([HealthRecord(camera.camera_id, "auth_failed", "refused", NOW, 5, fingerprint="f",
                                             auth_failed_at=NOW), HealthRecord(9999, "ok")])
    health_store.write_reports([HealthRecord(camera.camera_id, "ok", "", NOW, 7, {"codec": "H.264", "width": 1,
                                             "height": 1, "fps": None}, None, "f")])
    report = CameraHealth.objects.get()
    assert (report.state, report.latency_ms, report.video["codec"], report.auth_failed_at) == ("ok", 7, "H.264", None)
    assert health_store.load_auth_failures() == {}


def test_login_failures_survive_the_agent_stopping_and_forget_deletes():
    camera = Camera.objects.create(ip="10.0.0.5")
    health_store.write_reports([HealthRecord(camera.camera_id, "auth_failed", "refused", NOW, fingerprint="f", auth_failed_at=NOW)])
    health_store.mark_all_unknown("agent not running")
    assert (CameraHealth.objects.get().state, CameraHealth.objects.get().reason) == ("unknown", "agent not running")
    assert health_store.load_auth_failures() == {camera.camera_id: ("f", NOW)}
    health_store.write_reports([], forget={camera.camera_id})
    assert not CameraHealth.objects.exists()
