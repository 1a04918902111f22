#!/usr/bin/env python3
"""The chaos run: kill -9 camgate's parts under load, and check that nothing is lost.

    python3 bench/chaos.py                 3 rounds (a few minutes)
    python3 bench/chaos.py --quick         1 round, fewer streams: under a minute
    python3 bench/chaos.py --duration 600  rounds again and again for 10 minutes

It starts `camgate run` (embedded relay on loopback), adds cameras through the REST API
(byte-exact stream sources, bench/streams.py), keeps viewers streaming through the
relay's public ports and API writers adding, editing and deleting cameras
(bench/writes.py), and in each round kills the relay, the agent, the web server
(gunicorn's master and workers) and `camgate run` itself with SIGKILL, in a random
order; after the supervisor's kill it starts `camgate run` again, as a user would. It prints two tables (stdout): per kind of
kill, the seconds until every tunnel delivers again and the API answers, the streams
cut and the processes left over; then the totals: streams intact (sha256), camera
rows lost, processes left over at the end. Exit status 1 when anything must-be-zero
is not.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # this tree's camgate and bench, first

from bench.common import conclude, note, start_command  # noqa: E402
from bench.gateway import NO_ANSWER, Gateway, left_over  # noqa: E402
from bench.report import MB, fmt_seconds, format_grid, percentile  # noqa: E402
from bench.streams import (  # noqa: E402
    CHUNK, CORRUPT, CUT, INTACT, STALLED, PacedCamera, Tally, keep_viewing, stop_viewers, view,
)
from bench.writes import Verdict, Writers  # noqa: E402

KINDS = ("relay", "agent", "web", "supervisor")  # web: gunicorn's master and workers
RECOVERY_S = 120.0  # a kill not recovered from within this is reported as "not back"
LEFTOVER_GRACE_S = 15.0  # what still runs this long after a kill (or the final stop) is left over
FIRST_CAMID = 7001  # the stream cameras'
WRITER_CAMIDS = 8001  # and the writers'


@dataclass(frozen=True)
class Sizes:
    cameras: int
    viewers: int  # per camera
    rate: int  # bytes per second per stream
    stream_bytes: int  # a viewer asks for this much, then for a new stream
    rounds: int
    calm_s: float  # undisturbed streaming between a recovery and the next kill
    pool: int  # cameras the writers keep


FULL = Sizes(cameras=4, viewers=2, rate=1_000_000, stream_bytes=6_000_000, rounds=3, calm_s=5.0, pool=10)
QUICK = Sizes(cameras=2, viewers=1, rate=1_000_000, stream_bytes=2_000_000, rounds=1, calm_s=1.0, pool=4)


@dataclass
class Recovery:
    kind: str
    tunnels_s: float | None  # until every camera tunnel and the gateway's own delivered again
    api_s: float | None  # until GET /api/cameras/ answered 200
    cut: int  # viewer streams cut
    left_over: dict[int, str]  # processes still running LEFTOVER_GRACE_S after the kill
    gone_s: float | None = None  # supervisor kills: until all its processes had exited


async def _until(predicate, timeout: float, pause: float = 0.1) -> bool:
    """Await ``predicate()`` (a blocking call, run in a thread) until true or timeout."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(pause)
    return True


class Chaos:
    def __init__(self, sizes: Sizes, tmp: Path) -> None:
        self.sizes = sizes
        self.gateway = Gateway(tmp, public_ports=4 * (sizes.cameras + sizes.pool) + 40)
        self.camera = PacedCamera()
        self.viewers, self.probes = Tally(), Tally()
        self.seeds = itertools.count(1)
        self.ports: list[int] = []  # the stream cameras' public RTSP ports
        self.camera_ids: set[int] = set()
        self.web_port = 0  # the gateway's own tunnel's public web port
        self.recoveries: list[Recovery] = []
        self.writers: Writers | None = None
        # What the end of the run found:
        self.rounds_done = 0
        self.verdict = Verdict()
        self.stopped_in_time = False
        self.end_left_over: dict[int, str] = {}

    async def run(self, rounds: int, duration_s: float | None) -> None:
        gw = self.gateway
        await self.camera.start()
        note("starting camgate run")
        await asyncio.to_thread(gw.start)
        for i in range(self.sizes.cameras):
            self.ports.append(await asyncio.to_thread(gw.add_stream_camera, FIRST_CAMID + i, self.camera.port))
        self.camera_ids = {c["camera_id"] for c in gw.api("GET", "/api/cameras/")[1]}
        self.web_port = await asyncio.to_thread(gw.gateway_web_port)
        viewers = [
            asyncio.create_task(keep_viewing(port, self.camera, self.seeds, self.sizes.stream_bytes, self.sizes.rate, self.viewers))
            for port in self.ports for _ in range(self.sizes.viewers)
        ]
        tokens = [await asyncio.to_thread(gw.mint_token, WRITER_CAMIDS + i) for i in range(3 * self.sizes.pool)]
        self.writers = Writers(gw.api, self.sizes.pool, tokens)
        self.writers.start()
        try:
            chaos_started = time.monotonic()
            while self.rounds_done < rounds or (duration_s and time.monotonic() - chaos_started < duration_s):
                for kind in random.sample(KINDS, len(KINDS)):
                    await asyncio.sleep(self.sizes.calm_s * random.uniform(1, 2))
                    note(f"round {self.rounds_done + 1}: kill -9 {kind}")
                    self.recoveries.append(await self._kill(kind))
                    last = self.recoveries[-1]
                    note(f"  back: tunnels {last.tunnels_s}, API {last.api_s}, cut {last.cut}, left over {len(last.left_over)}")
                self.rounds_done += 1
            await asyncio.sleep(self.sizes.calm_s)
        finally:
            await asyncio.to_thread(self.writers.stop)
            await stop_viewers(viewers)
        status, rows = await asyncio.to_thread(gw.api, "GET", "/api/cameras/")
        if status != 200:
            raise RuntimeError(f"the camera list answered {status} at the end")
        self.verdict = self.writers.ledger.check(rows, self.camera_ids)
        note("stopping camgate run (SIGTERM)")
        self.stopped_in_time = await asyncio.to_thread(gw.stop)
        self.end_left_over = await self._left_over(gw.processes)

    async def _left_over(self, find) -> dict[int, str]:
        return await asyncio.to_thread(left_over, find, LEFTOVER_GRACE_S)

    async def _kill(self, kind: str) -> Recovery:
        gw = self.gateway
        cut_before = self.viewers.outcomes[CUT]
        killed_at = time.monotonic()
        gone_s = None
        if kind == "supervisor":
            gw.kill_supervisor()
            left = await self._left_over(gw.processes)
            if not left:
                gone_s = time.monotonic() - killed_at
            await asyncio.to_thread(gw.start)  # as a user would
        else:
            pid = gw.child_pid(kind)
            if pid is None:
                raise RuntimeError(f"camgate run has no {kind} child to kill")
            # The web server is gunicorn's master and its workers: all of them, so that
            # writes die in the middle, as in a crash (killed alone, the master leaves
            # its workers serving for a moment, and they exit on their own).
            for member in gw.family(pid) if kind == "web" else [pid]:
                os.kill(member, signal.SIGKILL)
            left = {}
        tunnels, api = await asyncio.gather(self._tunnels_back(killed_at), self._api_back(killed_at))
        left.update(await self._left_over(gw.strays))
        return Recovery(kind, tunnels, api, self.viewers.outcomes[CUT] - cut_before, left, gone_s)

    async def _tunnels_back(self, since: float) -> float | None:
        async def camera_back(port: int) -> None:
            while await view(port, self.camera, next(self.seeds), CHUNK, 0, self.probes) != INTACT:
                await asyncio.sleep(0.05)

        async def gateway_back() -> None:
            while True:
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.web_port)
                    writer.write(b"GET /healthz HTTP/1.0\r\nHost: gateway\r\n\r\n")
                    answered = (await asyncio.wait_for(reader.read(64), 10)).startswith(b"HTTP/1.")
                    writer.close()
                    if answered:
                        return
                except (OSError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.05)

        try:
            await asyncio.wait_for(asyncio.gather(*map(camera_back, self.ports), gateway_back()), RECOVERY_S)
        except asyncio.TimeoutError:
            return None
        return time.monotonic() - since

    async def _api_back(self, since: float) -> float | None:
        def answers() -> bool:
            try:
                return self.gateway.api("GET", "/api/cameras/")[0] == 200
            except NO_ANSWER:
                return False

        return time.monotonic() - since if await _until(answers, RECOVERY_S, 0.05) else None

    # --- the tables ----------------------------------------------------------------

    def failures(self) -> list[str]:
        v, t = self.verdict, self.viewers
        problems = {
            "camera rows lost": v.rows_lost, "rows no write explains": len(v.strangers),
            "edits answered 404 on a live camera": len(v.wrong_404s),
            "corrupt streams": t.outcomes[CORRUPT] + self.probes.outcomes[CORRUPT], "stalled streams": t.outcomes[STALLED],
            "kills not recovered from": sum(r.tunnels_s is None or r.api_s is None for r in self.recoveries),
            "processes left over": sum(len(r.left_over) for r in self.recoveries) + len(self.end_left_over),
            "writer threads that died": len(self.writers.failures),
        }
        return [f"{name}: {count}" for name, count in problems.items() if count]

    def tables(self) -> str:
        kinds = []
        for kind in KINDS:
            done = [r for r in self.recoveries if r.kind == kind]
            if not done:
                continue
            left = sum(len(r.left_over) for r in done)
            if kind == "supervisor":
                gone = [r.gone_s for r in done if r.gone_s is not None]
                left_cell = f"{left}" + (f" (all exited within {fmt_seconds(max(gone))})" if gone else "")
            else:
                left_cell = str(left)
            kinds.append([kind, str(len(done)), _p50_max([r.tunnels_s for r in done]), _p50_max([r.api_s for r in done]),
                          str(sum(r.cut for r in done)), left_cell])
        v, t, p = self.verdict, self.viewers, self.probes
        whole = t.outcomes[INTACT] + t.outcomes[CORRUPT]
        probe_whole = p.outcomes[INTACT] + p.outcomes[CORRUPT]
        totals = [
            ["viewer streams received whole: sha256 equal to what the camera sent",
             f"{t.outcomes[INTACT]}/{whole} (and {p.outcomes[INTACT]}/{probe_whole} probe streams)", "all"],
            ["viewer streams cut by a kill, then reconnected (bytes before the cut intact)",
             f"{t.outcomes[CUT]} ({t.cut_prefix_intact}/{t.outcomes[CUT]})", "—"],
            ["viewer streams stalled (no byte for 20 s, never closed)", str(t.outcomes[STALLED]), "0"],
            ["bytes received by viewers", f"{t.bytes / MB:.0f} MB", "—"],
            ["API writes during the run", self.writers.summary(), "—"],
            ["camera rows lost (acknowledged add missing / edit lost / delete undone)",
             f"{v.rows_lost} ({len(v.adds_missing)} / {len(v.edits_lost)} / {len(v.deletes_back)})", "0"],
            ["rows no write explains; edits answered 404 on a live camera",
             f"{len(v.strangers)}; {len(v.wrong_404s)}", "0; 0"],
            ["other API answers", ", ".join(f"{k}: {n}" for k, n in self.writers.unexpected_answers().items()) or "none", "—"],
            ["`camgate run` exited at start when run again", str(self.gateway.refused_starts), "—"],
            [f"processes left over after the supervisor kills ({LEFTOVER_GRACE_S:.0f} s after each)",
             str(sum(len(r.left_over) for r in self.recoveries if r.kind == "supervisor")), "0"],
            [f"processes left over at the end (SIGTERM to camgate run, {LEFTOVER_GRACE_S:.0f} s)",
             str(len(self.end_left_over)) + ("" if self.stopped_in_time else "; camgate run did not exit in 30 s"), "0"],
        ]
        return "\n\n".join([
            format_grid(("kill -9 of", "kills", "every tunnel back, p50 / max", "API back, p50 / max",
                         "viewer streams cut", "processes left over"), kinds),
            format_grid(("measurement", "result", "must be"), totals),
        ])

    def details(self) -> list[str]:
        v = self.verdict
        lines = [*v.adds_missing, *v.edits_lost, *v.deletes_back, *v.strangers, *v.wrong_404s]
        lines += self.viewers.notes + self.probes.notes + self.writers.failures
        lines += [f"left over after the {r.kind} kill: pid {pid} {cmd}" for r in self.recoveries for pid, cmd in r.left_over.items()]
        lines += [f"left over at the end: pid {pid} {cmd}" for pid, cmd in self.end_left_over.items()]
        return lines


def _p50_max(values: list[float | None]) -> str:
    back = [v for v in values if v is not None]
    text = f"{fmt_seconds(percentile(back, 50))} / {fmt_seconds(max(back))}" if back else "—"
    missing = len(values) - len(back)
    return text + (f"; {missing} not back in {RECOVERY_S:.0f} s" if missing else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/chaos.py", description="kill -9 camgate's parts under load; print what survived")
    parser.add_argument("--quick", action="store_true", help="one round, fewer streams: under a minute")
    parser.add_argument("--rounds", type=int, help="rounds of four kills (default 3, --quick 1)")
    parser.add_argument("--duration", type=float, help="go on with more rounds until this many seconds of chaos have passed")
    parser.add_argument("--cameras", type=int, help="stream cameras (default 4, --quick 2)")
    parser.add_argument("--viewers", type=int, help="viewers per camera (default 2, --quick 1)")
    parser.add_argument("--calm", type=float, help="seconds of undisturbed streaming before each kill, at least "
                        "(default 5, --quick 1; a tunnel up for under 30 s reconnects with a longer backoff)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the data directory and logs")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    chosen = {"rounds": args.rounds, "cameras": args.cameras, "viewers": args.viewers, "calm_s": args.calm}
    sizes = replace(sizes, **{k: v for k, v in chosen.items() if v is not None})
    if min(sizes.rounds, sizes.cameras, sizes.viewers) < 1 or sizes.calm_s < 0:
        parser.error("--rounds, --cameras and --viewers must be at least 1, --calm not negative")
    title = start_command(f"camgate chaos run ({'quick' if args.quick else 'full'})")
    if title is None:
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="camgate-chaos-"))
    chaos = Chaos(sizes, tmp)
    try:
        asyncio.run(chaos.run(sizes.rounds, args.duration))
    except BaseException:
        print(f"The run failed; its logs are in {tmp}", file=sys.stderr)
        raise
    finally:
        chaos.gateway.kill_everything()  # nothing of this run outlives it, whatever happened
    print(title)
    print(f"{sizes.cameras} cameras × {sizes.viewers} viewers at {sizes.rate / MB:g} MB/s, streams of "
          f"{sizes.stream_bytes / MB:g} MB; {chaos.rounds_done} rounds, each kills relay, agent, web and "
          f"camgate run once (random order); writers: adds/deletes on {sizes.pool} cameras, edits of 3 fields")
    print()
    print(chaos.tables())
    print()
    return conclude(chaos.failures(), "Nothing lost.", chaos.details(), tmp, keep=args.keep_logs)


if __name__ == "__main__":
    sys.exit(main())
