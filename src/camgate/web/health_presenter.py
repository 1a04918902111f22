"""The camera's own health for the dashboard: a label a person reads at a glance, the
reason, what the stream is, and the gateway's count of cameras by state.

The agent writes CameraHealth; what it wrote is shown defensively (types checked,
lengths bounded), never trusted blindly.
"""

from __future__ import annotations

from urllib.parse import quote

from django.urls import reverse

from camgate.cameras.models import NOT_PROBED_YET, Camera, camera_health
from camgate.probe.result import HealthState

INACTIVE = "inactive"
HEALTH_LABELS = {
    HealthState.OK.value: "Reachable",
    HealthState.UNREACHABLE.value: "Unreachable",
    HealthState.AUTH_FAILED.value: "Login failed",
    HealthState.NO_STREAM.value: "No stream",
    HealthState.ERROR.value: "Error",
    HealthState.UNKNOWN.value: "Not checked yet",
    INACTIVE: "Inactive",
}
# The summary's words, in the order it lists them.
SUMMARY_WORDS = {
    HealthState.OK.value: "ok",
    HealthState.AUTH_FAILED.value: "login failed",
    HealthState.UNREACHABLE.value: "unreachable",
    HealthState.NO_STREAM.value: "no stream",
    HealthState.ERROR.value: "error",
    HealthState.UNKNOWN.value: "not checked yet",
    INACTIVE: "inactive",
}


def _text(value, limit: int = 300) -> str:
    return str(value)[:limit] if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""


def _positive(value) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return value


def stream_text(video, audio) -> str:
    """e.g. "H.264 · 1920×1080 · 25 fps · audio AAC"; empty when nothing is known."""
    parts = []
    if isinstance(video, dict) and _text(video.get("codec"), 40):
        parts.append(_text(video["codec"], 40))
        width, height = _positive(video.get("width")), _positive(video.get("height"))
        if width and height:
            parts.append(f"{int(width)}×{int(height)}")
        fps = _positive(video.get("fps"))
        if fps:
            parts.append(f"{fps:g} fps")
    if isinstance(audio, dict) and _text(audio.get("codec"), 40):
        parts.append(f"audio {_text(audio['codec'], 40)}")
    return " · ".join(parts)


def snapshot_url(camera_id: int, checked_at: str | None) -> str:
    """The camera's snapshot (GET /api/camera/<id>/snapshot/), asked for again after
    each probe: the version in the query changes with the probe's time."""
    base = reverse("api-camera", args=[camera_id]).rstrip("/") + "/snapshot/"
    return f"{base}?v={quote(checked_at or '')}"


def health_view(camera: Camera) -> dict:
    health = camera_health(camera)
    state = health["state"] if health["state"] in HEALTH_LABELS else HealthState.UNKNOWN.value
    if not camera.enabled:
        state = INACTIVE
    ok = state == HealthState.OK.value
    reason = _text(health["reason"], 500)
    if state == INACTIVE:
        reason = "Switched off: not probed, no tunnel."
    elif reason == NOT_PROBED_YET:
        reason = ""  # the label says it
    return {
        "state": state,
        "label": HEALTH_LABELS[state],
        "reason": reason,
        "stream": stream_text(health["video"], health["audio"]) if state != INACTIVE else "",
        "checked_at": health["checked_at"],
        # The picture is asked for only while the camera answers: a snapshot of a camera
        # that cannot give one would only cost it a connection.
        "snapshot_url": snapshot_url(camera.camera_id, health["checked_at"]) if ok else "",
        "placeholder": "No picture yet" if ok else HEALTH_LABELS[state],
    }


def health_summary(states: list[str]) -> str:
    """e.g. "12 cameras: 10 ok, 1 login failed, 1 unreachable"."""
    total = len(states)
    head = f"{total} camera{'s' if total != 1 else ''}"
    counts = [(states.count(state), word) for state, word in SUMMARY_WORDS.items() if states.count(state)]
    return f"{head}: " + ", ".join(f"{count} {word}" for count, word in counts) if counts else head
