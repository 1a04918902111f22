"""Benchmarks 1 and 2: throughput and round-trip time of one stream through the tunnel.

viewer -> relay's public port -> WebSocket -> tunnel client -> camera and back, against
a plain asyncio TCP proxy between the same two ends (bench/roles.py's proxy).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import vxg
from bench.common import Context, free_port_range, note, spawn_role
from bench.report import MB, Row, fmt_difference, fmt_micros, fmt_ratio, median, percentile
from bench.traffic import WINDOW, CameraServer, Transfer, download, ping_pong, upload
from tests.support.processes import free_port, http_json, wait_for_http


@dataclass(frozen=True)
class Sizes:
    transfer_bytes: int  # per direction and path
    transfer_cap_s: float  # a transfer stops early after this long (its rate still counts)
    transfer_runs: int  # per path and direction; the table shows their median and range
    round_trips: int


FULL = Sizes(200 * MB, 10.0, 5, 2000)
QUICK = Sizes(50 * MB, 5.0, 3, 500)
SMOKE = Sizes(2 * MB, 2.0, 1, 40)


def run(ctx: Context) -> list[Row]:
    return asyncio.run(bench_paths({"full": FULL, "quick": QUICK, "smoke": SMOKE}[ctx.size], ctx))


async def bench_paths(cfg: Sizes, ctx: Context) -> list[Row]:
    tmp, children, only = ctx.tmp, ctx.children, ctx.only
    camera = await CameraServer().start()
    relay_port, admin = free_port(), secrets.token_hex(16)
    low, high = free_port_range(10)
    relay_env = {**os.environ, "CAMGATE_DATA_DIR": str(tmp / "relay-data"), "CAMGATE_RELAY_ADMIN_TOKEN": admin}
    children.spawn(
        [sys.executable, "-m", "camgate.cli", "relay", "--host", "127.0.0.1", "--port", str(relay_port),
         "--state", str(tmp / "relay-state.json"), "--port-range", f"{low}-{high}"],
        tmp / "relay.log", env=relay_env,
    )
    relay_url = f"http://127.0.0.1:{relay_port}"
    await asyncio.to_thread(wait_for_http, relay_url + "/api/devices")
    status, device = await asyncio.to_thread(
        http_json, "POST", relay_url + "/api/devices", {"camid": 1, "cmngrid": 1}, headers={"Authorization": f"Bearer {admin}"}
    )
    if status != 201:
        raise RuntimeError(f"relay refused the device: {status} {device}")
    _, said = await asyncio.to_thread(
        spawn_role, children, tmp, "tunnel-client",
        ["--uplink", f"127.0.0.1:{relay_port}", "--forward", f"rtsp:tcp:127.0.0.1:{camera.port}"],
        {"BENCH_TUNNEL_TOKEN": device["access_token"]},
    )
    tunnel_port = said["endpoints"]["rtsp"]
    _, said = await asyncio.to_thread(spawn_role, children, tmp, "proxy", ["--target", f"127.0.0.1:{camera.port}"])
    paths = {"tunnel": tunnel_port, "direct": said["port"]}
    if vxg.unavailable() is None:
        paths["vxg"] = await asyncio.to_thread(vxg.start_path, ctx, camera.port)
    rows: list[Row] = []
    try:
        for port in paths.values():  # warm both paths up
            await download(port, min(4 * MB, cfg.transfer_bytes), 10)
            await upload(port, camera, min(4 * MB, cfg.transfer_bytes), 10)
        if "1" in only:
            rows += await _throughput(cfg, paths, camera, tmp / "relay.log")
        if "2" in only:
            note("2. latency")
            lat: dict[str, list[float]] = {name: [] for name in paths}
            blocks = 4  # interleaved, so a noisy moment hits both paths alike
            for _ in range(blocks):
                for name, port in paths.items():
                    lat[name] += await ping_pong(port, cfg.round_trips // blocks, warmup=50)
            for p in (50, 99):
                t, d = percentile(lat["tunnel"], p), percentile(lat["direct"], p)
                rows.append(Row(
                    "2", f"round trip 64 B, p{p} of {cfg.round_trips}", fmt_micros(t), fmt_micros(d) + " (asyncio proxy)",
                    fmt_difference(t, d, "µs") + " added",
                    fmt_micros(percentile(lat["vxg"], p)) if "vxg" in lat else "—",
                ))
    finally:
        camera.close()
    return rows


def _rates(transfers: list[Transfer]) -> str:
    rates = [t.rate / MB for t in transfers]
    return f"{median(rates):.0f} MB/s ({min(rates):.0f}–{max(rates):.0f})"


async def _throughput(cfg: Sizes, paths: dict[str, int], camera: CameraServer, relay_log: Path) -> list[Row]:
    size, cap, runs = cfg.transfer_bytes, cfg.transfer_cap_s, cfg.transfer_runs
    window = f"{WINDOW // 1024} KiB window"
    kinds = (
        (f"camera → viewer, {window}", lambda port: download(port, size, cap)),
        (f"viewer → camera, {window}", lambda port: upload(port, camera, size, cap)),
        ("camera → viewer, source unpaced", lambda port: download(port, size, cap, windowed=False)),
    )
    drops_before = relay_log.read_text().count("its reader is too slow")
    rows = []
    for label, run in kinds:
        note(f"1. throughput {label}")
        got: dict[str, list[Transfer]] = {name: [] for name in paths}
        for _ in range(runs):  # interleaved, so a noisy moment hits both paths alike
            for name, port in paths.items():
                got[name].append(await run(port))
        whole = {name: [t for t in transfers if not t.dropped] for name, transfers in got.items()}
        cells = {}
        for name in paths:
            cells[name] = _rates(whole[name]) if whole[name] else "no transfer completed"
            dropped = [t.bytes for t in got[name] if t.dropped]
            if dropped:
                cells[name] += f"; {len(dropped)}/{runs} closed after {median(dropped) / MB:.0f} MB (median)"
        capped = any(t.bytes < size for t in whole["tunnel"] + whole["direct"])
        versus = "n/a"
        if whole["tunnel"] and whole["direct"]:
            versus = fmt_ratio(median([t.rate for t in whole["tunnel"]]), median([t.rate for t in whole["direct"]]))
        amount = f"{size / MB:.0f} MB" + (f" or {cap:g} s, whichever first," if capped else "")
        rows.append(Row(
            "1", f"throughput {label}: {amount} × {runs}, median (min–max)",
            cells["tunnel"], cells["direct"] + " (asyncio proxy)", versus, cells.get("vxg", "—"),
        ))
    drops = relay_log.read_text().count("its reader is too slow") - drops_before
    if drops:
        rows.append(Row("1", "  relay log: viewer connections closed as 'reader too slow' (1 MiB bound)", str(drops)))
    return rows
