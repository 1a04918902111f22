"""Benchmark 7: one real `camgate relay` process with many idle devices (issue 14, item 4).

It registers the devices (each with a serial and password) through the admin API, then
every device provisions at once as the uplink protocol says (GET /v1/token by serial,
then GET /api/ws-endpoint with the token it got), then every device opens its tunnel at
once (camgate's TunnelClient, two forwards each, in tunnel-fleet processes: see
bench/roles.py). Devices connect from several loopback addresses, DEVICES_PER_ADDRESS
each, as they come from many sites (the relay caps the connections one address may hold
before they carry a tunnel, connection_guard.py; bench/recovery.py --addresses 1 measures
a fleet behind one NAT).

Memory is the relay's VmRSS with the devices registered and no tunnel, then with every
tunnel up: the difference divided by the devices is what one idle tunnel costs.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time

import aiohttp

from bench.common import ROLES, Context, first_json_line, free_port_range, note, vm_kib
from bench.relay_nodes import node_gauge
from bench.report import Row, fmt_mib, fmt_seconds, percentile
from tests.support.processes import free_port, wait_for_http

DEVICES = {"full": 2000, "quick": 300, "smoke": 8}  # by ctx.size
DEVICES_PER_ADDRESS = 100  # under the relay's cap of 128 per address
FLEET_PROCESSES = 2  # the tunnel clients' processes (the machine has two cores)
FORWARDS = ("rtsp:tcp:127.0.0.1:554", "http:http:127.0.0.1:80")  # never dialled: idle tunnels
GOAL_KIB = 20  # per tunnel (issue 14)
# Ports the relay's range has beyond what the forwards need: other benchmarks on this
# machine bind blocks of 100 in the same part of the port space while this one runs.
SPARE_PORTS = 128


def run(ctx: Context) -> list[Row]:
    return asyncio.run(bench_relay_scale(DEVICES[ctx.size], ctx))


def source_addresses(devices: int) -> list[str]:
    return [f"127.0.7.{i + 1}" for i in range(max(1, -(-devices // DEVICES_PER_ADDRESS)))]


async def bench_relay_scale(n: int, ctx: Context) -> list[Row]:
    tmp = ctx.tmp / "relay-scale"
    tmp.mkdir()
    admin, port = secrets.token_hex(16), free_port()
    low, high = free_port_range(len(FORWARDS) * n + SPARE_PORTS)
    relay = ctx.children.spawn(
        [sys.executable, "-m", "camgate.cli", "relay", "--host", "127.0.0.1", "--port", str(port),
         "--public-host", "127.0.0.1", "--state", str(tmp / "state.json"), "--port-range", f"{low}-{high}"],
        tmp / "relay.log", env={**os.environ, "CAMGATE_DATA_DIR": str(tmp / "data"), "CAMGATE_RELAY_ADMIN_TOKEN": admin},
    )
    url = f"http://127.0.0.1:{port}"
    await asyncio.to_thread(wait_for_http, url + "/api/devices")
    settle = 0.0 if ctx.smoke else 1.0  # lets the heap settle before each reading (not worth it in CI's run)
    await asyncio.sleep(settle)
    rss_empty = vm_kib(relay.pid, "VmRSS")
    sources = source_addresses(n)
    serials = {camid: (f"BENCH{camid:06d}", secrets.token_hex(6).upper()) for camid in range(1, n + 1)}

    note(f"7. registering {n} devices with the relay")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"},
                                     connector=aiohttp.TCPConnector(limit=16)) as http:
        async def register(camid: int) -> None:
            serial, password = serials[camid]
            async with http.post(f"{url}/api/devices", json={"camid": camid, "serial": serial, "password": password}) as r:
                if r.status != 201:
                    raise RuntimeError(f"the relay refused device {camid}: HTTP {r.status}")

        await asyncio.gather(*(register(camid) for camid in serials))
    await asyncio.sleep(settle)
    rss_registered = vm_kib(relay.pid, "VmRSS")

    note(f"7. provisioning storm: {n} devices ask /v1/token and /api/ws-endpoint at once")
    storm = await provisioning_storm(url, serials, sources)

    note(f"7. {n} tunnels, {FLEET_PROCESSES} client processes, from {len(sources)} addresses")
    fleet = await open_tunnels(ctx, tmp, f"127.0.0.1:{port}", storm.tokens, sources)
    deadline = time.monotonic() + 30
    while (held := int(node_gauge(port, "camgate_relay_node_devices_connected"))) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(2 * settle)  # the last tunnels' first messages too
    rss_up, rss_peak = vm_kib(relay.pid, "VmRSS"), vm_kib(relay.pid, "VmHWM")
    per_tunnel = (rss_up - rss_registered) / n
    up = fleet["up_after"]
    fleet_errors = sum(fleet["errors"].values())
    rows = [
        Row("7", f"relay RSS: empty / {n} devices registered / {len(up)} tunnels up (peak)",
            f"{fmt_mib(rss_empty * 1024)} / {fmt_mib(rss_registered * 1024)} / {fmt_mib(rss_up * 1024)} "
            f"({fmt_mib(rss_peak * 1024)})"),
        Row("7", f"relay RSS per idle tunnel, 2 forwards each (up − registered) / {n}: goal ≤ {GOAL_KIB} KiB",
            f"{per_tunnel:.1f} KiB"),
        Row("7", f"provisioning storm: {n} × (/v1/token, then /api/ws-endpoint) at once: all answered in; "
            "per device p50 / p99", f"{fmt_seconds(storm.took)}; {fmt_seconds(percentile(storm.latencies, 50))} / "
            f"{fmt_seconds(percentile(storm.latencies, 99))}" if storm.latencies else "none answered"),
        Row("7", "  provisioning storm: errors (HTTP status other than 200, or no answer)",
            f"{len(storm.errors)}" + (f" ({', '.join(sorted(set(storm.errors))[:3])})" if storm.errors else "")),
        Row("7", f"{n} idle tunnels from {len(sources)} addresses: start → all up; per tunnel p50 / p99",
            (f"{fmt_seconds(fleet['all_up'])}; {fmt_seconds(percentile(up, 50))} / {fmt_seconds(percentile(up, 99))}"
             if len(up) == n else f"only {len(up)} up") + f"; relay holds {held}"),
        Row("7", "  failed tries while connecting (client side; each retried)",
            str(fleet_errors) + (f" ({', '.join(list(fleet['errors'])[:2])})" if fleet_errors else "")),
    ]
    if len(up) < n or held < n or storm.errors:
        raise RuntimeError(f"{len(up)}/{n} tunnels up, relay holds {held}, {len(storm.errors)} provisioning errors")
    return rows


class Storm:
    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.took = 0.0


async def provisioning_storm(url: str, serials: dict[int, tuple[str, str]], sources: list[str]) -> Storm:
    """Every device at once: its token by serial and password, then where to dial."""
    storm = Storm()
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=DEVICES_PER_ADDRESS, local_addr=(a, 0)),
                                      timeout=aiohttp.ClientTimeout(total=60)) for a in sources]

    async def device(i: int, serial: str, password: str) -> None:
        http = sessions[i % len(sessions)]
        started = time.perf_counter()
        try:
            async with http.get(f"{url}/v1/token", params={"serial_id": serial},
                                headers={"Authorization": password}) as r:
                if r.status != 200:
                    storm.errors.append(f"token HTTP {r.status}")
                    return
                token = (await r.json())["access_token"]
            async with http.get(f"{url}/api/ws-endpoint", headers={"Authorization": token}) as r:
                if r.status != 200:
                    storm.errors.append(f"ws-endpoint HTTP {r.status}")
                    return
                await r.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            storm.errors.append(type(exc).__name__)
            return
        storm.latencies.append(time.perf_counter() - started)
        storm.tokens.append(token)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(device(i, *pair) for i, pair in enumerate(serials.values())))
        storm.took = time.perf_counter() - started
    finally:
        await asyncio.gather(*(s.close() for s in sessions))
    return storm


async def open_tunnels(ctx: Context, tmp, uplink: str, tokens: list[str], sources: list[str]) -> dict:
    """Start every tunnel at once in the fleet processes; what they say once all are up."""
    fleets = []
    for i in range(FLEET_PROCESSES):
        args = [sys.executable, str(ROLES), "tunnel-fleet", "--uplink", uplink, "--connect-timeout", "180"]
        args += [a for forward in FORWARDS for a in ("--forward", forward)]
        args += [a for source in sources[i::FLEET_PROCESSES] or sources for a in ("--source", source)]
        process = ctx.children.spawn(args, tmp / f"fleet-{i}.log", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        process.stdin.write(json.dumps({"tokens": tokens[i::FLEET_PROCESSES]}) + "\n")
        process.stdin.flush()
        fleets.append(process)
    for process in fleets:
        await asyncio.to_thread(first_json_line, process, 60)
    go = time.time()
    for process in fleets:
        process.stdin.write("go\n")
        process.stdin.flush()
    said = [await asyncio.to_thread(first_json_line, process, 210) for process in fleets]
    errors: dict[str, int] = {}
    for result in said:
        for reason, count in result["errors"].items():
            errors[reason] = errors.get(reason, 0) + count
    up = sorted(t for result in said for t in result["up_after"])
    # Each process counts from its own "go"; they were told within milliseconds.
    return {"up_after": up, "errors": errors, "all_up": max(r["last_up_wall"] for r in said) - go}
