#!/usr/bin/env python3
"""Many viewers of 1 MB/s camera streams through one relay and one tunnel-client process,
every byte checked, and the CPU each of the two processes spends per delivered GB.

    python3 bench/viewers.py                   100, then 200 viewers, 60 s each
    python3 bench/viewers.py --quick           20, then 40 viewers, 8 s each
    python3 bench/viewers.py --viewers 200 --seconds 30 --profile DIR [--native]
    python3 bench/viewers.py --baseline        also the same streams through one asyncio proxy

For each count it starts a real `camgate relay` process and one tunnel-client process
holding one tunnel per two viewers (bench/roles.py tunnel-fleet: camgate's TunnelClient,
the agent's data path without its database), all on loopback. Each viewer connects to
its tunnel's public port and asks the camera (bench/streams.py, in this process) for one
paced stream long enough to cover the warm-up and the measured window; the viewer
compares every byte it receives with the camera's pattern at its offset, and a stream
counts as intact when all its bytes matched and the camera says it sent that many. CPU is
user + system time from /proc/<pid>/stat over the measured window only, divided by the
bytes the viewers received in it. Other processes on the machine change the wall-clock
rates and, less, the CPU per byte (a viewer that falls behind makes the relay buffer for
it); compare figures of one run, or medians of runs taken in turns.

With --baseline, the same viewers then stream through one plain asyncio TCP proxy process
(bench/roles.py proxy) instead of the tunnel: the cost of reading and writing each byte
once in Python, which neither tunnel process can go below.

With --profile DIR, py-spy (if installed) samples both processes during each window and
writes their collapsed stacks (`<process>-<viewers>.txt`, for flamegraph.pl or
speedscope) to DIR; with --native also the C and system-call frames beneath them.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # this tree's camgate and bench, first

from bench.common import (  # noqa: E402
    ROLES, Children, Context, first_json_line, free_port_range, note, spawn_role, start_command,
)
from bench.gateway import cpu_seconds  # noqa: E402
from bench.report import MB, Row, format_table  # noqa: E402
from bench.streams import (  # noqa: E402
    _WRAPPED, CHUNK, CORRUPT, CUT, INTACT, NO_STREAM, PATTERN_SIZE, REQUEST, STALL_S, STALLED, PacedCamera, Tally,
)
from tests.support.processes import free_port, http_json, wait_for_http  # noqa: E402

NUMBER = "6"  # this part's number in bench/run.py's table
GOAL = 0.8  # core-seconds per delivered GB, relay and agent each (issue 14)
GB = 1000 * MB


@dataclass(frozen=True)
class Plan:
    viewers: tuple[int, ...]  # one measurement per count, each with fresh processes
    per_tunnel: int  # viewers of one camera (one tunnel)
    seconds: float  # the measured window
    warmup: float  # streaming before the window opens
    rate: int  # bytes per second of each stream
    # Also carry the same streams through one plain asyncio TCP proxy process (bench/roles.py
    # proxy): what forwarding them costs Python at all, read and written once, no tunnel.
    baseline: bool = False
    # --profile with native frames too (C, the kernel's calls): py-spy then pauses each
    # process for each sample, which costs them CPU of their own; compare such runs only
    # with each other.
    native_profile: bool = False


FULL = Plan((100, 200), 2, 60.0, 5.0, MB)
QUICK = Plan((20, 40), 2, 8.0, 2.0, MB)


@dataclass(frozen=True)
class Window:
    """What one measured window saw."""

    per_gb: dict[str, float]  # core-seconds per delivered GB, by process
    busy: dict[str, float]  # cores, by process
    rate: float  # MB/s delivered
    intact: int
    errors: list[str]


def run(ctx: Context) -> list[Row]:
    plan = QUICK if ctx.quick else FULL
    # The table's baseline: what the same streams cost one plain asyncio proxy in the same
    # run, the floor of reading and writing each byte once in Python. Not in a smoke run,
    # which only checks that the part runs.
    return _run(bench_viewers(plan if ctx.smoke else replace(plan, baseline=True), ctx.tmp, ctx.children))


def _run(main):
    """Run the benchmark's own side (the camera, every viewer, their checks) on uvloop
    when it is installed, so that it keeps up with 200 streams on a busy machine: a
    viewer that falls behind makes the relay buffer for it, which costs the relay more
    per byte than the streams themselves."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def bench_viewers(plan: Plan, tmp: Path, children: Children, profile: Path | None = None,
                        problems: list[str] | None = None) -> list[Row]:
    """The table's rows; what went wrong with the streams is also added to ``problems``."""
    rows: list[Row] = []
    for count in plan.viewers:
        try:
            rows += await _one_count(plan, count, tmp, children, profile, [] if problems is None else problems)
        finally:
            children.stop_all()
    return rows


async def _one_count(plan: Plan, count: int, tmp: Path, children: Children, profile: Path | None,
                     problems: list[str]) -> list[Row]:
    tunnels = -(-count // plan.per_tunnel)
    run_dir = tmp / f"viewers-{count}"
    run_dir.mkdir(parents=True, exist_ok=True)
    camera = await PacedCamera(hashed=False).start()
    try:
        relay_port, admin = free_port(), secrets.token_hex(16)
        low, high = free_port_range(2 * tunnels + 20)  # room for ports others take meanwhile
        relay = children.spawn(
            [sys.executable, "-m", "camgate.cli", "relay", "--host", "127.0.0.1", "--port", str(relay_port),
             "--state", str(run_dir / "relay-state.json"), "--port-range", f"{low}-{high}"],
            run_dir / "relay.log",
            env={**os.environ, "CAMGATE_DATA_DIR": str(run_dir / "relay-data"), "CAMGATE_RELAY_ADMIN_TOKEN": admin},
        )
        relay_url = f"http://127.0.0.1:{relay_port}"
        admin_headers = {"Authorization": f"Bearer {admin}"}
        await asyncio.to_thread(wait_for_http, relay_url + "/api/devices")
        camids = range(1, tunnels + 1)
        tokens = []
        for camid in camids:
            status, device = await asyncio.to_thread(
                http_json, "POST", relay_url + "/api/devices", {"camid": camid, "cmngrid": 1}, headers=admin_headers)
            if status != 201:
                raise RuntimeError(f"relay refused device {camid}: {status} {device}")
            tokens.append(device["access_token"])
        note(f"{NUMBER}. {count} viewers: starting {tunnels} tunnels in one client process")
        agent = children.spawn(
            [sys.executable, str(ROLES), "tunnel-fleet", "--uplink", f"127.0.0.1:{relay_port}",
             "--forward", f"rtsp:tcp:127.0.0.1:{camera.port}"],
            run_dir / "tunnel-fleet.log", env=dict(os.environ), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        agent.stdin.write(json.dumps({"tokens": tokens}) + "\n")  # on stdin: secrets stay out of argv
        agent.stdin.flush()
        await asyncio.to_thread(first_json_line, agent, 30)  # {"ready": n}
        agent.stdin.write("go\n")
        agent.stdin.flush()
        up = await asyncio.to_thread(first_json_line, agent, 130)
        if len(up["up_after"]) < tunnels:
            raise RuntimeError(f"only {len(up['up_after'])} of {tunnels} tunnels came up: {up['errors']}")
        ports = []
        for camid in camids:
            _, lookup = await asyncio.to_thread(http_json, "GET", f"{relay_url}/api/device/{camid}", headers=admin_headers)
            ports.append(lookup["forwards"][0]["proxy_port"])
        got = await _measure(plan, count, ports, camera, {"relay": relay.pid, "agent": agent.pid}, profile, problems)
        proxy = None
        if plan.baseline:
            children.stop_all()
            note(f"{NUMBER}. {count} viewers: the same through one asyncio proxy")
            process, said = await asyncio.to_thread(spawn_role, children, run_dir, "proxy", ["--target", f"127.0.0.1:{camera.port}"])
            proxy = await _measure(plan, count, [said["port"]], camera, {"proxy": process.pid}, None, problems)
    finally:
        camera.close()
    what = f"{count} viewers × {plan.rate / MB:g} MB/s ({tunnels} tunnels), {plan.seconds:g} s"
    met = all(v <= GOAL for v in got.per_gb.values()) and not got.errors
    rows = [
        Row(NUMBER, f"{what}: core-seconds per delivered GB, relay / agent",
            f"{got.per_gb['relay']:.2f} / {got.per_gb['agent']:.2f}",
            f"{proxy.per_gb['proxy']:.2f} (one asyncio proxy)" if proxy else "—",
            f"goal ≤ {GOAL:g} each: {'met' if met else 'not met'}"),
        Row(NUMBER, f"  cores busy, relay / agent; delivered (asked {count * plan.rate / MB:g} MB/s)",
            f"{got.busy['relay']:.2f} / {got.busy['agent']:.2f}; {got.rate:.1f} MB/s",
            f"{proxy.busy['proxy']:.2f}; {proxy.rate:.1f} MB/s" if proxy else "—"),
        Row(NUMBER, "  streams received whole, every byte the camera's",
            f"{got.intact}/{count}" + (f"; {', '.join(got.errors)}" if got.errors else ""),
            f"{proxy.intact}/{count}" if proxy else "—", f"all {count}"),
    ]
    return rows


async def _measure(plan: Plan, count: int, ports: list[int], camera: PacedCamera, pids: dict[str, int],
                   profile: Path | None, problems: list[str]) -> Window:
    tally, seeds = Tally(), itertools.count(1)
    # One stream each, long enough for the whole window: the viewers' last bytes arrive
    # just after it closes, and then every stream is checked whole.
    length = int(plan.rate * (plan.warmup + plan.seconds + 1))
    viewers = [
        asyncio.create_task(view_checked(ports[i % len(ports)], camera, next(seeds), length, plan.rate, tally))
        for i in range(count)
    ]
    note(f"{NUMBER}. {count} viewers streaming; {plan.warmup:g} s of warm-up, then {plan.seconds:g} s measured")
    await asyncio.sleep(plan.warmup)
    samplers = _start_profiles(profile, pids, count, plan.seconds, plan.native_profile)
    bytes_before, cpu_before, started = tally.bytes, {n: cpu_seconds(p) for n, p in pids.items()}, time.monotonic()
    await asyncio.sleep(plan.seconds)
    cpu = {n: cpu_seconds(p) - cpu_before[n] for n, p in pids.items()}
    seconds, delivered = time.monotonic() - started, tally.bytes - bytes_before
    note(f"{NUMBER}. window closed: {delivered / MB / seconds:.1f} MB/s; waiting for the streams to end")
    outcomes = await asyncio.gather(*viewers, return_exceptions=True)
    for sampler in samplers:
        await asyncio.to_thread(sampler.wait)
    broken = [o for o in outcomes if isinstance(o, BaseException)]
    if broken:
        raise broken[0]
    o = tally.outcomes
    errors = [f"{o[k]} {k}" for k in (CORRUPT, CUT, STALLED, NO_STREAM) if o[k]] + tally.notes
    problems += [f"{count} viewers ({', '.join(pids)}): {e}" for e in errors]
    return Window(
        per_gb={n: c / (delivered / GB) if delivered else float("inf") for n, c in cpu.items()},
        busy={n: c / seconds for n, c in cpu.items()}, rate=delivered / MB / seconds, intact=o[INTACT], errors=errors,
    )


_PATTERN_BYTES = _WRAPPED.obj  # bytes: slices compare with memcmp (memoryviews byte by byte)


class _CheckingViewer(asyncio.Protocol):
    """A viewer that compares every byte with the camera's pattern as it arrives: ten
    times cheaper than sha256 here, so that the viewers keep up with 200 MB/s."""

    def __init__(self, seed: int, length: int, rate: int, tally: Tally) -> None:
        self.seed, self.length, self.rate, self.tally = seed, length, rate, tally
        self.got = 0
        self.intact = True
        self.heard = time.monotonic()
        self.ended = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(REQUEST.pack(self.seed, self.length, self.rate))

    def data_received(self, data: bytes) -> None:
        self.heard = time.monotonic()
        offset = 0
        while offset < len(data) and self.intact:
            start = (self.seed * 7919 + self.got + offset) % PATTERN_SIZE
            size = min(CHUNK, len(data) - offset)
            self.intact = data[offset:offset + size] == _PATTERN_BYTES[start:start + size]
            offset += size
        self.got += len(data)
        self.tally.bytes += len(data)
        if self.got >= self.length:
            self.transport.abort()

    def connection_lost(self, exc) -> None:
        if not self.ended.done():
            self.ended.set_result(None)


async def view_checked(port: int, camera: PacedCamera, seed: int, length: int, rate: int, tally: Tally) -> str:
    """One stream through ``port``, every byte checked; its outcome, also in ``tally``."""
    sent = camera.expect(seed)
    loop = asyncio.get_running_loop()
    try:
        try:
            async with asyncio.timeout(10):
                _, viewer = await loop.create_connection(lambda: _CheckingViewer(seed, length, rate, tally), "127.0.0.1", port)
        except OSError:
            tally.outcomes[NO_STREAM] += 1
            return NO_STREAM
        while not viewer.ended.done():
            await asyncio.wait([viewer.ended], timeout=1)
            if not viewer.ended.done() and time.monotonic() - viewer.heard > STALL_S:
                viewer.transport.abort()
                tally.note(f"port {port}: nothing for {STALL_S:.0f} s after {viewer.got} of {length} bytes")
                tally.outcomes[STALLED] += 1
                return STALLED
        if viewer.got == 0:
            ended = NO_STREAM
        elif not viewer.intact or viewer.got > length:
            ended = CORRUPT
            tally.note(f"port {port}: stream {seed} differs from the camera's within its first {viewer.got} bytes")
        elif viewer.got < length:
            ended = CUT
        else:
            try:
                async with asyncio.timeout(10):
                    camera_sent, _ = await sent
            except TimeoutError:
                camera_sent = None  # a viewer got a whole stream the camera never finished
            ended = INTACT if camera_sent == length else CORRUPT
        tally.outcomes[ended] += 1
        return ended
    finally:
        camera.forget(seed)


def _start_profiles(profile: Path | None, pids: dict[str, int], count: int, seconds: float,
                    native: bool = False) -> list[subprocess.Popen]:
    if profile is None:
        return []
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        note("no py-spy found: not profiling")
        return []
    profile.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
             # Native frames (C, the kernel's syscalls) need py-spy to pause the process for each sample.
             *(["--native"] if native else ["--nonblocking"]),
             "--format", "raw", "--output", str(profile / f"{name}-{count}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/viewers.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer viewers, a shorter window")
    parser.add_argument("--viewers", help="comma-separated viewer counts (default 100,200; --quick 20,40)")
    parser.add_argument("--seconds", type=float, help="the measured window (default 60; --quick 8)")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy's collapsed stacks of both processes, per count")
    parser.add_argument("--native", action="store_true",
                        help="with --profile: native stacks too (C extensions, system calls); py-spy pauses the processes")
    parser.add_argument("--baseline", action="store_true",
                        help="also carry the same streams through one plain asyncio proxy process, for comparison")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.baseline:
        plan = replace(plan, baseline=True)
    if args.native:
        if args.profile is None:
            parser.error("--native goes with --profile DIR")
        plan = replace(plan, native_profile=True)
    try:
        if args.viewers:
            plan = replace(plan, viewers=tuple(int(v) for v in args.viewers.split(",")))
        if args.seconds is not None:
            plan = replace(plan, seconds=args.seconds)
    except ValueError:
        parser.error(f"--viewers takes numbers separated by commas, not {args.viewers!r}")
    if not plan.viewers or min(plan.viewers) < 1 or plan.seconds <= 0:
        parser.error("--viewers and --seconds must be positive")
    title = start_command(f"camgate viewers bench ({'quick' if args.quick else 'full'} run)")
    if title is None:
        return 2
    tmp, children, problems = Path(tempfile.mkdtemp(prefix="camgate-viewers-")), Children(), []
    try:
        rows = _run(bench_viewers(plan, tmp, children, args.profile, problems))
    except BaseException:
        print(f"The bench failed; its logs are in {tmp}", file=sys.stderr)
        raise
    finally:
        children.stop_all()
    print(title)
    print()
    print(format_table(rows))
    print()
    print(f"GB = 10^9 bytes. Load average {os.getloadavg()[0]:.2f} at the end.")
    if problems:
        print(f"Streams not delivered whole; logs kept in {tmp}", file=sys.stderr)
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
