"""The agent's reads and writes of the database (blocking; called from a thread).

The agent reads desired state (active cameras) and writes reported state (TunnelStatus
rows, and a camera's ``local_token`` once provisioning has given it one). It writes only
rows whose content changed, in one transaction per pass, so hundreds of idle tunnels
cost nothing and the web server's writes are never kept waiting long.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import close_old_connections, transaction

from camgate.agent.plan import CameraRow
from camgate.cameras.models import Camera, TunnelStatus
from camgate.core import TunnelState
from camgate.uplink.tokens import try_decode_camid


@dataclass(frozen=True)
class StatusRecord:
    key: str
    camera_id: int | None
    state: str
    reason: str = ""
    pid: int | None = None
    endpoints: tuple = ()
    open_connections: int = 0
    bytes_to_cloud: int = 0
    bytes_from_cloud: int = 0
    local_token: str = ""  # a provisioned token, to be recorded on the camera


def load_active_cameras() -> list[CameraRow]:
    close_old_connections()
    rows = Camera.objects.filter(enabled=True).values(
        "camera_id", "access_token", "ip", "http_port", "rtsp_port", "serial", "mac", "rtsp_only"
    )
    return [CameraRow(**row) for row in rows]


def write_statuses(records: list[StatusRecord]) -> None:
    """Upsert ``records`` (a record for a camera deleted meanwhile is dropped)."""
    close_old_connections()
    with transaction.atomic():
        camera_ids = {r.camera_id for r in records if r.camera_id is not None}
        existing = set(Camera.objects.filter(camera_id__in=camera_ids).values_list("camera_id", flat=True))
        for record in records:
            if record.camera_id is not None and record.camera_id not in existing:
                continue  # deleted meanwhile; its status went with it
            TunnelStatus.objects.update_or_create(
                key=record.key,
                defaults={
                    "camera_id": record.camera_id,
                    "state": record.state,
                    "reason": record.reason,
                    "pid": record.pid,
                    "endpoints": list(record.endpoints),
                    "open_connections": record.open_connections,
                    "bytes_to_cloud": record.bytes_to_cloud,
                    "bytes_from_cloud": record.bytes_from_cloud,
                },
            )
            if record.local_token and record.camera_id is not None:
                # update(), not save(): this must not touch the fields the user edits.
                Camera.objects.filter(camera_id=record.camera_id, access_token="").exclude(
                    local_token=record.local_token
                ).update(local_token=record.local_token, provisioned_camid=try_decode_camid(record.local_token))


def mark_all_stopped() -> None:
    """At agent start and stop: nothing this process reported is running any more."""
    close_old_connections()
    TunnelStatus.objects.exclude(state=TunnelState.STOPPED).update(
        state=TunnelState.STOPPED, pid=None, open_connections=0, reason="agent not running"
    )
