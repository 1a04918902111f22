"""What a probe found out about a camera: its health state and stream facts."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class HealthState(str, enum.Enum):
    UNKNOWN = "unknown"  # not probed yet (or not probed at all: the camera is inactive)
    OK = "ok"
    UNREACHABLE = "unreachable"  # refused, timed out, no route, name not resolved
    AUTH_FAILED = "auth_failed"  # 401 with the stored credentials, or none stored
    NO_STREAM = "no_stream"  # 404/454 for the path, or no video in the SDP
    ERROR = "error"  # anything else: the reason has the RTSP status line or the fault


@dataclass(frozen=True)
class VideoFacts:
    codec: str
    width: int | None = None
    height: int | None = None
    fps: float | None = None

    def as_dict(self) -> dict:
        return {"codec": self.codec, "width": self.width, "height": self.height, "fps": self.fps}


@dataclass(frozen=True)
class AudioFacts:
    codec: str

    def as_dict(self) -> dict:
        return {"codec": self.codec}


@dataclass(frozen=True)
class ProbeResult:
    state: HealthState
    reason: str = ""
    latency_ms: int | None = None  # from starting the TCP connect to the camera's first RTSP answer
    video: VideoFacts | None = None
    audio: AudioFacts | None = None


def printable(text: str, limit: int = 200) -> str:
    """A peer's text made safe for a reason line: no control characters, bounded."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text[: limit + 1])
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
