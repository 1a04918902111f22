"""Turn cameras and the agent's tunnel reports into plain dicts for the dashboard.

The same dicts feed the server-rendered page and /status.json, so the first paint and
every refresh show the same thing. The agent writes TunnelStatus; anything it wrote
that is not the expected shape is shown as best it can be, never trusted blindly.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.urls import reverse

from camgate import config
from camgate.cameras.models import Camera, TunnelStatus
from camgate.core import GATEWAY_STATUS_KEY, TunnelState
from camgate.web.health_presenter import health_summary, health_view

STATE_LABELS = {
    TunnelState.UP: "Up",
    TunnelState.CONNECTING: "Connecting",
    TunnelState.FAILED: "Failed",
    TunnelState.STOPPED: "Stopped",
}
NOT_REPORTED = "unknown"

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(count) -> str:
    try:
        value = float(count)
    except (TypeError, ValueError):
        return "—"
    if value < 0:
        return "—"
    unit = 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    if unit == 0:
        return f"{int(value)} B"
    return f"{value:.1f} {_UNITS[unit]}" if value < 100 else f"{value:.0f} {_UNITS[unit]}"


def _text(value, limit: int = 300) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value)[:limit]


def _port(value) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 65536 else None


def endpoint_view(raw) -> dict | None:
    """One public endpoint, as {"name", "address", "url", "scheme"}; None if unusable."""
    if not isinstance(raw, dict):
        return None
    name = _text(raw.get("name"), 40)
    host = _text(raw.get("proxy_host"), 255)
    port = _port(raw.get("proxy_port"))
    url = _text(raw.get("url"), 1000)
    try:
        scheme = urlsplit(url).scheme.lower() if url else ""
    except ValueError:
        scheme, url = "", ""
    if scheme not in {"rtsp", "rtsps", "http", "https"}:
        # Only plain stream/web URLs are offered for copying or clicking.
        url, scheme = "", ""
    address = f"{host}:{port}" if host and port else host
    if not (address or url):
        return None
    return {"name": name or scheme or "endpoint", "address": address, "url": url, "scheme": scheme}


def inactive_tunnel_view() -> dict:
    return with_words({**tunnel_view(None), "state": "inactive", "label": "Inactive", "reason": ""})


def tunnel_view(status: TunnelStatus | None, rtsp_path: str = "") -> dict:
    if status is None:
        return with_words({
            "state": NOT_REPORTED,
            "label": "Not reported",
            "reason": "The agent has not reported on this tunnel yet.",
            "endpoints": [],
            "open_connections": 0,
            "bytes_to_cloud": 0,
            "bytes_from_cloud": 0,
            "to_cloud": human_bytes(0),
            "from_cloud": human_bytes(0),
            "updated_at": None,
        })
    endpoints = [view for view in map(endpoint_view, status.public_endpoints(rtsp_path)[:20]) if view]
    return with_words({
        "state": status.state if status.state in STATE_LABELS else NOT_REPORTED,
        "label": STATE_LABELS.get(status.state, _text(status.state, 20) or "Unknown"),
        "reason": _text(status.reason, 500),
        "endpoints": endpoints,
        "open_connections": status.open_connections or 0,
        "bytes_to_cloud": status.bytes_to_cloud or 0,
        "bytes_from_cloud": status.bytes_from_cloud or 0,
        "to_cloud": human_bytes(status.bytes_to_cloud),
        "from_cloud": human_bytes(status.bytes_from_cloud),
        "updated_at": status.updated_at.isoformat() if status.updated_at else None,
    })


def with_words(view: dict) -> dict:
    """The phrases the row shows for a tunnel view: open connections, and what stands
    in for endpoints there are none of."""
    count = view["open_connections"]
    view["connections"] = f"{count} connection{'s' if count != 1 else ''}"
    view["no_endpoints"] = "None yet" if view["state"] in (TunnelState.CONNECTING, NOT_REPORTED) else "None"
    return view


def camera_view(camera: Camera) -> dict:
    return {
        "camera_id": camera.camera_id,
        "name": camera.name,
        "camid": camera.camid if camera.camid is not None else camera.provisioned_camid,
        "ip": camera.ip,
        "http_port": camera.http_port,
        "rtsp_port": camera.rtsp_port,
        "enabled": camera.enabled,
        "rtsp_only": camera.rtsp_only,
        "rtsp_path": camera.rtsp_path,
        "tunnel": tunnel_view(camera.status, camera.rtsp_path) if camera.enabled else inactive_tunnel_view(),
        "health": health_view(camera),
        "edit_url": reverse("web:camera-edit", args=[camera.camera_id]),
        "delete_url": reverse("web:camera-delete", args=[camera.camera_id]),
    }


def gateway_view() -> dict:
    status = TunnelStatus.objects.filter(key=GATEWAY_STATUS_KEY).first()
    return {
        "name": settings.GATEWAY_NAME,
        "uuid": config.gateway_uuid(),
        "tunnel": tunnel_view(status),
    }


def dashboard_state() -> dict:
    cameras = [camera_view(camera) for camera in Camera.objects.select_related("tunnel_status", "health_report").order_by("camera_id")]
    gateway = {**gateway_view(), "summary": health_summary([camera["health"]["state"] for camera in cameras])}
    return {"gateway": gateway, "cameras": cameras}
