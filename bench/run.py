#!/usr/bin/env python3
"""camgate's benchmarks, measured in one run and printed as one table.

    python3 bench/run.py            full run (under a minute on two cores)
    python3 bench/run.py --quick    smaller sizes, for a quick look
    python3 bench/run.py --only 1,2 some benchmarks only

1. throughput of one stream through the tunnel (viewer -> relay public port -> WebSocket
   -> tunnel client -> camera), both directions, against a plain asyncio TCP proxy;
2. added round-trip latency of 64-byte ping-pongs, same two paths;
3. time from POST /api/add-camera to the first RTSP OPTIONS answered by a real GStreamer
   camera through `camgate run`'s embedded relay (median of several adds);
4. recovery of 100 in-process tunnel clients after the relay is closed and started
   again on the same port and state file;
5. resident memory of the real `camgate agent` process with 0, 100 and 500 cameras.

All traffic stays on 127.0.0.1. The table goes to stdout, progress to stderr. The code
measured is this tree's (``src/``), whatever camgate is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import resource
import secrets
import select
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
sys.path[:0] = [str(SRC), str(ROOT)]
# Children (camgate's commands, the roles) must run this tree's code too.
os.environ["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])

import camgate  # noqa: E402

from bench.report import (  # noqa: E402
    MB,
    Row,
    fmt_difference,
    fmt_mib,
    fmt_micros,
    fmt_ratio,
    fmt_seconds,
    format_table,
    median,
    percentile,
)
from tests.support.cameras import CameraWebServer, RtspCamera  # noqa: E402
from tests.support.processes import camgate_env, camgate_process, free_port, http_json, wait_for_http  # noqa: E402

ROLES = ROOT / "bench" / "roles.py"
STARTED = time.monotonic()


@dataclass(frozen=True)
class Config:
    name: str
    transfer_bytes: int  # per direction and path
    transfer_cap_s: float  # a transfer stops early after this long (its rate still counts)
    transfer_runs: int  # per path and direction; the table shows their median and range
    round_trips: int
    adds: int
    recovery_tunnels: int
    memory_counts: tuple[int, ...]


FULL = Config("full", 200 * MB, 10.0, 5, 2000, 5, 100, (100, 500))
QUICK = Config("quick", 50 * MB, 5.0, 3, 500, 3, 30, (100,))


def note(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port_range(size: int) -> tuple[int, int]:
    """``size`` consecutive free ports below the ephemeral range, away from camgate's
    default 20000-29999 (other checkouts on this machine may run relays there)."""
    for _ in range(100):
        low = random.randrange(10000, 19999 - size)
        if all(_bindable(p) for p in range(low, low + size)):
            return low, low + size - 1
    raise RuntimeError(f"no {size} consecutive free ports found")


# --- child processes ----------------------------------------------------------


class Children:
    """Every process the benchmark starts, stopped (by its own pid) at the end."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []

    def spawn(self, argv: list[str], log: Path, env: dict | None = None, **kwargs) -> subprocess.Popen:
        kwargs.setdefault("stdout", subprocess.DEVNULL)  # stdout is the table's
        with open(log, "ab") as out:
            process = subprocess.Popen(argv, stderr=out, env=env, **kwargs)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def first_json_line(process: subprocess.Popen, timeout: float) -> dict:
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"{process.args[2:4]} said nothing within {timeout:g} s")
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{process.args[2:4]} exited with code {process.wait()}")
    return json.loads(line)


def spawn_role(children: Children, tmp: Path, role: str, args: list[str], env_extra: dict | None = None) -> tuple[subprocess.Popen, dict]:
    process = children.spawn(
        [sys.executable, str(ROLES), role, *args], tmp / f"{role}.log",
        env={**os.environ, **(env_extra or {})}, stdout=subprocess.PIPE, text=True,
    )
    return process, first_json_line(process, 30)


# --- the camera and the viewer of benchmarks 1, 2 and 4 -------------------------------


BLOCK = 64 * 1024
WINDOW = 512 * 1024  # most bytes in flight in a windowed transfer: under the tunnel's 1 MiB bound
PAYLOAD = os.urandom(256 * 1024)  # a multiple of BLOCK
ACK = b"A"  # one per BLOCK received, from the receiving end of a transfer


class BenchCamera(asyncio.Protocol):
    """The camera end of one connection. Its first byte picks what it does:

    ``S`` + 8-byte length   stream that many bytes as fast as the socket takes them;
    ``W`` + 8-byte length   the same, but never more than WINDOW bytes ahead of the ACKs
                            the viewer sends (one per BLOCK it has received);
    ``U``                   swallow everything, sending one ACK per BLOCK (the camera
                            server records how much arrived and when the last byte did);
    ``E``                   echo.
    """

    def __init__(self, owner: "CameraServer") -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.header = b""
        self.mode = b""
        self.to_send = 0
        self.sent = 0
        self.acked = 0  # bytes the viewer has acknowledged (W)
        self.received = 0  # bytes received (U)
        self.paused = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.mode:
            self.header += data
            if self.header[:1] in (b"S", b"W") and len(self.header) < 9:
                return
            self.mode = self.header[:1]
            if self.mode in (b"S", b"W"):
                self.to_send = int.from_bytes(self.header[1:9], "big")
                data = self.header[9:]
            else:
                data = self.header[1:]
            if self.mode == b"U":
                self.owner.sink_bytes = 0
            self._send()
        if not data:
            return
        if self.mode == b"W":
            self.acked += data.count(ACK) * BLOCK
            self._send()
        elif self.mode == b"U":
            before = self.received // BLOCK
            self.received += len(data)
            self.owner.sink_bytes = self.received
            self.owner.sink_last = time.perf_counter()
            if self.received // BLOCK > before:
                self.transport.write(ACK * (self.received // BLOCK - before))
        elif self.mode == b"E":
            self.transport.write(data)

    def _send(self) -> None:
        windowed = self.mode == b"W"
        while self.to_send > 0 and not self.paused and not self.transport.is_closing():
            room = len(PAYLOAD)
            if windowed:
                room = min(room, WINDOW - (self.sent - self.acked))
                if room <= 0:
                    return
            piece = PAYLOAD[: min(room, self.to_send)]
            self.to_send -= len(piece)
            self.sent += len(piece)
            self.transport.write(piece)  # may call pause_writing at once

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._send()


class CameraServer:
    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.sink_bytes = 0
        self.sink_last = 0.0

    async def start(self) -> "CameraServer":
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: BenchCamera(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


class _Viewer(asyncio.Protocol):
    """Counts what a download brings, acknowledging each BLOCK when ``ack`` is set."""

    def __init__(self, target: int, ack: bool) -> None:
        self.target = target
        self.ack = ack
        self.got = 0
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        before = self.got // BLOCK
        self.got += len(data)
        if self.ack and self.got // BLOCK > before:
            self.transport.write(ACK * (self.got // BLOCK - before))
        if self.got >= self.target and not self.done.done():
            self.done.set_result(time.perf_counter())

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"closed after {self.got} of {self.target} bytes"))


def _abort(transport: asyncio.BaseTransport) -> None:
    if not transport.is_closing():
        transport.abort()


@dataclass(frozen=True)
class Transfer:
    bytes: int  # delivered
    seconds: float  # from the request to the last byte delivered
    dropped: bool = False  # the connection was closed before the end

    @property
    def rate(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


async def download(port: int, size: int, cap: float, windowed: bool = True) -> Transfer:
    """camera -> viewer. Stops early (a shorter transfer, still valid) after ``cap`` s."""
    loop = asyncio.get_running_loop()
    transport, viewer = await loop.create_connection(lambda: _Viewer(size, windowed), "127.0.0.1", port)
    try:
        started = time.perf_counter()
        transport.write((b"W" if windowed else b"S") + size.to_bytes(8, "big"))
        try:
            ended = await asyncio.wait_for(asyncio.shield(viewer.done), cap)
        except asyncio.TimeoutError:
            ended = time.perf_counter()
        except ConnectionError:
            return Transfer(viewer.got, time.perf_counter() - started, dropped=True)
        return Transfer(min(viewer.got, size), ended - started)
    finally:
        _abort(transport)


async def upload(port: int, camera: CameraServer, size: int, cap: float) -> Transfer:
    """viewer -> camera, never more than WINDOW bytes ahead of the camera's ACKs."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        camera.sink_bytes = sent = acked = 0
        started = time.perf_counter()
        writer.write(b"U")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(cap):
                while sent < size:
                    while sent - acked >= WINDOW:
                        acks = await reader.read(4096)
                        if not acks:
                            raise ConnectionError(f"closed after {sent} bytes sent")
                        acked += acks.count(ACK) * BLOCK
                    piece = PAYLOAD[: min(size - sent, len(PAYLOAD), WINDOW - (sent - acked))]
                    writer.write(piece)
                    sent += len(piece)
                    await writer.drain()
        async with asyncio.timeout(30):
            while camera.sink_bytes < sent:
                await asyncio.sleep(0.002)
        return Transfer(camera.sink_bytes, camera.sink_last - started)
    finally:
        _abort(writer.transport)


async def ping_pong(port: int, rounds: int, warmup: int = 100, size: int = 64) -> list[float]:
    """Seconds per round trip of ``size`` bytes, after ``warmup`` unmeasured ones."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    message = os.urandom(size)
    samples = []
    try:
        async with asyncio.timeout(120):
            writer.write(b"E")
            for i in range(warmup + rounds):
                started = time.perf_counter()
                writer.write(message)
                echoed = await reader.readexactly(size)
                elapsed = time.perf_counter() - started
                if echoed != message:
                    raise RuntimeError("the echo differs from what was sent")
                if i >= warmup:
                    samples.append(elapsed)
    finally:
        _abort(writer.transport)
    return samples


# --- 1 and 2: throughput and latency --------------------------------------------------


async def bench_paths(cfg: Config, tmp: Path, children: Children, only: set[str]) -> list[Row]:
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
    rows: list[Row] = []
    try:
        for port in paths.values():  # warm both paths up
            await download(port, 4 * MB, 10)
            await upload(port, camera, 4 * MB, 10)
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
                ))
    finally:
        camera.close()
    return rows


def _rates(transfers: list[Transfer]) -> str:
    rates = [t.rate / MB for t in transfers]
    return f"{median(rates):.0f} MB/s ({min(rates):.0f}–{max(rates):.0f})"


async def _throughput(cfg: Config, paths: dict[str, int], camera: CameraServer, relay_log: Path) -> list[Row]:
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
            cells["tunnel"], cells["direct"] + " (asyncio proxy)", versus,
        ))
    drops = relay_log.read_text().count("its reader is too slow") - drops_before
    if drops:
        rows.append(Row("1", "  relay log: viewer connections closed as 'reader too slow' (1 MiB bound)", str(drops)))
    return rows

# --- 3: add-camera to first viewer -------------------------------------------------


def rtsp_options(port: int, path: str) -> bool:
    """One RTSP OPTIONS through the relay's public port; True on a 200 answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(f"OPTIONS rtsp://127.0.0.1:{port}{path} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        return answer.startswith(b"RTSP/1.0 200")
    except OSError:
        return False


def bench_add_camera(cfg: Config, tmp: Path) -> list[Row]:
    port, relay_port = free_port(), free_port()
    low, high = free_port_range(4 * cfg.adds + 10)
    data = tmp / "run-data"
    env = camgate_env(
        data, CAMGATE_EMBEDDED_RELAY_PORT=str(relay_port), CAMGATE_RELAY_PORT_RANGE=f"{low}-{high}", CAMGATE_SSH_PORT="0",
    )
    base, relay = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{relay_port}"
    to_api, to_up, to_view = [], [], []
    rtsp_camera = RtspCamera(free_port()).start()
    web_page = CameraWebServer()
    try:
        with camgate_process(["run", "--port", str(port)], env, tmp / "camgate-run.log") as process:
            wait_for_http(base + "/api/cameras/", 60)
            wait_for_http(relay + "/api/devices", 60)
            _, body = http_json("POST", base + "/api/auth-token/", {"username": "admin", "password": "admin"})
            token = body["token"]
            admin = {"Authorization": f"Bearer {(data / 'relay-admin-token').read_text().strip()}"}
            for i in range(cfg.adds):
                camid = 9001 + i
                status, device = http_json("POST", relay + "/api/devices", {"camid": camid, "cmngrid": 1}, headers=admin)
                if status not in (200, 201):
                    raise RuntimeError(f"relay refused device {camid}: {status} {device}")
                note(f"3. add camera {i + 1}/{cfg.adds}")
                started = time.perf_counter()
                status, camera = http_json("POST", base + "/api/add-camera/", {
                    "ip": "127.0.0.1", "rtsp_port": rtsp_camera.port, "http_port": web_page.port,
                    "is_active": True, "access_token": device["access_token"],
                }, token=token)
                to_api.append(time.perf_counter() - started)
                if status != 201:
                    raise RuntimeError(f"add-camera answered {status}: {camera}")
                public_port = None
                deadline = started + 30
                while True:
                    if time.perf_counter() > deadline:
                        raise TimeoutError(f"camera {camera['camera_id']}: no RTSP answer through the relay within 30 s")
                    if public_port is None:
                        _, seen = http_json("GET", f"{base}/api/camera/{camera['camera_id']}/", token=token)
                        tunnel = seen.get("tunnel") or {}
                        if tunnel.get("state") == "up":
                            public_port = next((e["proxy_port"] for e in tunnel.get("endpoints", ()) if e["name"] == "rtsp"), None)
                            if public_port is not None:
                                to_up.append(time.perf_counter() - started)
                    if public_port is not None and rtsp_options(public_port, rtsp_camera.path):
                        to_view.append(time.perf_counter() - started)
                        break
                    time.sleep(0.01)
                http_json("DELETE", f"{base}/api/cameras/{camera['camera_id']}/", token=token)
                # The next add starts once this camera's tunnel is gone from the relay.
                deadline = time.perf_counter() + 15
                while http_json("GET", f"{relay}/api/device/{camid}", headers=admin)[0] != 404:
                    if time.perf_counter() > deadline:
                        raise TimeoutError(f"camera {camera['camera_id']}'s tunnel outlived its deletion")
                    time.sleep(0.05)
            if process.poll() is not None:
                raise RuntimeError("camgate run died during the benchmark")
    finally:
        web_page.stop()
        rtsp_camera.stop()
    n = cfg.adds
    return [
        Row("3", f"add-camera → first RTSP OPTIONS 200 via relay, median of {n} (min–max)",
            f"{fmt_seconds(median(to_view))} ({fmt_seconds(min(to_view))}–{fmt_seconds(max(to_view))})"),
        Row("3", "  of which: add-camera → 201 answer, median", fmt_seconds(median(to_api))),
        Row("3", "  of which: add-camera → API shows tunnel up with endpoints, median", fmt_seconds(median(to_up))),
    ]


# --- 4: recovery after a relay restart ------------------------------------------------


async def bench_recovery(cfg: Config, tmp: Path) -> list[Row]:
    from camgate.uplink.client import TunnelClient, TunnelSpec, TunnelState
    from camgate.uplink.protocol import Forward
    from camgate.uplink.relay import RelayConfig, start_relay

    n = cfg.recovery_tunnels
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
                f"p50 / max, {n} tunnels (client backoff 1–5 s)",
                f"{fmt_seconds(percentile(downtime, 50))} / {fmt_seconds(downtime[-1])}"),
            Row("4", "  after restart: same public port (relay / client view); viewer echo OK",
                f"{same_ports}/{n} / {client_ports}/{n}; {echoes}/{n}"),
        ]
    finally:
        await asyncio.gather(*(c.stop() for c in clients.values()), return_exceptions=True)
        await relay.close()
        camera.close()
    return rows


# --- 5: agent memory ----------------------------------------------------------------


def vm_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def insert_cameras(env: dict, tokens: list[str], tmp: Path) -> None:
    """Add active cameras through the Django ORM, in camgate's own process setup."""
    tokens_file = tmp / "tokens.json"
    tokens_file.write_text(json.dumps(tokens))
    code = (
        "import json, os\n"
        "from django.db import transaction\n"
        "from camgate.cameras.models import Camera\n"
        "with transaction.atomic():\n"
        "    for token in json.load(open(os.environ['BENCH_TOKENS_FILE'])):\n"
        "        Camera(ip='127.0.0.1', http_port=80, rtsp_port=554, is_active=True, access_token=token).save()\n"
    )
    subprocess.run(
        [sys.executable, "-m", "camgate.cli", "shell", "-c", code], env={**env, "BENCH_TOKENS_FILE": str(tokens_file)},
        check=True, timeout=120, stdout=subprocess.DEVNULL,
    )
    tokens_file.unlink()


def poke_agent(sock_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(sock_path))
        sock.sendall(b'{"command": "reconcile"}\n')
        sock.recv(4096)


def tunnels_up(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        return conn.execute(
            "SELECT COUNT(*) FROM cameras_tunnelstatus WHERE state = 'up' AND camera_id IS NOT NULL"
        ).fetchone()[0]


async def bench_memory(cfg: Config, tmp: Path) -> list[Row]:
    from camgate.uplink.relay import RelayConfig, start_relay

    relay = await start_relay(RelayConfig(host="127.0.0.1", port=0, admin_token=secrets.token_hex(16), port_range=None))
    data = tmp / "agent-data"
    env = camgate_env(
        data, CAMGATE_UPLINK_HOST=relay.public_address, CAMGATE_UPLINK_TLS="false",
        CAMGATE_GATEWAY_TUNNEL="false", CAMGATE_PROVISIONING_URL=relay.url,
    )
    rows: list[Row] = []
    try:
        note("5. migrating a fresh data directory")
        await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "camgate.cli", "migrate", "--verbosity", "0"],
            env=env, check=True, timeout=120, stdout=subprocess.DEVNULL,
        )
        tokens = [relay.register_device(100_000 + i, 1)[0].access_token for i in range(max(cfg.memory_counts))]
        with camgate_process(["agent", "--no-prepare"], env, tmp / "agent.log") as agent:
            sock_path = data / "agent.sock"
            async with asyncio.timeout(30):
                while not sock_path.exists():
                    await asyncio.sleep(0.05)
            await asyncio.sleep(2)
            baseline = vm_kib(agent.pid, "VmRSS") * 1024
            rows.append(Row("5", "agent RSS, 0 cameras (idle)", fmt_mib(baseline)))
            have = 0
            for count in cfg.memory_counts:
                note(f"5. agent with {count} cameras")
                await asyncio.to_thread(insert_cameras, env, tokens[have:count], tmp)
                have = count
                started = time.perf_counter()
                await asyncio.to_thread(poke_agent, sock_path)
                async with asyncio.timeout(120):
                    while await asyncio.to_thread(tunnels_up, data / "camgate.sqlite3") < count:
                        if agent.poll() is not None:
                            raise RuntimeError("the agent died")
                        await asyncio.sleep(0.05)
                took = time.perf_counter() - started
                await asyncio.sleep(2)
                rss = vm_kib(agent.pid, "VmRSS") * 1024
                peak = vm_kib(agent.pid, "VmHWM") * 1024
                per_camera = (rss - baseline) / count / 1024
                rows.append(Row(
                    "5", f"agent RSS, {count} cameras, all {count} tunnels up (reported up in {fmt_seconds(took)})",
                    f"{fmt_mib(rss)} (peak {fmt_mib(peak)})", fmt_mib(baseline) + " (0 cameras)",
                    f"{fmt_difference(rss, baseline, 'MiB')} ({per_camera:.0f} KiB/camera)",
                ))
            if len(relay.tunnels) != max(cfg.memory_counts):
                raise RuntimeError(f"the relay holds {len(relay.tunnels)} tunnels, expected {max(cfg.memory_counts)}")
    finally:
        await relay.close()
    return rows


# --- the run --------------------------------------------------------------------


def header(cfg: Config) -> str:
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()
    return (
        f"camgate benchmarks ({cfg.name} run) at {commit or 'unknown commit'}; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} at start"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description="camgate's benchmarks, printed as one table.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a quick look")
    parser.add_argument("--only", default="1,2,3,4,5", help="comma-separated benchmarks to run (default all: 1,2,3,4,5)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    only = {part.strip() for part in args.only.split(",") if part.strip()}
    if not only or not only <= {"1", "2", "3", "4", "5"}:
        parser.error(f"--only takes numbers from 1 to 5, not {args.only!r}")

    if not Path(camgate.__file__).resolve().is_relative_to(SRC):
        print(f"camgate is imported from {camgate.__file__}, not from this tree", file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 8192:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, hard), hard))
    import logging

    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")

    title = header(cfg)
    tmp = Path(tempfile.mkdtemp(prefix="camgate-bench-"))
    children = Children()
    rows: list[Row] = []
    failed = False
    sections = [
        ("1,2", lambda: asyncio.run(bench_paths(cfg, tmp, children, only))),
        ("3", lambda: bench_add_camera(cfg, tmp)),
        ("4", lambda: asyncio.run(bench_recovery(cfg, tmp))),
        ("5", lambda: asyncio.run(bench_memory(cfg, tmp))),
    ]
    try:
        for numbers, run in sections:
            if not only & set(numbers.split(",")):
                continue
            try:
                rows += run()
            except Exception as exc:  # report it in the table and go on with the others
                failed = True
                traceback.print_exc()
                rows.append(Row(numbers, "FAILED", f"{type(exc).__name__}: {exc}"[:160]))
            finally:
                children.stop_all()
    finally:
        children.stop_all()
    elapsed = time.monotonic() - STARTED
    print(title)
    print()
    print(format_table(rows))
    print()
    print(
        "MB = 10^6 bytes, MiB = 2^20 bytes. Baseline of 1-2: one asyncio TCP proxy process in place of\n"
        "relay + tunnel client processes; viewer and camera run in the benchmark process.\n"
        f"Load average {os.getloadavg()[0]:.2f} at the end; total run time {elapsed:.0f} s."
    )
    if failed:
        print(f"Logs of the failed run are kept in {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
