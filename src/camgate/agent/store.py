"""The agent's reads and writes of the database (blocking; called from a thread).

The agent reads desired state (active cameras) and writes reported state (TunnelStatus
rows, and a camera's ``local_token`` once provisioning has given it one). It writes only
rows whose content changed, in one transaction per pass, so hundreds of idle tunnels
cost nothing and the web server's writes are never kept waiting long.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from camgate.agent import db
from camgate.agent.plan import CameraRow
from camgate.core import TunnelState
from camgate.media.camera_source import SnapshotSource, source_from_camera
from camgate.uplink.protocol import PublicEndpoint
from camgate.uplink.tokens import try_decode_camid


@dataclass(frozen=True, slots=True)  # slots: the agent keeps the last one written per tunnel
class StatusRecord:
    key: str
    camera_id: int | None
    state: str
    reason: str = ""
    pid: int | None = None
    endpoints: tuple[PublicEndpoint, ...] = ()  # the client's own: written as endpoint_view shows them
    open_connections: int = 0
    bytes_to_cloud: int = 0
    bytes_from_cloud: int = 0
    local_token: str = ""  # a provisioned token, to be recorded on the camera


def endpoint_view(endpoint: PublicEndpoint) -> dict:
    """A public endpoint as the status row keeps it (the API and the UI read it)."""
    name, host, port = endpoint.name, endpoint.proxy_host, endpoint.proxy_port
    scheme = {"rtsp": "rtsp", "http": "http", "web": "http", "ssh": "ssh"}.get(name, "tcp")
    return {"name": name, "proxy_host": host, "proxy_port": port, "url": f"{scheme}://{host}:{port}/"}


def load_active_cameras() -> list[CameraRow]:
    rows = db.read(
        "SELECT camera_id, access_token, ip, http_port, rtsp_port, serial, mac, rtsp_only"
        " FROM cameras_camera WHERE enabled ORDER BY camera_id"
    )
    return [CameraRow(*row[:7], rtsp_only=bool(row[7])) for row in rows]


def load_snapshot_source(camera_id: int) -> SnapshotSource | None:
    """Where the snapshot service captures camera ``camera_id``, as stored now."""
    columns = ("camera_id", "ip", "rtsp_port", "rtsp_path", "username", "password")
    rows = db.read(f"SELECT {', '.join(columns)} FROM cameras_camera WHERE camera_id = ?", (camera_id,))
    return source_from_camera(SimpleNamespace(**dict(zip(columns, rows[0])))) if rows else None


# TunnelStatus.objects.update_or_create(key=..., defaults=...) in one statement; updated_at
# is auto_now, so it changes with every write, as save() would change it.
_UPSERT_STATUS = (
    "INSERT INTO cameras_tunnelstatus (key, camera_id, state, reason, pid, endpoints, open_connections,"
    " bytes_to_cloud, bytes_from_cloud, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET camera_id = excluded.camera_id, state = excluded.state,"
    " reason = excluded.reason, pid = excluded.pid, endpoints = excluded.endpoints,"
    " open_connections = excluded.open_connections, bytes_to_cloud = excluded.bytes_to_cloud,"
    " bytes_from_cloud = excluded.bytes_from_cloud, updated_at = excluded.updated_at"
)

# The one camera column the agent writes, with the camid it names: only on a camera that
# has no access token of its own, and only the token's columns, never a field the user
# edits (nor updated_at, which an edit sets).
_RECORD_LOCAL_TOKEN = (
    "UPDATE cameras_camera SET local_token = ?, provisioned_camid = ?"
    " WHERE camera_id = ? AND access_token = '' AND local_token != ?"
)


def write_statuses(records: list[StatusRecord]) -> None:
    """Upsert ``records`` (a record for a camera deleted meanwhile is dropped)."""
    with db.writing() as connection:
        existing = db.existing_cameras(connection, (r.camera_id for r in records if r.camera_id is not None))
        written_at = db.now()
        for record in records:
            if record.camera_id is not None and record.camera_id not in existing:
                continue  # deleted meanwhile; its status went with it
            connection.execute(_UPSERT_STATUS, (
                record.key, record.camera_id, TunnelState(record.state).value, record.reason, record.pid,
                db.to_json([endpoint_view(e) for e in record.endpoints]), record.open_connections, record.bytes_to_cloud,
                record.bytes_from_cloud, written_at,
            ))
            if record.local_token and record.camera_id is not None:
                connection.execute(_RECORD_LOCAL_TOKEN, (
                    record.local_token, try_decode_camid(record.local_token), record.camera_id, record.local_token))


def mark_all_stopped() -> None:
    """At agent start and stop: nothing this process reported is running any more."""
    with db.writing() as connection:
        connection.execute(
            "UPDATE cameras_tunnelstatus SET state = ?, pid = NULL, open_connections = 0, reason = ?"
            " WHERE state != ?", (TunnelState.STOPPED.value, "agent not running", TunnelState.STOPPED.value))
