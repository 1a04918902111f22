#!/usr/bin/env python3
"""Snapshot latency: a cold capture against a cached answer, printed as a small table.

    python3 bench/snapshots.py            10 cold captures and 100 cached answers per size
    python3 bench/snapshots.py --quick    fewer

Real parts on 127.0.0.1 only: GStreamer's RTSP server as the camera (640×480 and
1280×720 Motion JPEG), `camgate web` (gunicorn) and `camgate agent` as processes, and a
client timing `GET /api/camera/<id>/snapshot/` end to end. For each size:

- cold: a request after the camera's interval has passed, so the agent captures (a child
  process, RTSP over TCP, the first keyframe, a JPEG); baseline: what a script would
  run instead, `ffmpeg -rtsp_transport tcp -i URL -frames:v 1 out.jpg`;
- the capture child alone (`python -m camgate.media.grab`, no web server, no agent);
- cached: requests inside the interval, served from the agent's last frame; baseline:
  `GET /api/camera/<id>/` on the same web server (the same token check and camera
  lookup, no agent).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
sys.path[:0] = [str(SRC), str(ROOT)]
os.environ["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])

from bench.report import Row, fmt_ratio, fmt_seconds, format_table, median, percentile  # noqa: E402
from tests.support.cameras import RtspCamera  # noqa: E402
from tests.support.processes import camgate_env, camgate_process, free_port, http_json, wait_for_http, wait_for_path  # noqa: E402

INTERVAL_S = 1  # CAMGATE_SNAPSHOT_MIN_INTERVAL for the run: short, so cold captures come quickly
SIZES = ((640, 480), (1280, 720))


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def fetch(url: str, token: str | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
        return response.read()


def summary(samples: list[float]) -> str:
    return f"{fmt_seconds(median(samples))} (p90 {fmt_seconds(percentile(samples, 90))}, n={len(samples)})"


def ffmpeg_one_frame(url: str, out: Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-rtsp_transport", "tcp", "-i", url, "-frames:v", "1", str(out)],
                   check=True, capture_output=True, timeout=30)


def grab_child(port: int) -> None:
    request = {"source": {"camera_id": 1, "host": "127.0.0.1", "port": port, "path": "/"},
               "deadline": time.monotonic() + 10, "timeout": 10}
    done = subprocess.run([sys.executable, "-m", "camgate.media.grab"], input=json.dumps(request).encode(),
                          capture_output=True, timeout=30)
    if done.returncode != 0 or not done.stdout.startswith(b"\xff\xd8"):
        raise RuntimeError(f"the capture child failed: {done.stdout[:200]!r}")


def bench_size(width: int, height: int, base: str, token: str, tmp: Path, cold: int, cached: int) -> list[Row]:
    camera = RtspCamera(free_port(), width, height, path="/").start()
    try:
        status, added = http_json("POST", f"{base}/api/add-camera/", {"ip": "127.0.0.1", "rtsp_port": camera.port},
                                  token=token)
        if status != 201:
            raise RuntimeError(f"add-camera answered {status}: {added}")
        url = f"{base}/api/camera/{added['camera_id']}/snapshot/"
        rtsp = f"rtsp://127.0.0.1:{camera.port}/"
        fetch(url, token)  # the camera's pipeline starts on its first client: not measured
        cold_samples, child_samples, ffmpeg_samples, cached_samples = [], [], [], []
        for _ in range(cold):
            time.sleep(INTERVAL_S + 0.05)
            cold_samples.append(timed(lambda: fetch(url, token)))
            cached_samples += [timed(lambda: fetch(url, token)) for _ in range(cached // cold)]
            child_samples.append(timed(lambda: grab_child(camera.port)))
            ffmpeg_samples.append(timed(lambda: ffmpeg_one_frame(rtsp, tmp / "frame.jpg")))
        detail = [timed(lambda: fetch(f"{base}/api/camera/{added['camera_id']}/", token)) for _ in cached_samples]
        size = f"{width}×{height}"
        return [
            Row(size, "cold: HTTP → agent → capture child → JPEG", summary(cold_samples),
                f"ffmpeg -frames:v 1: {fmt_seconds(median(ffmpeg_samples))}",
                fmt_ratio(median(cold_samples), median(ffmpeg_samples))),
            Row(size, "the capture child alone", summary(child_samples)),
            Row(size, "cached: HTTP → agent's last frame", summary(cached_samples),
                f"GET /api/camera/<id>/: {fmt_seconds(median(detail))}",
                fmt_ratio(median(cached_samples), median(detail))),
        ]
    finally:
        camera.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/snapshots.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 cold captures and 30 cached answers per size")
    args = parser.parse_args(argv)
    cold, cached = (3, 30) if args.quick else (10, 100)
    tmp = Path(tempfile.mkdtemp(prefix="camgate-bench-snapshots-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # No tunnels: nothing here may reach past loopback.
    env = camgate_env(tmp / "data", CAMGATE_SNAPSHOT_MIN_INTERVAL=str(INTERVAL_S), CAMGATE_GATEWAY_TUNNEL="false",
                      CAMGATE_PROVISIONING_URL="http://127.0.0.1:9/", CAMGATE_UPLINK_HOST="127.0.0.1:9")
    rows: list[Row] = []
    with camgate_process(["web", "--port", str(port)], env, tmp / "web.log"):
        wait_for_http(f"{base}/healthz", timeout=60)
        with camgate_process(["agent"], env, tmp / "agent.log"):
            wait_for_path(tmp / "data" / "agent.sock")
            _, body = http_json("POST", f"{base}/api/auth-token/", {"username": "admin", "password": "admin"})
            for width, height in SIZES:
                note(f"{width}×{height}: {cold} cold captures, {cached} cached answers")
                rows += bench_size(width, height, base, body["token"], tmp, cold, cached)
    print(f"Snapshot latency, median (p90); load average {os.getloadavg()[0]:.2f} at the end")
    print()
    print(format_table(rows, headers=("size", "measurement", "camgate", "baseline", "camgate vs baseline")))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
