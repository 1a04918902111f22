"""The agent: turns the camera table into running tunnels and reports what is true.

Like a controller, it is level-triggered and idempotent: each pass reads the whole
desired state and converges to it, so a missed poke, a crash or a restart of the agent
costs at most one pass. Pokes from the web server (the control socket) only make the
next pass come sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import replace

from camgate import config
from camgate.agent import health_store, store
from camgate.agent.control import socket_path
from camgate.agent.control_server import serve_control
from camgate.agent.plan import PlannedTunnel, UplinkSettings, plan_tunnels
from camgate.agent.prober import ProbeSettings, Prober
from camgate.agent.waiting import event_or_timeout
from camgate.cameras.models import GATEWAY_STATUS_KEY, TunnelStatus
from camgate.uplink.client import TunnelClient, TunnelState
from camgate.uplink.client import TunnelStatus as ClientStatus

log = logging.getLogger("camgate.agent")

RECONCILE_EVERY_S = 5.0  # catches edits made while no poke could reach us
STATUS_EVERY_S = 2.0  # traffic counters; state changes are written at once
RESTART_WAIT_S = 15.0  # less than control.RESTART_ANSWER_TIMEOUT_S, so the answer arrives


def endpoint_view(name: str, host: str, port: int) -> dict:
    scheme = {"rtsp": "rtsp", "http": "http", "web": "http", "ssh": "ssh"}.get(name, "tcp")
    return {"name": name, "proxy_host": host, "proxy_port": port, "url": f"{scheme}://{host}:{port}/"}


class Agent:
    def __init__(self, settings: UplinkSettings, gateway_uuid: str, probe_settings: ProbeSettings = ProbeSettings()) -> None:
        self.settings = settings
        self.gateway_uuid = gateway_uuid
        self.prober = Prober(probe_settings)
        self.clients: dict[str, TunnelClient] = {}
        self.plan: dict[str, PlannedTunnel] = {}
        self._wake = asyncio.Event()
        self._status_changed = asyncio.Event()
        self._written: dict[str, store.StatusRecord] = {}
        self._lock = asyncio.Lock()

    # --- the control socket ---------------------------------------------------------

    async def _on_reconcile(self) -> dict:
        self._wake.set()
        return {"ok": True}

    async def _on_ping(self) -> dict:
        return {"ok": True, "pid": os.getpid(), "tunnels": len(self.clients)}

    async def _on_restart_gateway(self) -> dict:
        async with self._lock:
            planned = self.plan.get(GATEWAY_STATUS_KEY)
            if planned is None or planned.spec is None:
                return {"ok": False, "error": "the gateway's tunnel is disabled (CAMGATE_GATEWAY_TUNNEL=false)"}
            await self._stop_client(GATEWAY_STATUS_KEY)
            client = self._start_client(planned)
        status = await self._wait_for_outcome(client, RESTART_WAIT_S)
        if status.state is TunnelState.UP:
            return {"ok": True}
        reason = status.reason or status.last_error or "no answer from the relay"
        return {"ok": False, "error": f"gateway tunnel restarted but not up after {RESTART_WAIT_S:g} s: {reason}"}

    async def _wait_for_outcome(self, client: TunnelClient, timeout: float) -> ClientStatus:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            status = client.status
            if status.state in (TunnelState.UP, TunnelState.FAILED):
                return status
            await asyncio.sleep(0.1)
        return client.status

    # --- reconciling ----------------------------------------------------------------

    def _start_client(self, planned: PlannedTunnel) -> TunnelClient:
        client = TunnelClient(planned.spec, on_status=lambda _status: self._status_changed.set())
        self.clients[planned.key] = client
        client.start()
        log.info("tunnel %s: started", planned.key)
        return client

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
                records.append(store.StatusRecord(key, planned.camera_id, TunnelStatus.State.FAILED, planned.problem))
                continue
            status = client.status
            up = status.state is TunnelState.UP
            records.append(store.StatusRecord(
                key=key,
                camera_id=planned.camera_id,
                state=status.state.value,
                reason=status.reason if not up else "",
                pid=pid if up else None,
                endpoints=tuple(endpoint_view(e.name, e.proxy_host, e.proxy_port) for e in status.endpoints),
                open_connections=status.open_connections,
                bytes_to_cloud=status.bytes_to_cloud,
                bytes_from_cloud=status.bytes_from_cloud,
                local_token=status.local_token,
            ))
        # Tunnels no longer planned (camera made inactive, gateway tunnel disabled).
        for key, last in self._written.items():
            if key not in self.plan and last.state != TunnelStatus.State.STOPPED:
                records.append(replace(last, state=TunnelStatus.State.STOPPED, reason="inactive", pid=None, open_connections=0))
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
            try:
                await self.reconcile()
            except Exception:
                log.exception("reconcile failed; retrying")
            await event_or_timeout(self._wake, RECONCILE_EVERY_S)

    # --- lifetime -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.to_thread(store.mark_all_stopped)
        server = await serve_control(socket_path(), {
            "reconcile": self._on_reconcile,
            "restart-gateway": self._on_restart_gateway,
            "ping": self._on_ping,
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
    """`camgate agent`: run until SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Agent(UplinkSettings.from_environment(), config.gateway_uuid(), ProbeSettings.from_environment()).run(stop)

    asyncio.run(main())
