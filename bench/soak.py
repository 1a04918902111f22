#!/usr/bin/env python3
"""The soak: many streams through `camgate run` for a long while, and the memory of the
relay and the agent meanwhile.

    python3 bench/soak.py                          100 streams for 10 minutes
    python3 bench/soak.py --streams 20 --minutes 2

It starts `camgate run` (embedded relay on loopback), adds one camera (a byte-exact
stream source, bench/streams.py) per two viewers through the REST API, and keeps every
viewer streaming through the relay's public port at about 1 MB/s, one stream after
another (each checked whole against the camera's sha256). Every 10 s it samples the
resident memory (VmRSS) of the relay and the agent. It prints (stdout) their RSS after
the warm-up, at the end and at the peak, the growth (goal: under 5%), their CPU, and the
bytes delivered and viewer errors. Exit status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # this tree's camgate and bench, first

from bench.common import conclude, note, start_command, vm_kib  # noqa: E402
from bench.gateway import Gateway, cpu_seconds, left_over  # noqa: E402
from bench.report import MB, MIB, format_grid  # noqa: E402
from bench.streams import CORRUPT, CUT, INTACT, NO_STREAM, STALLED, PacedCamera, Tally, keep_viewing, stop_viewers  # noqa: E402

WATCHED = ("relay", "agent")
GROWTH_GOAL = 0.05
FIRST_CAMID = 9001


async def soak(args: argparse.Namespace, tmp: Path) -> dict:
    cameras = math.ceil(args.streams / args.viewers_per_camera)
    gateway = Gateway(tmp, public_ports=cameras + 40)
    camera = await PacedCamera().start()
    note("starting camgate run")
    await asyncio.to_thread(gateway.start)
    try:
        note(f"adding {cameras} cameras")
        ports = [await asyncio.to_thread(gateway.add_stream_camera, FIRST_CAMID + i, camera.port) for i in range(cameras)]
        pids = {name: gateway.child_pid(name) for name in WATCHED}
        tally, seeds = Tally(), itertools.count(1)
        rate = int(args.rate * MB)
        viewers = [
            asyncio.create_task(keep_viewing(ports[i % cameras], camera, seeds, rate * args.stream_seconds, rate, tally))
            for i in range(args.streams)
        ]
        duration = args.minutes * 60
        warmup = min(30.0, duration / 10)
        note(f"{args.streams} streams running; {warmup:.0f} s of warm-up, then {duration - warmup:.0f} s of samples")
        await asyncio.sleep(warmup)
        bytes_before, cpu_before, started = tally.bytes, {n: cpu_seconds(p) for n, p in pids.items()}, time.monotonic()
        samples: dict[str, list[int]] = {name: [] for name in WATCHED}
        anon: dict[str, list[int]] = {name: [] for name in WATCHED}
        sampled_at: list[float] = []
        while True:
            for name, pid in pids.items():
                samples[name].append(vm_kib(pid, "VmRSS") * 1024)
                anon[name].append(vm_kib(pid, "RssAnon") * 1024)
            sampled_at.append(time.monotonic())
            elapsed = time.monotonic() - started
            if elapsed >= duration - warmup:
                break
            note(f"{elapsed:.0f} s: RSS " + ", ".join(f"{n} {s[-1] / MIB:.1f} MiB" for n, s in samples.items())
                 + f"; {(tally.bytes - bytes_before) / MB / max(elapsed, 1):.1f} MB/s")
            await asyncio.sleep(min(args.interval, duration - warmup - elapsed))
        seconds = time.monotonic() - started
        cpu = {n: (cpu_seconds(p) - cpu_before[n]) / seconds for n, p in pids.items()}
        delivered = tally.bytes - bytes_before
        restarted = [name for name, pid in pids.items() if gateway.child_pid(name) != pid]
        await stop_viewers(viewers)
    finally:
        camera.close()
        stopped = await asyncio.to_thread(gateway.stop)
        left = await asyncio.to_thread(left_over, gateway.processes, 15.0)
        gateway.kill_everything()
    return {
        "cameras": cameras, "samples": samples, "anon": anon, "cpu": cpu,
        "longest_gap": max((b - a for a, b in zip(sampled_at, sampled_at[1:])), default=0.0), "seconds": seconds, "delivered": delivered,
        "tally": tally, "restarted": restarted, "left": left, "stopped": stopped, "rate": rate,
    }


def tables(args: argparse.Namespace, result: dict) -> tuple[str, list[str]]:
    samples, tally = result["samples"], result["tally"]
    growth = {n: (s[-1] - s[0]) / s[0] for n, s in samples.items()}
    anon_growth = {n: (s[-1] - s[0]) / s[0] for n, s in result["anon"].items()}
    missed = [f"{n} RSS grew {g:+.1%}" for n, g in growth.items() if g >= GROWTH_GOAL]
    memory = [
        ["RSS after the warm-up", *(f"{samples[n][0] / MIB:.1f} MiB" for n in WATCHED), "—"],
        ["RSS at the end", *(f"{samples[n][-1] / MIB:.1f} MiB" for n in WATCHED), "—"],
        [f"RSS peak (sampled every {args.interval:g} s)", *(f"{max(samples[n]) / MIB:.1f} MiB" for n in WATCHED), "—"],
        ["RSS growth, end against start", *(f"{growth[n]:+.1%}" for n in WATCHED), f"< {GROWTH_GOAL:.0%}"],
        ["RssAnon growth (heap only: RSS also counts file pages the kernel may drop)", *(f"{anon_growth[n]:+.1%}" for n in WATCHED), "—"],
        ["CPU, share of one core", *(f"{result['cpu'][n]:.0%}" for n in WATCHED), "—"],
    ]
    o = tally.outcomes
    whole = o[INTACT] + o[CORRUPT]
    errors = o[CUT] + o[STALLED] + o[NO_STREAM] + o[CORRUPT]
    target = args.streams * result["rate"] / MB
    if errors:
        missed.append(f"{errors} viewer errors")
    if result["restarted"]:
        missed.append("restarted: " + ", ".join(result["restarted"]))
    if result["left"] or not result["stopped"]:
        missed.append(f"{len(result['left'])} processes left over")
    traffic = [
        ["bytes delivered to viewers while sampling",
         f"{result['delivered'] / MB:.0f} MB in {result['seconds']:.0f} s = {result['delivered'] / MB / result['seconds']:.1f} MB/s "
         f"(asked for {target:g} MB/s)", "—"],
        ["streams received whole, sha256 equal to what the camera sent", f"{o[INTACT]}/{whole}", "all"],
        ["viewer errors: cut / stalled / could not start / corrupt",
         f"{o[CUT]} / {o[STALLED]} / {o[NO_STREAM]} / {o[CORRUPT]}", "0"],
        ["relay or agent restarted during the soak", ", ".join(result["restarted"]) or "no", "no"],
        ["longest gap between two samples (a machine that stalls everything shows here)",
         f"{result['longest_gap']:.0f} s", f"{args.interval:g} s"],
        ["processes left over after camgate run stopped (SIGTERM, 15 s)",
         str(len(result["left"])) + ("" if result["stopped"] else "; camgate run did not exit in 30 s"), "0"],
    ]
    series = [f"{n} RSS (MiB): " + " ".join(f"{v / MIB:.1f}" for v in samples[n]) for n in WATCHED]
    text = "\n\n".join([
        format_grid(("measurement", "relay", "agent", "goal"), memory),
        format_grid(("measurement", "result", "goal"), traffic),
    ])
    return text + "\n\n" + "\n".join(series + tally.notes), missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/soak.py", description="many streams for a long while; relay and agent memory")
    parser.add_argument("--streams", type=int, default=100, help="viewers streaming at once (default 100)")
    parser.add_argument("--viewers-per-camera", type=int, default=2, help="(default 2)")
    parser.add_argument("--rate", type=float, default=1.0, help="MB/s per stream (default 1)")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--stream-seconds", type=int, default=30, help="a viewer's stream lasts this long, then it asks for another")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between RSS samples (default 10)")
    args = parser.parse_args(argv)
    if args.streams < 1 or args.viewers_per_camera < 1 or args.rate <= 0 or args.minutes <= 0:
        parser.error("--streams, --viewers-per-camera, --rate and --minutes must be positive")
    title = start_command("camgate soak")
    if title is None:
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="camgate-soak-"))
    try:
        result = asyncio.run(soak(args, tmp))
    except BaseException:
        print(f"The soak failed; its logs are in {tmp}", file=sys.stderr)
        raise
    text, missed = tables(args, result)
    print(title)
    print(f"{args.streams} streams ({result['cameras']} cameras × {args.viewers_per_camera} viewers) at {args.rate:g} MB/s, "
          f"{args.minutes:g} minutes, through camgate run's embedded relay")
    print()
    print(text)
    print()
    return conclude(missed, "Every goal met.", [], tmp)


if __name__ == "__main__":
    sys.exit(main())
