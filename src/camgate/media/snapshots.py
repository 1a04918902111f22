"""The agent's snapshot service: at most one capture per camera at a time and per
``min_interval`` seconds, the last result served in between, captures run in child
processes (``grab.py``), a few at once.

Why in the agent: the web server runs several worker processes, and "at most one RTSP
session per camera" has to hold across them all. The agent is one asyncio process that
already owns camera I/O, so one dict and one task per camera are the whole lock: every
request for a camera while its capture runs waits for that same capture. The answer
goes back over the control socket; frames are kept in memory only while fresh, so the
memory held is the frames captured in the last ``min_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from typing import Awaitable, Callable

from camgate.media.camera_source import SnapshotSource, load_source
from camgate.media.settings import SnapshotSettings

log = logging.getLogger(__name__)

MAX_PARALLEL_CAPTURES = 4  # child processes at once, all cameras together (2-core box)
MAX_STDERR_LOGGED = 2000
EXIT_NO_FRAME = 2  # grab.py's exit status when it wrote {"error": reason} on stdout
# The child stops this long before the deadline, so its own reason (which step went
# silent) arrives before it is killed at the deadline.
CHILD_MARGIN_S = 0.5
WAIT_GRACE_S = 1.0  # a waiter's bound past the timeout: the capture's own end comes first


class CaptureFailed(Exception):
    """The camera gave no frame; the message is the reason, free of credentials."""


@dataclass
class Snapshot:
    source: SnapshotSource  # what was captured: an edited camera is captured anew
    started: float  # monotonic: the throttle counts from the start of a capture
    captured_at: float  # wall clock: Last-Modified
    jpeg: bytes | None = None
    error: str | None = None


Capture = Callable[[SnapshotSource, float], Awaitable[bytes]]


async def capture_in_child(source: SnapshotSource, timeout: float) -> bytes:
    """Run grab.py for ``source``: its JPEG, or CaptureFailed with the reason."""
    deadline = time.monotonic() + timeout
    request = json.dumps({"source": asdict(source), "deadline": deadline - CHILD_MARGIN_S, "timeout": timeout}).encode()
    # The URL and its credentials go on stdin, never on the command line (ps shows that).
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "camgate.media.grab",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(child.communicate(request), max(0.0, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        raise CaptureFailed(f"no frame within {timeout:g} s") from None
    finally:
        if child.returncode is None:  # timed out or cancelled: this ends the RTSP session
            child.kill()
            await child.wait()
    if child.returncode == 0 and out.startswith(b"\xff\xd8"):
        return out
    if child.returncode == EXIT_NO_FRAME:
        try:
            raise CaptureFailed(source.scrub(str(json.loads(out)["error"])))
        except (ValueError, KeyError, TypeError):
            pass
    log.warning("snapshot of camera %d: the capture failed (exit %s): %s", source.camera_id,
                child.returncode, source.scrub(err[-MAX_STDERR_LOGGED:].decode(errors="replace")))
    raise CaptureFailed("error: the capture failed; see the agent's log")


class SnapshotService:
    def __init__(
        self,
        settings: SnapshotSettings,
        load: Callable[[int], SnapshotSource | None] = load_source,
        capture: Capture = capture_in_child,
        max_parallel: int = MAX_PARALLEL_CAPTURES,
    ) -> None:
        self.settings = settings
        self._load = load
        self._capture = capture
        self._slots = asyncio.Semaphore(max_parallel)
        self._last: dict[int, Snapshot] = {}
        self._running: dict[int, asyncio.Task[Snapshot]] = {}
        self.captures_started = 0  # for tests and the bench: sessions this agent opened

    @classmethod
    def from_environment(cls) -> "SnapshotService":
        return cls(SnapshotSettings.from_environment())

    async def handle(self, camera_id: int) -> dict:
        """The control socket's ``snapshot`` command."""
        if isinstance(camera_id, bool) or not isinstance(camera_id, int):
            return {"ok": False, "error": "camera_id must be an integer"}
        arrived = time.monotonic()
        source = await asyncio.to_thread(self._load, camera_id)
        if source is None:
            return {"ok": False, "missing": True, "error": f"no camera {camera_id}"}
        self._forget_stale()
        snapshot = self._fresh(camera_id, source)
        if snapshot is None:
            task = self._running.get(camera_id)
            if task is None:
                task = asyncio.create_task(self._run(camera_id, source))
                self._running[camera_id] = task
            # Every waiter gives up at the same bound; the capture itself goes on (and is
            # killed at its own deadline), so a waiter leaving never starts a second one.
            budget = self.settings.timeout + WAIT_GRACE_S - (time.monotonic() - arrived)
            try:
                snapshot = await asyncio.wait_for(asyncio.shield(task), max(0.1, budget))
            except asyncio.TimeoutError:
                return self._failure(f"no frame within {self.settings.timeout:g} s", self.settings.min_interval)
        return self._answer(snapshot)

    def _fresh(self, camera_id: int, source: SnapshotSource) -> Snapshot | None:
        last = self._last.get(camera_id)
        if last is None or last.source != source:
            return None
        return last if time.monotonic() - last.started < self.settings.min_interval else None

    def _forget_stale(self) -> None:
        now = time.monotonic()
        for camera_id in [c for c, s in self._last.items() if now - s.started >= self.settings.min_interval]:
            del self._last[camera_id]

    async def _run(self, camera_id: int, source: SnapshotSource) -> Snapshot:
        try:
            async with self._slots:
                started = time.monotonic()
                self.captures_started += 1
                try:
                    jpeg = await self._capture(source, self.settings.timeout)
                    snapshot = Snapshot(source, started, time.time(), jpeg=jpeg)
                except CaptureFailed as failure:
                    log.info("snapshot of camera %d: %s", camera_id, failure)
                    snapshot = Snapshot(source, started, time.time(), error=str(failure))
                except Exception:  # e.g. no process could be started: still one answer for all
                    log.exception("snapshot of camera %d: the capture could not run", camera_id)
                    snapshot = Snapshot(source, started, time.time(), error="error: the capture could not run")
            # A failure is kept as long as a frame: a camera that refuses the password
            # is not asked again sooner (cameras lock accounts after a few failures).
            self._last[camera_id] = snapshot
            return snapshot
        finally:
            self._running.pop(camera_id, None)

    def _fresh_for(self, snapshot: Snapshot) -> float:
        return max(0.0, self.settings.min_interval - (time.monotonic() - snapshot.started))

    def _answer(self, snapshot: Snapshot) -> dict:
        if snapshot.jpeg is None:
            return self._failure(snapshot.error or "error: no frame", self._fresh_for(snapshot))
        return {
            "ok": True,
            "jpeg": base64.b64encode(snapshot.jpeg).decode(),
            "captured_at": snapshot.captured_at,
            "fresh_for": self._fresh_for(snapshot),
        }

    @staticmethod
    def _failure(reason: str, retry_after: float) -> dict:
        return {"ok": False, "error": reason, "retry_after": retry_after}
