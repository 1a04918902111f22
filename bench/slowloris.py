#!/usr/bin/env python3
"""Normal clients' answer times while slow clients (slowloris) hold connections open.

    python3 bench/slowloris.py              1000 slow connections per path
    python3 bench/slowloris.py --slow 300   fewer

Starts `camgate run` (this tree's code, with its embedded relay) and Debian's nginx with
deploy/nginx.conf in front of its web server. For each path (straight to the web front,
through nginx, through the gateway's own tunnel: relay public port -> agent -> the
front's tunnel port) it opens N connections that each send half a request head and
nothing more, then times REQUESTS token-authenticated `GET /api/cameras/` made one
after the other meanwhile. The goal: every one answered within 1 s. For comparison,
gunicorn alone as `camgate web` ran it before the front (2 workers x 4 threads).

The table goes to stdout, progress to stderr; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import random
import resource
import select
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
sys.path[:0] = [str(SRC), str(ROOT)]
os.environ["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])

from bench.report import Row, fmt_seconds, format_table, median  # noqa: E402
from tests.deploy.nginx_template import render, start_nginx  # noqa: E402
from tests.support.processes import camgate_env, camgate_process, free_port, http_json, wait_for_http  # noqa: E402

REQUESTS = 20
ANSWER_TIMEOUT_S = 5.0
GOAL_S = 1.0
SLOW_HEAD = b"GET /api/cameras/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n"
HEADERS = ("path", "slow connections held", f"answered within {ANSWER_TIMEOUT_S:g} s", "median", "slowest")
STARTED = time.monotonic()


def note(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:5.1f}s] {message}", file=sys.stderr, flush=True)


def open_slow(port: int, count: int) -> list[socket.socket]:
    clients = []
    for _ in range(count):
        try:
            client = socket.create_connection(("127.0.0.1", port), timeout=2)
            client.sendall(SLOW_HEAD)
            clients.append(client)
        except OSError:
            pass  # refused or timed out: it simply is not held
    return clients


def still_held(clients: list[socket.socket]) -> int:
    """Those the server has not closed: a closed or reset socket reads as ready."""
    ready = set()
    for start in range(0, len(clients), 500):
        batch = clients[start:start + 500]
        ready |= set(select.select(batch, [], [], 0)[0])
    return len(clients) - len(ready)


def timed_requests(port: int, token: str) -> list[float | None]:
    """Seconds for each answer, None for none within ANSWER_TIMEOUT_S."""
    times: list[float | None] = []
    for _ in range(REQUESTS):
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=ANSWER_TIMEOUT_S)
        try:
            connection.request("GET", "/api/cameras/", headers={"Authorization": f"Token {token}"})
            response = connection.getresponse()
            response.read()
            times.append(time.monotonic() - started if response.status == 200 else None)
        except OSError:
            times.append(None)
        finally:
            connection.close()
    return times


def measure(path: str, port: int, token: str, slow: int) -> Row:
    note(f"{path}: {slow} slow connections")
    clients = open_slow(port, slow)
    try:
        time.sleep(0.5)  # what the servers do with them, they have done by now
        times = timed_requests(port, token)
        held = still_held(clients)
    finally:
        for client in clients:
            client.close()
    answered = [t for t in times if t is not None]
    within_goal = sum(t <= GOAL_S for t in answered)
    return Row(
        path,
        f"{held} of {slow}",
        f"{len(answered)} of {REQUESTS} ({within_goal} within {GOAL_S:g} s)",
        fmt_seconds(median(answered)) if answered else "—",
        fmt_seconds(max(answered)) if answered else "—",
    )


def gateway_web_port(data_dir: Path, relay_port: int) -> int:
    admin = {"Authorization": f"Bearer {(data_dir / 'relay-admin-token').read_text().strip()}"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, devices = http_json("GET", f"http://127.0.0.1:{relay_port}/api/devices", headers=admin)
        for device in devices or []:
            if device["online"] and device["camid"] >= 1_000_000_000:
                _, lookup = http_json("GET", f"http://127.0.0.1:{relay_port}/api/device/{device['camid']}", headers=admin)
                for forward in lookup["forwards"]:
                    if forward["name"] == "web":
                        return forward["proxy_port"]
        time.sleep(0.5)
    raise TimeoutError("the gateway's own tunnel did not come up")


def gunicorn_alone(tmp: Path, slow: int) -> list[Row]:
    """The web server as it was before the front: gunicorn's gthread workers facing the
    clients themselves (the same settings `camgate web` used: 2 workers x 4 threads)."""
    port = free_port()
    env = camgate_env(tmp / "data")
    with open(tmp / "gunicorn.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "camgate.appserver", "--bind", f"127.0.0.1:{port}", "--workers", "2",
             "--parent", str(os.getpid())], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        _, body = http_json("POST", f"http://127.0.0.1:{port}/api/auth-token/", {"username": "admin", "password": "admin"})
        token = body["token"]
        return [measure("gunicorn alone (before the front)", port, token, count) for count in (0, 8, slow)]
    finally:
        process.terminate()
        process.wait(timeout=15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/slowloris.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", type=int, default=1000, help="slow connections per path (default 1000)")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    tmp = Path(tempfile.mkdtemp(prefix="camgate-slowloris-"))
    port, tunnel_port, relay_port, nginx_port = free_port(), free_port(), free_port(), free_port()
    range_start = random.randrange(40000, 48000, 100)
    env = camgate_env(tmp / "data", CAMGATE_EMBEDDED_RELAY_PORT=str(relay_port),
                      CAMGATE_RELAY_PORT_RANGE=f"{range_start}-{range_start + 99}", CAMGATE_SSH_PORT="0")
    rows: list[Row] = []
    with ExitStack() as stack:
        note("starting camgate run and nginx")
        args_run = ["run", "--port", str(port), "--tunnel-port", str(tunnel_port)]
        stack.enter_context(camgate_process(args_run, env, tmp / "camgate.log"))
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        (tmp / "static").mkdir()
        nginx = start_nginx(render(nginx_port, f"127.0.0.1:{port}", tmp / "static", tmp / "nginx"), tmp / "nginx", nginx_port)
        stack.callback(nginx.stop)
        _, body = http_json("POST", f"http://127.0.0.1:{port}/api/auth-token/", {"username": "admin", "password": "admin"})
        token = body["token"]
        web_port = gateway_web_port(tmp / "data", relay_port)
        paths = [("straight to the web front", port), ("through nginx", nginx_port), ("through the gateway tunnel", web_port)]
        for name, target in paths:
            counts = (0, 200, args.slow) if target == web_port else (0, args.slow)
            rows += [measure(name, target, token, count) for count in counts]
    rows += gunicorn_alone(tmp, args.slow)

    print(f"Normal clients with slow clients holding connections (slowloris); Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print()
    print(format_table(rows, HEADERS))
    print()
    print(f"Each slow connection sent half a request head and then nothing; {REQUESTS} GET /api/cameras/ one after\n"
          f"the other per row. \"Held\": still open when the row ended. The relay holds at most 256 connections per\n"
          f"tunnel and turns viewers away past that, so on the tunnel's port the web front keeps at most 128 slow\n"
          f"ones, letting the oldest go for each newcomer.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
