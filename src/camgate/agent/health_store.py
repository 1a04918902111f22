"""The agent's reads and writes for camera health (blocking; called from a thread).

Reads the probe targets (where each enabled camera is and how to log in) and writes
CameraHealth rows, never the person-written Camera row: a report can never undo an
edit made a moment earlier.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from camgate.agent import db
from camgate.probe.net import ProbeTarget
from camgate.probe.result import HealthState

HEALTH_FIELDS = ["state", "reason", "checked_at", "latency_ms", "video", "audio", "fingerprint", "auth_failed_at"]


@dataclass(frozen=True, slots=True)
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
    rows = db.read(
        "SELECT camera_id, ip, rtsp_port, http_port, rtsp_only, rtsp_path, username, password"
        " FROM cameras_camera WHERE enabled ORDER BY camera_id"
    )
    return {camera_id: ProbeTarget(ip, rtsp_port, http_port, bool(rtsp_only), *rest)
            for camera_id, ip, rtsp_port, http_port, rtsp_only, *rest in rows}


def load_auth_failures() -> dict[int, tuple[str, datetime]]:
    """camera id -> (fingerprint, when) of each camera whose login last failed."""
    rows = db.read("SELECT camera_id, fingerprint, auth_failed_at FROM cameras_camerahealth"
                   " WHERE auth_failed_at IS NOT NULL")
    return {camera_id: (print_, db.from_datetime(when)) for camera_id, print_, when in rows}


# CameraHealth.objects.bulk_create(update_conflicts=True, unique_fields=["camera"]).
_UPSERT_REPORT = (
    f"INSERT INTO cameras_camerahealth (camera_id, {', '.join(HEALTH_FIELDS)})"
    f" VALUES ({db.placeholders(1 + len(HEALTH_FIELDS))}) ON CONFLICT (camera_id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in HEALTH_FIELDS)
)


def _report_row(record: HealthRecord) -> tuple:
    return (record.camera_id, record.state, record.reason, db.to_datetime(record.checked_at), record.latency_ms,
            db.to_json(record.video), db.to_json(record.audio), record.fingerprint,
            db.to_datetime(record.auth_failed_at))


def write_reports(records: list[HealthRecord], forget: set[int] = frozenset()) -> None:
    """Upsert ``records`` (a record for a camera deleted meanwhile is dropped) and delete
    the reports of cameras no longer probed (``forget``)."""
    with db.writing() as connection:
        if forget:
            connection.execute(f"DELETE FROM cameras_camerahealth WHERE camera_id IN ({db.placeholders(len(forget))})",
                               sorted(forget))
        existing = db.existing_cameras(connection, (r.camera_id for r in records))
        connection.executemany(_UPSERT_REPORT, [_report_row(r) for r in records if r.camera_id in existing])


def mark_all_unknown(reason: str) -> None:
    """At agent stop: nobody is probing, so no report is current any more. The login
    failures stay on record for the next agent's back-off."""
    with db.writing() as connection:
        connection.execute("UPDATE cameras_camerahealth SET state = ?, reason = ? WHERE state != ?",
                           (HealthState.UNKNOWN.value, reason, HealthState.UNKNOWN.value))
