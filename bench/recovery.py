#!/usr/bin/env python3
"""Benchmark 4: every tunnel back after a relay restart (issue 14, item 1).

    python3 bench/recovery.py                   100, then 1000 tunnels
    python3 bench/recovery.py --tunnels 1000 --rounds 3 --profile DIR
    python3 bench/recovery.py --tunnels 2000 --addresses 1     every device behind one NAT

One real `camgate relay` process (state file, public port range) and n tunnels in
tunnel-fleet processes (bench/roles.py: camgate's TunnelClient, one forward each, to an
echo camera in this process), connecting from several loopback addresses,
DEVICES_PER_ADDRESS each, as devices come from many sites. Once every tunnel is up and
echoes, the relay is stopped (SIGTERM; then kill -9) and, as soon as it has exited,
started again on the same port and state file, as a supervisor does. Restarts are
more than the clients' quiet_after (10 s) apart, so that each is a first loss, as a
restart after a quiet spell is, and not one in quick succession of the last.

A tunnel's downtime runs from the signal until its client is up again with its public
port and a viewer's echo through that port has come back: the viewer (this process)
dials as soon as the client says the tunnel is up, and again every 20 ms until the echo
comes. The table gives p50, p99 and max over the tunnels; the relay's own downtime
(exited, with the CPU its close took; listening again) and how long the last tunnel took
after that; the public ports kept; the failed tries the clients retried while nothing
listened (refused connections) and after; and the CPU seconds of the relay and of the
clients until it listened and until all were back. All figures include the new relay
process's start (Python and its imports). Relay, clients and viewers share the
machine's cores: on two cores the clients' share is as large as the relay's, which a
fleet of real devices would not take from it.

With --profile DIR, py-spy (on PATH or beside this Python) samples the stopping relay,
the new one and the client processes through each restart, and writes their stacks
there (py-spy's raw format: one collapsed stack a line).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # this tree's camgate and bench, first

import aiohttp  # noqa: E402

from bench.common import ROLES, Children, Context, free_port_range, note, start_command  # noqa: E402
from bench.gateway import cpu_seconds  # noqa: E402
from bench.relay_scale import DEVICES_PER_ADDRESS, source_addresses  # noqa: E402
from bench.report import Row, fmt_seconds, format_table, percentile  # noqa: E402
from bench.traffic import CameraServer  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

NUMBER = "4"
SIZES = {"full": (100, 1000), "quick": (100, 300), "smoke": (6,)}  # tunnels, by ctx.size
STOPS = {"full": ("SIGTERM", "SIGKILL"), "quick": ("SIGTERM", "SIGKILL"), "smoke": ("SIGTERM",)}
GOALS = {100: 1.5, 1000: 3.0}  # seconds until the slowest tunnel is back (issue 14)
FLEET_PROCESSES = 2  # at most: one per DEVICES_PER_ADDRESS devices (the machine has two cores)
BACK_WITHIN = 60.0  # seconds: a tunnel not back by then fails the run
PROBE = b"back?"


def run(ctx: Context) -> list[Row]:
    from camgate import event_loop

    return event_loop.run(bench_recovery(SIZES[ctx.size], STOPS[ctx.size], ctx.tmp, ctx.children))


@dataclass(frozen=True)
class Options:
    rounds: int = 1  # restarts per size and stop
    profile: Path | None = None  # py-spy's stacks go there
    addresses: int | None = None  # source addresses; None: one per DEVICES_PER_ADDRESS devices

    def sources(self, n: int) -> list[str]:
        if self.addresses is None:
            return source_addresses(n)
        return [f"127.0.7.{i + 1}" for i in range(self.addresses)]


async def bench_recovery(sizes, stops, tmp: Path, children: Children, options: Options = Options()) -> list[Row]:
    rows: list[Row] = []
    for n in sizes:
        try:
            rows += await one_size(n, stops, tmp / f"recovery-{n}", children, options)
        finally:
            children.stop_all()
    return rows


@dataclass
class Round:
    """What one restart saw."""

    stop: str
    n: int
    signalled: float
    exited: float = 0.0
    listening: float = 0.0
    back: dict[int, float] = field(default_factory=dict)  # tunnel -> when its echo came back
    ports: dict[int, int] = field(default_factory=dict)  # tunnel -> public port after
    failed: list[tuple[float, str]] = field(default_factory=list)  # failed tries: when said, why
    lost: Counter = field(default_factory=Counter)  # up tunnels lost, by reason
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds since the signal, until all were back
    cpu_listening: dict[str, float] = field(default_factory=dict)  # the same, until the relay listened
    stopping_cpu: float = 0.0  # CPU seconds the stopped relay used from the signal until it exited
    all_back: asyncio.Event = field(default_factory=asyncio.Event)

    def downtimes(self) -> list[float]:
        return sorted(at - self.signalled for at in self.back.values())


class Relay:
    """The `camgate relay` process, started again on the same port and state file."""

    def __init__(self, children: Children, tmp: Path, n: int) -> None:
        self.children = children
        self.tmp = tmp
        self.port = free_port()
        self.admin = secrets.token_hex(16)
        low, high = free_port_range(2 * n + 20)  # room for ports others take meanwhile
        self.argv = [sys.executable, "-m", "camgate.cli", "relay", "--host", "127.0.0.1", "--port", str(self.port),
                     "--public-host", "127.0.0.1", "--state", str(tmp / "state.json"), "--port-range", f"{low}-{high}"]
        self.env = {**os.environ, "CAMGATE_DATA_DIR": str(tmp / "data"), "CAMGATE_RELAY_ADMIN_TOKEN": self.admin}
        # Its bytecode cached, as pip leaves an installed camgate: the first start writes it
        # and the restarts read it, rather than compiling every module again each time.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = self.children.spawn(self.argv, self.tmp / "relay.log", env=self.env)

    def reap(self) -> float:
        """Wait for the process to exit; the CPU seconds it used in all."""
        _, status, usage = os.wait4(self.process.pid, 0)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        return usage.ru_utime + usage.ru_stime

    async def listening(self) -> float:
        """When the port accepts connections again (polled every 5 ms)."""
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the relay exited with code {self.process.returncode}") from None
                await asyncio.sleep(0.005)
                continue
            at = time.monotonic()
            writer.close()
            return at

    async def register(self, n: int) -> list[str]:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.admin}"},
                                         connector=aiohttp.TCPConnector(limit=16)) as http:
            async def one(camid: int) -> str:
                async with http.post(f"http://127.0.0.1:{self.port}/api/devices", json={"camid": camid}) as r:
                    if r.status != 201:
                        raise RuntimeError(f"the relay refused device {camid}: HTTP {r.status}")
                    return (await r.json())["access_token"]

            return await asyncio.gather(*(one(camid) for camid in range(1, n + 1)))


class Fleet:
    """The tunnel-fleet processes, and what they say as it comes (bench/roles.py --events)."""

    def __init__(self, children: Children, tmp: Path, uplink: str, camera_port: int, tokens: list[str],
                 sources: list[str]) -> None:
        self.n = len(tokens)
        count = min(FLEET_PROCESSES, -(-self.n // DEVICES_PER_ADDRESS))
        self.said: asyncio.Queue[tuple[int, dict | None, float]] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self.processes = []
        for p in range(count):
            args = [sys.executable, str(ROLES), "tunnel-fleet", "--events", "--uplink", uplink,
                    "--forward", f"rtsp:tcp:127.0.0.1:{camera_port}"]
            args += [a for source in sources[p::count] or sources for a in ("--source", source)]
            process = children.spawn(args, tmp / f"fleet-{p}.log", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
            process.stdin.write(json.dumps({"tokens": tokens[p::count]}) + "\n")  # secrets stay out of argv
            process.stdin.flush()
            self.processes.append(process)
            threading.Thread(target=self._read, args=(p, process, loop), daemon=True).start()

    def tunnel(self, process: int, index: int) -> int:
        """The tunnel (its token's index) that process's client ``index`` carries."""
        return index * len(self.processes) + process

    def _read(self, p: int, process: subprocess.Popen, loop: asyncio.AbstractEventLoop) -> None:
        for line in process.stdout:
            with contextlib.suppress(RuntimeError):  # the loop is closed: no one listens
                loop.call_soon_threadsafe(self.said.put_nowait, (p, json.loads(line), time.monotonic()))
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self.said.put_nowait, (p, None, time.monotonic()))

    async def next(self, timeout: float) -> tuple[int, dict, float]:
        """Which process said what, and when it was read."""
        p, said, at = await asyncio.wait_for(self.said.get(), timeout)
        if said is None:
            raise RuntimeError(f"tunnel-fleet process {p} exited with code {self.processes[p].wait()}")
        return p, said, at

    def go(self) -> None:
        for process in self.processes:
            process.stdin.write("go\n")
            process.stdin.flush()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]


async def viewer_echo(port: int) -> bool:
    """One viewer: dial the public port, send the camera an echo request, read it back."""
    with contextlib.suppress(OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(b"E" + PROBE)
                return await reader.readexactly(len(PROBE)) == PROBE
            finally:
                writer.close()
    return False


async def echo_until_back(port: int, deadline: float) -> float | None:
    """When a viewer's echo through ``port`` first comes back; None if not by ``deadline``."""
    while time.monotonic() < deadline:
        if await viewer_echo(port):
            return time.monotonic()
        await asyncio.sleep(0.02)
    return None


async def one_size(n: int, stops, tmp: Path, children: Children, options: Options) -> list[Row]:
    from camgate.uplink.retry import Backoff

    tmp.mkdir(parents=True)
    # Every tunnel's client dials it at once when the viewers come: a short accept queue
    # would drop their SYNs, and each would be retried a second later.
    camera = await CameraServer().start(backlog=4096)
    try:
        relay = Relay(children, tmp, n)
        relay.start()
        await asyncio.wait_for(relay.listening(), 60)
        tokens = await relay.register(n)
        sources = options.sources(n)
        fleet = Fleet(children, tmp, f"127.0.0.1:{relay.port}", camera.port, tokens, sources)
        note(f"{NUMBER}. {n} tunnels: {len(fleet.processes)} client processes, {len(sources)} source addresses")
        for _ in fleet.processes:
            await fleet.next(60)  # {"ready": k}
        started = time.monotonic()
        fleet.go()
        ports: dict[int, int] = {}
        first_failed = 0
        while len(ports) < n:
            p, said, _ = await fleet.next(180)
            if "up" in said:
                ports[fleet.tunnel(p, said["up"])] = said["ports"]["rtsp"]
            first_failed += "failed" in said
        first_up = time.monotonic() - started
        echoed = sum(await asyncio.gather(*(viewer_echo(port) for port in ports.values())))
        if echoed < n:
            raise RuntimeError(f"before the restart only {echoed} of {n} viewer echoes came back")
        addresses, processes = len(sources), len(fleet.processes)
        rows = [Row(NUMBER, f"{n} tunnels ({addresses} source address{'es' * (addresses > 1)}, {processes} client "
                    f"process{'es' * (processes > 1)}): start → all up; failed tries",
                    f"{fmt_seconds(first_up)}; {first_failed}")]
        last: Round | None = None
        for stop in stops:
            done = []
            for number in range(options.rounds):
                if last is not None:
                    # A restart after a quiet spell, as in life: a loss within quiet_after of
                    # the last one counts as one in quick succession, and backs off.
                    wait = last.signalled + Backoff().quiet_after + 0.5 - time.monotonic()
                    note(f"{NUMBER}. waiting {wait:.0f} s: a restart after a quiet spell")
                    await asyncio.sleep(wait)
                last = await restart(relay, fleet, ports, stop, options.profile, number)
                done.append(last)
            rows += rows_of(done, ports)
    finally:
        camera.close()
    return rows


async def restart(relay: Relay, fleet: Fleet, ports: dict[int, int], stop: str, profile: Path | None,
                  number: int) -> Round:
    n = len(ports)
    note(f"{NUMBER}. {n} tunnels: relay stopped with {stop}, started again")
    cpu_before = {f"client {i}": cpu_seconds(pid) for i, pid in enumerate(fleet.pids)}

    def cpu_now() -> dict[str, float]:
        return {"relay": cpu_seconds(relay.process.pid),
                **{f"client {i}": cpu_seconds(pid) - cpu_before[f"client {i}"] for i, pid in enumerate(fleet.pids)}}

    samplers = _profile(profile, {f"client{i}-{stop}-{n}-{number}": pid for i, pid in enumerate(fleet.pids)}
                        | {f"relay-stopping-{stop}-{n}-{number}": relay.process.pid})
    this = Round(stop, n, time.monotonic())
    stopping_cpu = cpu_seconds(relay.process.pid)
    relay.process.send_signal(getattr(signal, stop))
    this.stopping_cpu = await asyncio.to_thread(relay.reap) - stopping_cpu
    this.exited = time.monotonic()
    relay.start()
    samplers += _profile(profile, {f"relay-{stop}-{n}-{number}": relay.process.pid})

    async def listened() -> float:
        at = await relay.listening()
        this.cpu_listening = cpu_now()
        return at

    listening = asyncio.create_task(listened())
    deadline = this.signalled + BACK_WITHIN
    echoes: set[asyncio.Task] = set()

    async def echo(tunnel: int, port: int) -> None:
        at = await echo_until_back(port, deadline)
        if at is not None and tunnel not in this.back:
            this.back[tunnel] = at
            if len(this.back) == n:
                this.all_back.set()

    async def listen() -> None:
        while True:
            p, said, at = await fleet.next(BACK_WITHIN)
            if "up" in said and at > this.exited:  # not up again on the relay that was stopping
                tunnel = fleet.tunnel(p, said["up"])
                this.ports[tunnel] = said["ports"]["rtsp"]
                task = asyncio.create_task(echo(tunnel, this.ports[tunnel]))
                echoes.add(task)
                task.add_done_callback(echoes.discard)
            elif "failed" in said:
                this.failed.append((said.get("at", at), said["failed"]))
            elif "lost" in said:
                this.lost[said["lost"]] += 1

    listener = asyncio.create_task(listen())
    try:
        await asyncio.wait_for(this.all_back.wait(), max(0.0, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        pass
    finally:
        this.cpu = cpu_now()
        this.listening = await listening
        await asyncio.sleep(0.2)  # the last events (failed tries said late)
        listener.cancel()
        for task in [listener, *echoes]:
            task.cancel()
        await asyncio.gather(listener, *echoes, return_exceptions=True)
        for sampler in samplers:
            sampler.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT, not SIGTERM
        for sampler in samplers:
            await asyncio.to_thread(sampler.wait, 30)
    back = this.downtimes()
    note(f"{NUMBER}. {n} tunnels, {stop}: {len(back)} back, max {fmt_seconds(back[-1]) if back else '-'}")
    if len(back) < n:
        raise RuntimeError(f"{stop}: only {len(back)} of {n} tunnels back within {BACK_WITHIN:g} s; "
                           f"failed tries: {dict(Counter(why for _, why in this.failed).most_common(3))}")
    return this


def rows_of(done: list[Round], ports: dict[int, int]) -> list[Row]:
    """Two rows for the rounds of one size and stop (several rounds: each figure their median)."""
    from statistics import median

    first = done[0]
    n, stop = first.n, first.stop
    downs = [r.downtimes() for r in done]
    p50, p99, top = (median(percentile(d, p) for d in downs) for p in (50, 99, 100))
    goal = GOALS.get(n)
    verdict = f"goal max ≤ {goal:g} s: {'met' if top <= goal else 'not met'}" if goal else "—"
    median_of = lambda f: median(f(r) for r in done)  # noqa: E731
    exited = median_of(lambda r: r.exited - r.signalled)
    stopping_cpu = median_of(lambda r: r.stopping_cpu)
    listening = median_of(lambda r: r.listening - r.signalled)
    after_listening = median_of(lambda r: r.downtimes()[-1] - (r.listening - r.signalled))
    kept = min(sum(r.ports.get(t) == port for t, port in ports.items()) for r in done)
    # Failed tries while nothing listened (refused: the clients' cost of the wait), and after.
    while_down = median_of(lambda r: sum(at < r.listening for at, _ in r.failed))
    after = Counter(why for r in done for at, why in r.failed if at >= r.listening)

    def cpu(until: str) -> str:
        """CPU seconds of the relay and of the clients, until it listened or all were back."""
        spent = {k: median_of(lambda r: getattr(r, until)[k]) for k in first.cpu}
        return f"{spent['relay']:.2f} / {sum(v for k, v in spent.items() if k != 'relay'):.2f}"
    runs = f", median of {len(done)}" if len(done) > 1 else ""
    return [
        Row(NUMBER, f"{n} tunnels, relay {stop}, started again: per tunnel, signal → up and a viewer's echo "
            f"through its port back, p50 / p99 / max{runs}",
            f"{fmt_seconds(p50)} / {fmt_seconds(p99)} / {fmt_seconds(top)}", versus=verdict),
        Row(NUMBER, "  relay exited (CPU s meanwhile) / listening after the signal; last tunnel back after it "
            "listened; ports kept; failed tries while it was down / after it listened; CPU s relay / clients "
            "until it listened, and until all were back",
            f"{fmt_seconds(exited)} ({stopping_cpu:.2f}) / {fmt_seconds(listening)}; {fmt_seconds(after_listening)}; "
            f"{kept}/{n}; "
            f"{while_down:g} / {sum(after.values()) / len(done):g}"
            + (f" ({', '.join(_short(reason) for reason, _ in after.most_common(2))})" if after else "")
            + f"; {cpu('cpu_listening')} and {cpu('cpu')}"),
    ]


def _short(reason: str) -> str:
    """A failed try's reason without its address: "relay unreachable: Cannot connect to
    host 127.0.0.1:8443 ssl:default [Connect call failed (...)]" to "relay unreachable:
    Connect call failed"."""
    return re.sub(r"Cannot connect to host \S+ ssl:\S+ \[([^(\]]*).*", r"\1", reason).strip()


def _profile(directory: Path | None, pids: dict[str, int]) -> list[subprocess.Popen]:
    """py-spy sampling each process until terminated, its stacks to ``directory``."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if directory is None or not Path(spy).exists():
        return []
    directory.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--nonblocking",
                              "-o", str(directory / f"{name}.txt")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, pid in pids.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/recovery.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tunnels", default="100,1000", help="comma-separated sizes (default 100,1000)")
    parser.add_argument("--stops", default="SIGTERM,SIGKILL", help="how the relay is stopped, in turn")
    parser.add_argument("--rounds", type=int, default=1, help="restarts per size and stop (figures: medians)")
    parser.add_argument("--profile", type=Path, help="py-spy's stacks of the relay and clients to this directory")
    parser.add_argument("--addresses", type=int, help=f"source addresses (default: one per {DEVICES_PER_ADDRESS} "
                        "tunnels; 1: all behind one NAT)")
    args = parser.parse_args(argv)
    title = start_command("camgate recovery benchmark")
    if title is None:
        return 2
    from camgate import event_loop

    tmp, children = Path(tempfile.mkdtemp(prefix="camgate-recovery-")), Children()
    sizes = tuple(int(s) for s in args.tunnels.split(","))
    try:
        options = Options(args.rounds, args.profile, args.addresses)
        rows = event_loop.run(bench_recovery(sizes, tuple(args.stops.split(",")), tmp, children, options))
    finally:
        children.stop_all()
    print(title)
    print()
    print(format_table(rows))
    print(f"\nLoad average {os.getloadavg()[0]:.2f} at the end.")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
