#!/usr/bin/env python3
"""A fleet of devices on two relay nodes sharing one PostgreSQL: how long until all their
tunnels are up, how the nodes share them, and what each tunnel costs a node in memory.

    python3 bench/relay_nodes.py                 2000 devices, 4 client processes
    python3 bench/relay_nodes.py --quick         200 devices, under a minute
    python3 bench/relay_nodes.py --devices 1000 --client-processes 2

It starts a real PostgreSQL server (Debian's binaries, initdb into a scratch directory,
as the tests do), two `camgate relay --store postgresql://… --node a|b` processes on
loopback, registers the devices through the admin API (alternating nodes), then starts
every tunnel at once: camgate's own TunnelClient, spread over several client processes
(bench/roles.py tunnel-fleet) that ask ws-endpoint of a or b in turn, so the store
chooses each device's node. The table goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from bench.common import Children, conclude, first_json_line, free_port_range, note, start_command, vm_kib  # noqa: E402
from bench.report import fmt_mib, fmt_seconds, format_grid, percentile  # noqa: E402
from tests.support.postgres import PostgresServer, find_bin_dir  # noqa: E402
from tests.support.processes import camgate_env, camgate_process, free_port, wait_for_http  # noqa: E402

NODES = ("a", "b")
FORWARD = "rtsp:tcp:127.0.0.1:554"  # never dialled: a tunnel is up without its camera


def admin_call(port: int, token: str, method: str, path: str, body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method, data=json.dumps(body).encode() if body else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def node_gauge(port: int, name: str) -> float:
    """A gauge from a node's /metrics (loopback reads it without a token)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    raise RuntimeError(f"no {name} in node metrics")


def two_port_ranges(size: int) -> list[tuple[int, int]]:
    first = free_port_range(size)
    while True:
        second = free_port_range(size)
        if second[1] < first[0] or second[0] > first[1]:
            return [first, second]


def run(args: argparse.Namespace, tmp: Path, problems: list[str]) -> list[list[str]]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server binaries are missing (Debian package 'postgresql')")
    n = args.devices
    admin = secrets.token_hex(16)
    ports = {name: free_port() for name in NODES}
    ranges = dict(zip(NODES, two_port_ranges(n + 16)))  # either node may hold every device
    children = Children()
    rows: list[list[str]] = []
    with ExitStack() as stack:
        postgres = PostgresServer(bin_dir)
        stack.callback(postgres.remove)
        postgres.start()
        dsn = postgres.create_database("relay_bench")
        env = camgate_env(tmp / "data", CAMGATE_RELAY_ADMIN_TOKEN=admin)
        relays = {}
        for name in NODES:
            relays[name] = stack.enter_context(camgate_process(
                ["relay", "--host", "127.0.0.1", "--port", str(ports[name]), "--public-host", "127.0.0.1",
                 "--store", dsn, "--node", name, "--port-range", "%d-%d" % ranges[name],
                 "--uplink-host", f"127.0.0.1:{ports['a']}"], env, tmp / f"relay-{name}.log"))
        for name in NODES:
            wait_for_http(f"http://127.0.0.1:{ports[name]}/api/devices", 30)
        rss_idle = {name: vm_kib(relays[name].pid, "VmRSS") for name in NODES}

        note(f"registering {n} devices through the admin API of a and b in turn")
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            tokens = list(pool.map(
                lambda camid: admin_call(ports[NODES[camid % 2]], admin, "POST", "/api/devices",
                                         {"camid": camid})["access_token"], range(1, n + 1)))
        registered_in = time.monotonic() - started
        rss_registered = {name: vm_kib(relays[name].pid, "VmRSS") for name in NODES}

        note(f"{args.client_processes} client processes preparing {n} tunnel clients")
        stack.callback(children.stop_all)
        fleets = []
        for i in range(args.client_processes):
            share = tokens[i::args.client_processes]
            process = children.spawn(
                [sys.executable, str(ROOT / "bench" / "roles.py"), "tunnel-fleet", "--uplink",
                 f"127.0.0.1:{ports[NODES[i % 2]]}", "--forward", FORWARD, "--connect-timeout", str(args.timeout)],
                tmp / f"fleet-{i}.log", stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            process.stdin.write(json.dumps({"tokens": share}) + "\n")
            process.stdin.flush()
            fleets.append(process)
        for process in fleets:
            first_json_line(process, 60)
        note(f"starting all {n} tunnels")
        go_wall = time.time()
        for process in fleets:
            process.stdin.write("go\n")
            process.stdin.flush()
        results = [first_json_line(process, args.timeout + 30) for process in fleets]
        up_after = sorted(t for r in results for t in r["up_after"])
        all_up = max(r["last_up_wall"] for r in results) - go_wall
        errors: dict[str, int] = {}
        for r in results:
            for reason, count in r["errors"].items():
                errors[reason] = errors.get(reason, 0) + count

        # Let the nodes settle (claims written, heartbeats sent) before reading memory.
        deadline = time.monotonic() + 30
        while True:
            held = {name: int(node_gauge(ports[name], "camgate_relay_node_devices_connected")) for name in NODES}
            if sum(held.values()) >= len(up_after) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        rss_up = {name: vm_kib(relays[name].pid, "VmRSS") for name in NODES}
        hwm = {name: vm_kib(relays[name].pid, "VmHWM") for name in NODES}

    if len(up_after) < n:
        problems.append(f"only {len(up_after)} of {n} tunnels up within {args.timeout:g} s")
    rows.append(["devices registered (admin API, 8 at a time)", f"{n} in {fmt_seconds(registered_in)}"])
    rows.append([f"tunnels up, {args.client_processes} client processes", f"{len(up_after)} / {n}"])
    if up_after:
        rows.append(["per tunnel, start → up: p50 / p99 / max",
                     f"{fmt_seconds(percentile(up_after, 50))} / {fmt_seconds(percentile(up_after, 99))} / "
                     f"{fmt_seconds(up_after[-1])}"])
        rows.append([f"start → all {len(up_after)} up (total)", fmt_seconds(all_up)])
        rows.append(["tunnels per node (a / b)", f"{held['a']} / {held['b']}"])
    for name in NODES:
        grown = (rss_up[name] - rss_registered[name]) * 1024
        per_tunnel = f"{grown / 1024 / held[name]:.0f} KiB/tunnel" if held[name] else "no tunnel"
        rows.append([f"node {name} RSS: idle / {n} registered / tunnels up (peak)",
                     f"{fmt_mib(rss_idle[name] * 1024)} / {fmt_mib(rss_registered[name] * 1024)} / "
                     f"{fmt_mib(rss_up[name] * 1024)} ({fmt_mib(hwm[name] * 1024)}); {per_tunnel}"])
    rows.append(["failed tries (client side)", str(sum(errors.values()))])
    for reason, count in sorted(errors.items(), key=lambda item: -item[1]):
        rows.append([f"  {reason}", str(count)])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/relay_nodes.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=None, help="devices and tunnels (default 2000; --quick 200)")
    parser.add_argument("--quick", action="store_true", help="200 devices, under a minute")
    parser.add_argument("--client-processes", type=int, default=4, help="processes carrying the tunnel clients")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds all tunnels may take to come up")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    args.devices = args.devices or (200 if args.quick else 2000)
    first = start_command(f"bench/relay_nodes.py: {args.devices} devices on two relay nodes sharing PostgreSQL")
    if first is None:
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="camgate-bench-nodes-"))
    problems: list[str] = []
    try:
        rows = run(args, tmp, problems)
    except Exception as exc:
        problems.append(f"{type(exc).__name__}: {exc}")
        rows = []
    print(first)
    print()
    if rows:
        print(format_grid(("measurement", "camgate relay × 2 on PostgreSQL"), rows))
        print()
    return conclude(problems, "All tunnels up.", [], tmp, args.keep_logs)


if __name__ == "__main__":
    sys.exit(main())
