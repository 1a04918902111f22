"""The agent's reads and writes for camera health (blocking; called from a thread).

Reads the probe targets (where each enabled camera is and how to log in) and writes
CameraHealth rows, never the person-written Camera row: a report can never undo an
edit made a moment earlier.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.db import close_old_connections, transaction

from camgate.cameras.models import Camera, CameraHealth
from camgate.probe.net import ProbeTarget
from camgate.probe.result import HealthState

HEALTH_FIELDS = ["state", "reason", "checked_at", "latency_ms", "video", "audio", "fingerprint", "auth_failed_at"]


@dataclass(frozen=True)
class HealthRecord:
    camera_id: int
    state: str
    reason: str = ""
    checked_at: datetime | None = None
    latency_ms: int | None = None
    video: dict | None = None
    audio: dict | None = None
    fingerprint: str = ""
    auth_failed_at: datetime | None = None


def fingerprint(target: ProbeTarget) -> str:
    """Changes exactly when a setting the probe uses changes (so a re-save with the
    same password is not a reason to try it again at once)."""
    fields = (target.host, target.rtsp_port, target.http_port, target.rtsp_only, target.rtsp_path,
              target.username, target.password)
    return hashlib.sha256(repr(fields).encode()).hexdigest()


def load_probe_targets() -> dict[int, ProbeTarget]:
    close_old_connections()
    rows = Camera.objects.filter(enabled=True).values_list(
        "camera_id", "ip", "rtsp_port", "http_port", "rtsp_only", "rtsp_path", "username", "password")
    return {row[0]: ProbeTarget(*row[1:]) for row in rows}


def load_auth_failures() -> dict[int, tuple[str, datetime]]:
    """camera id -> (fingerprint, when) of each camera whose login last failed."""
    close_old_connections()
    rows = CameraHealth.objects.filter(auth_failed_at__isnull=False).values_list("camera_id", "fingerprint", "auth_failed_at")
    return {camera_id: (print_, when) for camera_id, print_, when in rows}


def write_reports(records: list[HealthRecord], forget: set[int] = frozenset()) -> None:
    """Upsert ``records`` (a record for a camera deleted meanwhile is dropped) and delete
    the reports of cameras no longer probed (``forget``)."""
    close_old_connections()
    with transaction.atomic():
        if forget:
            CameraHealth.objects.filter(camera_id__in=forget).delete()
        ids = {r.camera_id for r in records}
        existing = set(Camera.objects.filter(camera_id__in=ids).values_list("camera_id", flat=True))
        rows = [CameraHealth(camera_id=r.camera_id, **{name: getattr(r, name) for name in HEALTH_FIELDS})
                for r in records if r.camera_id in existing]
        if rows:
            CameraHealth.objects.bulk_create(rows, update_conflicts=True, unique_fields=["camera"],
                                             update_fields=HEALTH_FIELDS)


def mark_all_unknown(reason: str) -> None:
    """At agent stop: nobody is probing, so no report is current any more. The login
    failures stay on record for the next agent's back-off."""
    close_old_connections()
    CameraHealth.objects.exclude(state=HealthState.UNKNOWN.value).update(state=HealthState.UNKNOWN.value, reason=reason)
