"""The agent's health probes: every enabled camera, every interval, a few at a time.

A camera is probed at once when it appears or when a setting the probe uses changes
(address, ports, path, login), then every ``interval`` seconds after its last probe
ended. A wrong password is never tried again sooner than that, not even by an agent
restarted meanwhile (cameras lock accounts after a few failures). Probes share the
agent's event loop with the tunnels: they only wait on sockets, their parsing is
bounded, and at most ``concurrency`` run at once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from camgate import config
from camgate.agent import health_store
from camgate.agent.health_store import HealthRecord, fingerprint
from camgate.agent.waiting import event_or_timeout
from camgate.probe.net import Networks, ProbeTarget, parse_networks, probe_camera
from camgate.probe.result import HealthState, ProbeResult

log = logging.getLogger("camgate.agent.probe")

WRITE_EVERY_S = 1.0  # reports are batched into one transaction at most this often
SETTINGS_CHANGED = "settings changed; probing"


@dataclass(frozen=True)
class ProbeSettings:
    interval: float = config.DEFAULT_PROBE_INTERVAL_S
    concurrency: int = 16
    step_timeout: float = config.PROBE_STEP_TIMEOUT_S
    networks: Networks = ()  # the only addresses probes may connect to; empty: any

    @classmethod
    def from_environment(cls) -> "ProbeSettings":
        interval = config.env_int("CAMGATE_PROBE_INTERVAL", config.DEFAULT_PROBE_INTERVAL_S)
        if interval < 1:
            raise config.ConfigError(f"CAMGATE_PROBE_INTERVAL must be at least 1 (seconds), not {interval}")
        try:
            networks = parse_networks(config.env_str("CAMGATE_PROBE_NETWORKS"))
        except ValueError as error:
            raise config.ConfigError(f"CAMGATE_PROBE_NETWORKS: {error}") from None
        return cls(interval=float(interval), networks=networks)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _record(camera_id: int, result: ProbeResult, print_: str, checked_at: datetime | None) -> HealthRecord:
    failed = result.state is HealthState.AUTH_FAILED
    return HealthRecord(
        camera_id=camera_id, state=result.state.value, reason=result.reason, checked_at=checked_at,
        latency_ms=result.latency_ms, video=result.video.as_dict() if result.video else None,
        audio=result.audio.as_dict() if result.audio else None, fingerprint=print_,
        auth_failed_at=checked_at if failed else None,
    )


class Prober:
    def __init__(self, settings: ProbeSettings = ProbeSettings(), probe=probe_camera) -> None:
        self.settings = settings
        self._probe_camera = probe
        self.targets: dict[int, ProbeTarget] = {}
        self._prints: dict[int, str] = {}
        self._due: dict[int, float] = {}  # camera id -> loop time of its next probe
        self._running: dict[int, asyncio.Task] = {}
        self._pending: dict[int, HealthRecord] = {}
        self._forget: set[int] = set()
        self._past_failures: dict[int, tuple[str, datetime]] = {}
        self._wake = asyncio.Event()
        self._dirty = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.concurrency)

    async def restore(self) -> None:
        """Read the login failures a previous agent recorded; call before update_targets."""
        self._past_failures = await asyncio.to_thread(health_store.load_auth_failures)

    # --- what to probe ----------------------------------------------------------------

    def update_targets(self, targets: dict[int, ProbeTarget]) -> None:
        now = asyncio.get_running_loop().time()
        for camera_id in [c for c in self.targets if c not in targets]:
            self._drop(camera_id)
            self._forget.add(camera_id)
            self._dirty.set()
        for camera_id, target in targets.items():
            print_ = fingerprint(target)
            if self._prints.get(camera_id) == print_:
                continue
            known = camera_id in self._prints
            self._drop(camera_id)
            self._forget.discard(camera_id)
            self.targets[camera_id], self._prints[camera_id] = target, print_
            self._due[camera_id] = now + self._backoff(camera_id, print_, known)
            if known:
                self._report(HealthRecord(camera_id, HealthState.UNKNOWN.value, SETTINGS_CHANGED, fingerprint=print_))
        self._wake.set()

    def _backoff(self, camera_id: int, print_: str, known: bool) -> float:
        """Seconds to wait before the first probe: none, unless a previous agent saw
        these very settings fail to log in less than an interval ago."""
        past = self._past_failures.pop(camera_id, None)
        if known or past is None or past[0] != print_:
            return 0.0
        wait = self.settings.interval - (_now() - past[1]).total_seconds()
        if wait <= 0:
            return 0.0
        retry_at = past[1] + timedelta(seconds=self.settings.interval)
        self._report(HealthRecord(
            camera_id, HealthState.AUTH_FAILED.value,
            f"the camera refused the stored login; not tried again before {retry_at:%H:%M:%S} UTC",
            checked_at=past[1], fingerprint=print_, auth_failed_at=past[1]))
        return min(wait, self.settings.interval)

    def _drop(self, camera_id: int) -> None:
        task = self._running.pop(camera_id, None)
        if task is not None:
            task.cancel()
        self.targets.pop(camera_id, None)
        self._prints.pop(camera_id, None)
        self._due.pop(camera_id, None)
        self._pending.pop(camera_id, None)

    # --- probing ----------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            now = loop.time()
            for camera_id, due in list(self._due.items()):
                if due <= now and camera_id not in self._running:
                    del self._due[camera_id]
                    self._running[camera_id] = asyncio.create_task(
                        self._probe(camera_id, self.targets[camera_id], self._prints[camera_id]))
            wait = min(self._due.values(), default=now + self.settings.interval) - now
            await event_or_timeout(self._wake, max(wait, 0.01))

    async def _probe(self, camera_id: int, target: ProbeTarget, print_: str) -> None:
        try:
            async with self._slots:
                result = await self._probe_camera(target, self.settings.step_timeout, self.settings.networks)
        except asyncio.CancelledError:
            raise
        except Exception:  # a probe bug must cost one report, never the agent
            log.exception("probe of camera %d failed", camera_id)
            result = ProbeResult(HealthState.ERROR, "the probe failed (see the agent's log)")
        finally:
            if self._running.get(camera_id) is asyncio.current_task():
                del self._running[camera_id]
        if self._prints.get(camera_id) != print_:
            return  # the settings changed meanwhile; a new probe is on its way
        self._report(_record(camera_id, result, print_, _now()))
        self._due[camera_id] = asyncio.get_running_loop().time() + self.settings.interval
        self._wake.set()

    # --- reporting --------------------------------------------------------------------

    def _report(self, record: HealthRecord) -> None:
        self._pending[record.camera_id] = record
        self._dirty.set()

    async def flush(self) -> None:
        records, forget = list(self._pending.values()), set(self._forget)
        if not (records or forget):
            return
        self._pending.clear()
        self._forget -= forget
        try:
            await asyncio.to_thread(health_store.write_reports, records, forget)
        except BaseException:
            for record in records:  # keep what was not written, unless newer news came
                self._pending.setdefault(record.camera_id, record)
            self._forget |= forget
            raise

    async def write_forever(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("writing camera health failed; retrying")
                self._dirty.set()
            await asyncio.sleep(WRITE_EVERY_S)

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()
        await self.flush()
