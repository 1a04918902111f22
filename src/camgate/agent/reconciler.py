"""The agent: turns the camera table into running tunnels and reports what is true.

Like a controller, it is level-triggered and idempotent: each pass reads the whole
desired state and converges to it, so a missed poke, a crash or a restart of the agent
costs at most one pass. Pokes from the web server (the control socket) only make the
next pass come sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
from dataclasses import replace
from typing import Callable

from camgate import config, event_loop
from camgate.agent import health_store, store
from camgate.agent.arenas import one_arena
from camgate.agent.control import socket_path
from camgate.agent.control_server import serve_control
from camgate.agent.plan import PlannedTunnel, UplinkSettings, plan_tunnels
from camgate.agent.prober import ProbeSettings, Prober
from camgate.agent.single import AgentAlreadyRunning, hold_agent_lock
from camgate.agent.waiting import event_or_timeout
from camgate.core import GATEWAY_STATUS_KEY, TunnelState
from camgate.log_rate import limit_repeated_errors
from camgate.process_limits import raise_open_files_limit
from camgate.media.settings import SnapshotSettings
from camgate.media.snapshots import SnapshotService
from camgate.metrics.reconcile_stats import ReconcileStats
from camgate.uplink.client import TunnelClient
from camgate.uplink.client_http import shared_session
from camgate.uplink.client import ClientStatus

log = logging.getLogger("camgate.agent")

RECONCILE_EVERY_S = 5.0  # catches edits made while no poke could reach us
STATUS_EVERY_S = 2.0  # traffic counters; state changes are written at once
RESTART_WAIT_S = 15.0  # less than control.RESTART_ANSWER_TIMEOUT_S, so the answer arrives


def _settled(status: ClientStatus) -> bool:
    return status.state in (TunnelState.UP, TunnelState.FAILED)


class Agent:
    def __init__(self, settings: UplinkSettings, gateway_uuid: str, probe_settings: ProbeSettings = ProbeSettings(),
                 client_factory: Callable[..., TunnelClient] = TunnelClient) -> None:
        self.settings = settings
        # Makes a tunnel client from (spec, on_status=...): TunnelClient, or a stand-in
        # in the agent's own tests, which test the agent and not the tunnel.
        self._client_factory = client_factory
        self.gateway_uuid = gateway_uuid
        self.prober = Prober(probe_settings)
        self.clients: dict[str, TunnelClient] = {}
        self.plan: dict[str, PlannedTunnel] = {}
        self._wake = asyncio.Event()
        self._status_changed = asyncio.Event()
        self._written: dict[str, store.StatusRecord] = {}
        self._lock = asyncio.Lock()
        # Passes started and completed: "sync" waits for one that began after it was asked.
        self.reconciles = 0
        self._started = 0
        self._completed = asyncio.Condition()
        self._restarted: TunnelClient | None = None  # the gateway client the last restart started
        self.reconcile_stats = ReconcileStats()
        self.snapshots = SnapshotService(SnapshotSettings.from_environment(), load=store.load_snapshot_source)

    # --- the control socket ---------------------------------------------------------

    async def _on_reconcile(self) -> dict:
        self._wake.set()
        return {"ok": True}

    async def _on_metrics(self) -> dict:
        return {"ok": True, "reconcile": self.reconcile_stats.as_dict()}

    async def _on_sync(self) -> dict:
        """Reconcile now and answer once a pass that began after this request is done:
        the table as it is now has been seen (a positive signal, for tests and tools)."""
        wanted = self._started + 1
        self._wake.set()
        async with self._completed:
            await self._completed.wait_for(lambda: self.reconciles >= wanted)
        return {"ok": True, "reconciles": self.reconciles}

    async def _on_ping(self) -> dict:
        return {"ok": True, "pid": os.getpid(), "tunnels": len(self.clients), "reconciles": self.reconciles}

    async def _on_settings(self) -> dict:
        return {"ok": True, "settings": self.settings.as_environment()}

    async def _on_restart_gateway(self) -> dict:
        async with self._lock:
            planned = self.plan.get(GATEWAY_STATUS_KEY)
            if planned is None or planned.spec is None:
                return {"ok": False, "error": "the gateway's tunnel is disabled (CAMGATE_GATEWAY_TUNNEL=false)"}
            running = self.clients.get(GATEWAY_STATUS_KEY)
            if running is None or running is not self._restarted or _settled(running.status):
                await self._stop_client(GATEWAY_STATUS_KEY)
                self._restarted = self._start_client(planned)
            # else a restart asked for a moment ago is still on its way up: the tunnel it
            # brings up is newer than this request too, so this one joins it rather than
            # tearing it down (ten at once would otherwise take turns for ten times as long).
        status = await self._wait_for_gateway_outcome(RESTART_WAIT_S)
        if status.state is TunnelState.UP:
            return {"ok": True}
        reason = status.reason or status.last_error or "no answer from the relay"
        return {"ok": False, "error": f"gateway tunnel restarted but not up after {RESTART_WAIT_S:g} s: {reason}"}

    async def _wait_for_gateway_outcome(self, timeout: float) -> ClientStatus:
        """How the gateway's tunnel ends up: up, failed, or still neither at ``timeout``.

        Followed through whichever client serves it at each moment, not the one this
        restart started: a later restart (or a reconcile) replaces that one, and the
        restart that won is the one whose outcome every caller wants to hear."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            client = self.clients.get(GATEWAY_STATUS_KEY)  # None while one replaces another
            status = client.status if client is not None else None
            if status is not None and _settled(status):
                return status
            if loop.time() >= deadline:
                return status or ClientStatus(GATEWAY_STATUS_KEY, TunnelState.STOPPED, "the tunnel was stopped")
            await asyncio.sleep(0.1)

    # --- reconciling ----------------------------------------------------------------

    def _start_client(self, planned: PlannedTunnel) -> TunnelClient:
        client = self._client_factory(planned.spec, on_status=self._client_status)
        self.clients[planned.key] = client
        client.start()
        log.info("tunnel %s: started", planned.key)
        return client

    def _client_status(self, _status: ClientStatus) -> None:
        self._status_changed.set()

    async def _stop_client(self, key: str) -> None:
        client = self.clients.pop(key, None)
        if client is not None:
            await client.stop()
            log.info("tunnel %s: stopped", key)

    async def reconcile(self) -> None:
        cameras = await asyncio.to_thread(store.load_active_cameras)
        self.prober.update_targets(await asyncio.to_thread(health_store.load_probe_targets))
        async with self._lock:
            self.plan = plan_tunnels(cameras, self.gateway_uuid, self.settings)
            for key in [k for k in self.clients if k not in self.plan]:
                await self._stop_client(key)
            for key, planned in self.plan.items():
                running = self.clients.get(key)
                if running is not None and running.spec == planned.spec:
                    # Keep the running client's spec, one per camera, not a copy a pass.
                    self.plan[key] = replace(planned, spec=running.spec)
                    continue
                await self._stop_client(key)
                if planned.spec is not None:
                    self._start_client(planned)
        self._status_changed.set()

    # --- reporting ------------------------------------------------------------------

    def _records(self) -> list[store.StatusRecord]:
        pid = os.getpid()
        records = []
        for key, planned in self.plan.items():
            client = self.clients.get(key)
            if client is None:
                records.append(store.StatusRecord(key, planned.camera_id, TunnelState.FAILED, planned.problem))
                continue
            status = client.status
            up = status.state is TunnelState.UP
            records.append(store.StatusRecord(
                key=key,
                camera_id=planned.camera_id,
                state=status.state.value,
                reason=status.reason if not up else "",
                pid=pid if up else None,
                endpoints=status.endpoints,
                open_connections=status.open_connections,
                bytes_to_cloud=status.bytes_to_cloud,
                bytes_from_cloud=status.bytes_from_cloud,
                local_token=status.local_token,
            ))
        # Tunnels no longer planned (camera made inactive, gateway tunnel disabled).
        for key, last in self._written.items():
            if key not in self.plan and last.state != TunnelState.STOPPED:
                records.append(replace(last, state=TunnelState.STOPPED, reason="inactive", pid=None, open_connections=0))
        return records

    async def _report(self) -> None:
        changed = [r for r in self._records() if self._written.get(r.key) != r]
        if changed:
            await asyncio.to_thread(store.write_statuses, changed)
            self._written.update({r.key: r for r in changed})

    async def _report_forever(self) -> None:
        while True:
            await event_or_timeout(self._status_changed, STATUS_EVERY_S)
            self._status_changed.clear()
            try:
                await self._report()
            except Exception:
                log.exception("writing tunnel status failed; retrying")
                await asyncio.sleep(1)

    async def _reconcile_forever(self) -> None:
        while True:
            self._wake.clear()
            self._started += 1
            try:
                with self.reconcile_stats.measure():
                    await self.reconcile()
            except Exception:
                log.exception("reconcile failed; retrying")
            async with self._completed:
                self.reconciles += 1
                self._completed.notify_all()
            await event_or_timeout(self._wake, RECONCILE_EVERY_S)

    # --- lifetime -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.to_thread(store.mark_all_stopped)
        server = await serve_control(socket_path(), {
            "reconcile": self._on_reconcile,
            "restart-gateway": self._on_restart_gateway,
            "ping": self._on_ping,
            "settings": self._on_settings,
            "sync": self._on_sync,
            "metrics": self._on_metrics,
            "snapshot": self.snapshots.handle,
        })
        log.info("agent running (pid %d)", os.getpid())
        await self.prober.restore()
        tasks = [asyncio.create_task(self._reconcile_forever()), asyncio.create_task(self._report_forever()),
                 asyncio.create_task(self.prober.run()), asyncio.create_task(self.prober.write_forever())]
        try:
            await stop.wait()
        finally:
            server.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(*(c.stop() for c in self.clients.values()), return_exceptions=True)
            self.clients.clear()
            with contextlib.suppress(Exception):
                await self.prober.close()
            await asyncio.to_thread(store.mark_all_stopped)
            await asyncio.to_thread(health_store.mark_all_unknown, "agent not running")
            socket_path().unlink(missing_ok=True)
            log.info("agent stopped")


def run_agent() -> None:
    """`camgate agent`: run until SIGTERM or SIGINT; exit at once, with one line, when
    another agent already serves this data directory."""
    one_arena()  # before any thread: see arenas.py
    try:
        lock = hold_agent_lock(config.data_dir())
    except AgentAlreadyRunning as error:
        raise SystemExit(f"camgate agent: {error}") from None

    async def main() -> None:
        limit_repeated_errors()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # One HTTP client for every tunnel (client_http.py): a session each cost every camera several KiB.
        async with shared_session() as http:
            await Agent(UplinkSettings.from_environment(), config.gateway_uuid(), ProbeSettings.from_environment(),
                        client_factory=functools.partial(TunnelClient, http=http)).run(stop)

    raise_open_files_limit()  # a socket per tunnel and per viewer connection
    try:
        event_loop.run(main())
    finally:
        os.close(lock)
