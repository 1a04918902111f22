"""Where a camera's picture comes from: its RTSP URL with its stored credentials, and
how to keep those credentials out of any text that leaves the capture."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote

USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@")


@dataclass(frozen=True)
class SnapshotSource:
    camera_id: int
    host: str
    port: int
    path: str = "/"
    username: str = ""
    password: str = field(default="", repr=False)

    @property
    def url(self) -> str:
        """The URL FFmpeg opens. Credentials are percent-encoded (FFmpeg decodes them),
        so a password with ``@``, ``:`` or ``/`` in it stays one password."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        userinfo = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}@" if self.username else ""
        return f"rtsp://{userinfo}{host}:{self.port}{self.path}"

    @property
    def has_credentials(self) -> bool:
        return bool(self.username)

    def scrub(self, text: str) -> str:
        """``text`` without any URL's user info and without the password in either
        spelling (as stored, percent-encoded) FFmpeg or Python might echo."""
        text = USERINFO.sub(r"\1***@", text)
        for secret in (self.password, quote(self.password, safe="")):
            if len(secret) >= 3:  # a shorter one would blank out ordinary words
                text = text.replace(secret, "***")
        return text


def source_from_camera(camera) -> SnapshotSource:
    # rtsp_path is a newer camera field; a database without it means the stream is at /.
    return SnapshotSource(
        camera_id=camera.camera_id,
        host=camera.ip,
        port=camera.rtsp_port,
        path=getattr(camera, "rtsp_path", "") or "/",
        username=camera.username or "",
        password=camera.password or "",
    )


def load_source(camera_id: int) -> SnapshotSource | None:
    """The camera's source as stored now (blocking: call it from a thread)."""
    from django.db import close_old_connections

    from camgate.cameras.models import Camera

    close_old_connections()
    camera = Camera.objects.filter(camera_id=camera_id).first()
    return source_from_camera(camera) if camera is not None else None
