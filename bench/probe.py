#!/usr/bin/env python3
"""What the health probe costs the real `camgate agent`: CPU and memory while it probes
500 cameras, 100 of them real RTSP listeners, against the same agent whose probes are
all kept off (CAMGATE_PROBE_NETWORKS names no camera's network).

    python3 bench/probe.py              500 cameras, 100 listening, 5 s interval, 30 s sampled
    python3 bench/probe.py --cameras 200 --listening 50 --seconds 20

The listeners (one process) answer OPTIONS and DESCRIBE with an H.264 SDP, so each probe
parses an answer, an SDP and an SPS; the others are ports where nothing listens. Every
camera also has its tunnel up, to an in-process relay: the figures are an agent's, with
probes or without. All traffic stays on 127.0.0.1. The table goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
sys.path[:0] = [str(SRC), str(ROOT)]
os.environ["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])

from bench.common import vm_kib  # noqa: E402
from bench.gateway import cpu_seconds  # noqa: E402
from bench.report import Row, fmt_mib, format_table  # noqa: E402
from tests.support.processes import camgate_env, camgate_process, free_port  # noqa: E402

SDP = (b"v=0\r\ns=bench\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
       b"a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z2QAKKzZQHgCJ+XARAAAAwAEAAADAMg8YMZY,aOvjyyLA\r\n"
       b"m=audio 0 RTP/AVP 0\r\n")


# --- the listeners (run as `bench/probe.py --listeners N`) ----------------------------


async def serve_listeners(count: int) -> None:
    async def camera(reader, writer):
        try:
            while request := await reader.readuntil(b"\r\n\r\n"):
                cseq = next((line for line in request.split(b"\r\n") if line.lower().startswith(b"cseq")), b"CSeq: 0")
                body = SDP if request.startswith(b"DESCRIBE") else b""
                writer.write(b"RTSP/1.0 200 OK\r\n" + cseq + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    servers = [await asyncio.start_server(camera, "127.0.0.1", 0) for _ in range(count)]
    print(json.dumps([s.sockets[0].getsockname()[1] for s in servers]), flush=True)
    while os.getppid() != 1:
        await asyncio.sleep(1)


# --- the measurement ------------------------------------------------------------------


def count(db: Path, sql: str) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        return conn.execute(sql).fetchone()[0]


def insert_cameras(env: dict, cameras: list[dict], tmp: Path) -> None:
    spec = tmp / "cameras.json"
    spec.write_text(json.dumps(cameras))
    code = ("import json, os\nfrom camgate.cameras.models import Camera\n"
            "Camera.objects.bulk_create([Camera(**c) for c in json.load(open(os.environ['BENCH_CAMERAS']))])\n")
    subprocess.run([sys.executable, "-m", "camgate.cli", "shell", "-c", code], env={**env, "BENCH_CAMERAS": str(spec)},
                   check=True, timeout=120, stdout=subprocess.DEVNULL)


async def measure(args, probing: bool, ports: list[int], tmp: Path) -> dict:
    from camgate.uplink.relay import RelayConfig, start_relay

    relay = await start_relay(RelayConfig(host="127.0.0.1", port=0, admin_token=secrets.token_hex(16), port_range=None))
    data = tmp / ("probing" if probing else "quiet")
    env = camgate_env(data, CAMGATE_UPLINK_HOST=relay.public_address, CAMGATE_UPLINK_TLS="false",
                      CAMGATE_GATEWAY_TUNNEL="false", CAMGATE_PROVISIONING_URL=relay.url,
                      CAMGATE_PROBE_INTERVAL=str(args.interval),
                      CAMGATE_PROBE_NETWORKS="127.0.0.0/8" if probing else "192.0.2.255/32")
    try:
        await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "camgate.cli", "migrate", "--verbosity", "0"],
                                env=env, check=True, timeout=120, stdout=subprocess.DEVNULL)
        cameras = [{"ip": "127.0.0.1", "rtsp_port": ports[i] if i < len(ports) else free_port(), "rtsp_only": True,
                    "access_token": relay.register_device(200_000 + i, 1)[0].access_token} for i in range(args.cameras)]
        await asyncio.to_thread(insert_cameras, env, cameras, tmp)
        db = data / "camgate.sqlite3"
        with camgate_process(["agent", "--no-prepare"], env, tmp / f"agent-{data.name}.log") as agent:
            started = time.monotonic()
            async with asyncio.timeout(180):
                while await asyncio.to_thread(count, db, "SELECT COUNT(*) FROM cameras_camerahealth WHERE checked_at IS NOT NULL") < args.cameras:
                    if agent.poll() is not None:
                        raise RuntimeError("the agent died")
                    await asyncio.sleep(0.2)
            first_round = time.monotonic() - started
            async with asyncio.timeout(180):
                while await asyncio.to_thread(count, db, "SELECT COUNT(*) FROM cameras_tunnelstatus WHERE state = 'up'") < args.cameras:
                    await asyncio.sleep(0.2)
            cpu_before, sampled_from = cpu_seconds(agent.pid), time.monotonic()
            await asyncio.sleep(args.seconds)
            cpu = cpu_seconds(agent.pid) - cpu_before
            elapsed = time.monotonic() - sampled_from
            states = await asyncio.to_thread(count, db, "SELECT COUNT(DISTINCT state) FROM cameras_camerahealth")
            return {"first_round": first_round, "cpu": cpu / elapsed, "rss": vm_kib(agent.pid, "VmRSS") * 1024,
                    "peak": vm_kib(agent.pid, "VmHWM") * 1024, "states": states,
                    "ok": await asyncio.to_thread(count, db, "SELECT COUNT(*) FROM cameras_camerahealth WHERE state = 'ok'")}
    finally:
        await relay.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/probe.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=500)
    parser.add_argument("--listening", type=int, default=100)
    parser.add_argument("--interval", type=int, default=5, help="CAMGATE_PROBE_INTERVAL for the run (s)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long CPU is sampled")
    parser.add_argument("--listeners", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.listeners is not None:
        asyncio.run(serve_listeners(args.listeners))
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="camgate-bench-probe-"))
    farm = subprocess.Popen([sys.executable, __file__, "--listeners", str(args.listening)], stdout=subprocess.PIPE, text=True)
    try:
        ports = json.loads(farm.stdout.readline())
        quiet = asyncio.run(measure(args, False, ports, tmp))
        probing = asyncio.run(measure(args, True, ports, tmp))
    finally:
        farm.terminate()
        farm.wait(timeout=10)
    per_second = args.cameras / args.interval
    rows = [
        Row("P", f"agent CPU, {args.cameras} cameras with tunnels up, no probes", f"{quiet['cpu'] * 100:.1f} % of a core"),
        Row("P", f"agent CPU, probing {args.cameras} ({args.listening} answering, every {args.interval} s: "
                 f"{per_second:.0f} probes/s)", f"{probing['cpu'] * 100:.1f} % of a core",
            f"{quiet['cpu'] * 100:.1f} % without", f"{(probing['cpu'] - quiet['cpu']) / per_second * 1e6:.0f} µs CPU a probe"),
        Row("P", "agent RSS, probing / not probing", f"{fmt_mib(probing['rss'])} (peak {fmt_mib(probing['peak'])})",
            f"{fmt_mib(quiet['rss'])} (peak {fmt_mib(quiet['peak'])})"),
        Row("P", "first round: every camera probed and reported, from the agent's start",
            f"{probing['first_round']:.1f} s", f"{probing['ok']} ok"),
    ]
    print(f"camgate health probe benchmark; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print()
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
