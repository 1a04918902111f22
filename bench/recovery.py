"""Benchmark 4: per-tunnel downtime of many in-process tunnel clients when the relay is
closed and started again on the same port and state file, and whether every tunnel got
its public port back."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time

from bench.common import Context, free_port_range, note
from bench.report import Row, fmt_seconds, percentile
from bench.traffic import CameraServer
from tests.support.processes import free_port

TUNNELS = {"full": 100, "quick": 30, "smoke": 5}  # by ctx.size


def run(ctx: Context) -> list[Row]:
    return asyncio.run(bench_recovery(TUNNELS[ctx.size], ctx))


async def bench_recovery(n: int, ctx: Context) -> list[Row]:
    tmp = ctx.tmp
    from camgate.uplink.client import TunnelClient, TunnelSpec, TunnelState
    from camgate.uplink.protocol import Forward
    from camgate.uplink.relay import RelayConfig, start_relay

    camera = await CameraServer().start()
    low, high = free_port_range(2 * n)
    relay_config = RelayConfig(
        host="127.0.0.1", port=free_port(), admin_token=secrets.token_hex(16),
        port_range=(low, high), state_path=str(tmp / "recovery-relay-state.json"),
    )
    relay = await start_relay(relay_config)
    watch = {"since": None}
    went_down: set[str] = set()
    up_again: dict[str, float] = {}

    def on_status(status) -> None:
        if watch["since"] is None:
            return
        if status.state is not TunnelState.UP:
            went_down.add(status.key)
        elif status.endpoints and status.key in went_down and status.key not in up_again:
            up_again[status.key] = time.perf_counter()

    clients: dict[int, TunnelClient] = {}
    rows: list[Row] = []
    try:
        for camid in range(1, n + 1):
            device, _ = relay.register_device(camid, 1)
            spec = TunnelSpec(
                key=f"camera-{camid}", token=device.access_token, uplink=relay.public_address, tls=False,
                forwards=(Forward("rtsp", "tcp", "127.0.0.1", camera.port),),
            )
            clients[camid] = TunnelClient(spec, on_status=on_status)

        def all_up(server) -> bool:
            return all(
                c.status.state is TunnelState.UP and c.status.endpoints and server.tunnel(camid) is not None
                for camid, c in clients.items()
            )

        note(f"4. starting {n} tunnel clients")
        started = time.perf_counter()
        for client in clients.values():
            client.start()
        async with asyncio.timeout(60):
            while not all_up(relay):
                await asyncio.sleep(0.02)
        first_up = time.perf_counter() - started
        ports_before = {camid: relay.tunnel(camid).ports["rtsp"] for camid in clients}

        note("4. closing the relay and starting it again on the same port and state file")
        closed_at = time.perf_counter()
        watch["since"] = closed_at
        await relay.close()
        relay = await start_relay(relay_config)
        back_at = time.perf_counter()
        async with asyncio.timeout(60):
            while len(up_again) < n or not all_up(relay):
                await asyncio.sleep(0.02)
        downtime = sorted(up_again[c.spec.key] - closed_at for c in clients.values())
        ports_after = {camid: relay.tunnel(camid).ports["rtsp"] for camid in clients}
        same_ports = sum(ports_before[c] == ports_after[c] for c in clients)
        client_ports = sum(
            {e.name: e.proxy_port for e in clients[c].status.endpoints}.get("rtsp") == ports_before[c] for c in clients
        )

        async def viewer_echo(port: int) -> bool:
            with contextlib.suppress(OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                async with asyncio.timeout(10):
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(b"Eping")
                    ok = await reader.readexactly(4) == b"ping"
                    writer.close()
                    return ok
            return False

        echoes = sum(await asyncio.gather(*(viewer_echo(p) for p in ports_after.values())))
        rows += [
            Row("4", f"{n} tunnels: start → all up (first connect)", fmt_seconds(first_up)),
            Row("4", f"relay closed, restarted (down {fmt_seconds(back_at - closed_at)}): per-tunnel downtime "
                f"p50 / p99 / max, {n} tunnels (first retry at once, within 0.5 s)",
                f"{fmt_seconds(percentile(downtime, 50))} / {fmt_seconds(percentile(downtime, 99))} / "
                f"{fmt_seconds(downtime[-1])}"),
            Row("4", "  after restart: same public port (relay / client view); viewer echo OK",
                f"{same_ports}/{n} / {client_ports}/{n}; {echoes}/{n}"),
        ]
    finally:
        await asyncio.gather(*(c.stop() for c in clients.values()), return_exceptions=True)
        await relay.close()
        camera.close()
    return rows

