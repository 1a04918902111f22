"""Snapshot fixtures: a real GStreamer camera, the agent's snapshot service on the real
control socket, and a way to read the JPEG that comes back."""

from __future__ import annotations

import io

import av
import pytest

from camgate.media.snapshots import SnapshotService
from tests.support.agent_socket import control_socket
from tests.support.cameras import RtspCamera
from tests.support.processes import free_port

CAMERA_SIZE = (352, 288)  # not a default anywhere, so a size that matches means something
# A capture's deadline: the capture child imports FFmpeg's libraries before it can tell
# "no video" from "no frame", which took over 3 s on two loaded cores.
TIMEOUT_S = 5


@pytest.fixture(scope="module")
def rtsp_camera():
    camera = RtspCamera(free_port(), *CAMERA_SIZE, path="/").start()
    yield camera
    camera.stop()


@pytest.fixture
def snapshot_service(transactional_db, monkeypatch):
    """The agent's service, serving the control socket from a thread; the web side reads
    the same settings from the environment."""
    monkeypatch.setenv("CAMGATE_SNAPSHOT_TIMEOUT", str(TIMEOUT_S))
    monkeypatch.setenv("CAMGATE_SNAPSHOT_MIN_INTERVAL", "10")
    services = []

    def make():
        services.append(SnapshotService.from_environment())
        return {"snapshot": services[0].handle}

    with control_socket(make):
        yield services[0]


def jpeg_size(data: bytes) -> tuple[int, int]:
    """Decode the JPEG (FFmpeg's decoder, through PyAV) and give its width and height."""
    with av.open(io.BytesIO(data)) as container:
        assert container.format.name == "jpeg_pipe"
        frame = next(container.decode(video=0))
        return frame.width, frame.height
