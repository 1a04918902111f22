"""The agent's snapshot service on its own: one capture per camera at a time and per
interval, whatever the number of requests; its capture and camera lookup are given
here, so each rule is checked in milliseconds (tests/media/test_snapshot_api.py runs the
real ones against real cameras)."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace

import pytest

from camgate.media.camera_source import SnapshotSource
from camgate.media.settings import SnapshotSettings
from camgate.media.snapshots import CaptureFailed, SnapshotService

SOURCE = SnapshotSource(camera_id=1, host="127.0.0.1", port=554, path="/live", username="admin", password="pw")


class Camera:
    """Counts captures; each one waits for ``release`` (so requests pile up on it)."""

    def __init__(self, fail: str | None = None) -> None:
        self.captures = 0
        self.release = asyncio.Event()
        self.fail = fail

    async def capture(self, source: SnapshotSource, timeout: float) -> bytes:
        self.captures += 1
        await self.release.wait()
        if self.fail:
            raise CaptureFailed(self.fail)
        return b"\xff\xd8frame %d" % self.captures


def service(camera: Camera, min_interval: int = 10, timeout: int = 2, source=SOURCE) -> SnapshotService:
    sources = {1: source}
    made = SnapshotService(SnapshotSettings(min_interval, timeout), load=sources.get, capture=camera.capture)
    made.sources = sources  # a test edits the camera through this
    return made


async def test_a_burst_shares_one_capture():
    camera = Camera()
    snapshots = service(camera)
    waiting = [asyncio.create_task(snapshots.handle(1)) for _ in range(100)]
    async with asyncio.timeout(5):
        while camera.captures == 0:  # until the first capture has started
            await asyncio.sleep(0.01)
    await asyncio.sleep(0)  # every request has now been handled as far as it can go
    assert camera.captures == 1
    camera.release.set()
    answers = await asyncio.gather(*waiting)
    assert {base64.b64decode(a["jpeg"]) for a in answers} == {b"\xff\xd8frame 1"}
    assert all(0 < a["fresh_for"] <= 10 for a in answers)
    later = await snapshots.handle(1)
    assert base64.b64decode(later["jpeg"]) == b"\xff\xd8frame 1" and camera.captures == 1


async def test_after_the_interval_a_new_capture():
    camera = Camera()
    camera.release.set()
    snapshots = service(camera, min_interval=0)
    await snapshots.handle(1)
    await snapshots.handle(1)
    assert camera.captures == 2


async def test_a_failure_is_kept_as_long_as_a_frame():
    camera = Camera(fail="auth failed: the camera refused the stored credentials")
    camera.release.set()
    snapshots = service(camera)
    first, second = await snapshots.handle(1), await snapshots.handle(1)
    assert first["ok"] is False and first["error"] == camera.fail
    assert second["error"] == camera.fail and 0 < second["retry_after"] <= 10
    assert camera.captures == 1


async def test_an_edited_camera_is_captured_anew():
    camera = Camera()
    camera.release.set()
    snapshots = service(camera)
    await snapshots.handle(1)
    snapshots.sources[1] = replace(SOURCE, password="new")
    await snapshots.handle(1)
    assert camera.captures == 2


async def test_waiters_give_up_at_the_timeout_and_no_second_capture_starts(monkeypatch):
    monkeypatch.setattr("camgate.media.snapshots.WAIT_GRACE_S", 0.05)
    camera = Camera()  # never released: the capture hangs
    snapshots = service(camera, timeout=0.1)
    answer = await snapshots.handle(1)
    assert answer == {"ok": False, "error": "no frame within 0.1 s", "retry_after": 10}
    joined = asyncio.create_task(snapshots.handle(1))
    await asyncio.sleep(0.05)
    assert camera.captures == 1  # the hung capture is still the one: no second session
    camera.release.set()
    assert (await joined)["ok"] is True


async def test_unknown_camera_and_bad_ids():
    snapshots = service(Camera())
    assert (await snapshots.handle(2)) == {"ok": False, "missing": True, "error": "no camera 2"}
    for bad in ("1", True, 1.5, None):
        assert (await snapshots.handle(bad))["ok"] is False


async def test_frames_are_not_held_past_their_interval():
    camera = Camera()
    camera.release.set()
    snapshots = service(camera, min_interval=0)
    await snapshots.handle(1)
    assert snapshots._last == {1: snapshots._last[1]}
    snapshots.sources[2] = replace(SOURCE, camera_id=2)
    await snapshots.handle(2)
    assert set(snapshots._last) == {2}  # camera 1's frame, past its interval, is gone


def test_credentials_are_percent_encoded_in_the_url_and_scrubbed_from_text():
    source = replace(SOURCE, host="::1", username="cam admin", password="p@ss:w/rd")
    assert source.url == "rtsp://cam%20admin:p%40ss%3Aw%2Frd@[::1]:554/live"
    leaked = f"Connection refused: '{source.url}' (password p@ss:w/rd, p%40ss%3Aw%2Frd)"
    scrubbed = source.scrub(leaked)
    assert "p@ss" not in scrubbed and "p%40ss" not in scrubbed and "cam%20admin" not in scrubbed
    assert scrubbed.startswith("Connection refused: 'rtsp://***@[::1]:554/live'")
    assert "pw" not in repr(SOURCE)  # a source in a log line shows no password
    assert replace(SOURCE, username="").url == "rtsp://127.0.0.1:554/live"


@pytest.mark.parametrize("name, value", [("CAMGATE_SNAPSHOT_TIMEOUT", "0"), ("CAMGATE_SNAPSHOT_MIN_INTERVAL", "-1"),
                                         ("CAMGATE_SNAPSHOT_TIMEOUT", "ten")])
def test_settings_refuse_nonsense(monkeypatch, name, value):
    from camgate.config import ConfigError

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        SnapshotSettings.from_environment()


async def test_a_capture_that_cannot_run_is_one_answer_for_all(caplog):
    async def broken(source, timeout):
        raise OSError("Resource temporarily unavailable")  # e.g. no process could be forked

    snapshots = SnapshotService(SnapshotSettings(10, 2), load={1: SOURCE}.get, capture=broken)
    answers = await asyncio.gather(*(snapshots.handle(1) for _ in range(3)))
    assert {a["error"] for a in answers} == {"error: the capture could not run"}
    assert snapshots.captures_started == 1


def test_a_network_error_from_ffmpeg_is_unreachable_and_carries_no_url():
    import errno

    import av

    from camgate.media.camera_source import SnapshotSource
    from camgate.media.grab import _open_failure

    source = SnapshotSource.__new__(SnapshotSource)
    error = av.error.OSError(errno.EHOSTUNREACH, "No route to host", "rtsp://admin:secret@10.0.0.9/")
    failure = _open_failure(error, source, timed_out=False, timeout=10)
    assert str(failure) == "unreachable: No route to host"
