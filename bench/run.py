#!/usr/bin/env python3
"""camgate's benchmarks, measured in one run and printed as one table.

    python3 bench/run.py            full run (a few minutes on two cores)
    python3 bench/run.py --quick    smaller sizes, for a quick look
    python3 bench/run.py --smoke    every part once at its smallest size, all parts at once:
                                    CI's check that each runs and prints its rows (its
                                    figures mean nothing)
    python3 bench/run.py --only 1,2 some benchmarks only

Each part is a module of bench/ with a ``run(ctx) -> list[Row]`` (see PARTS below).
All traffic stays on 127.0.0.1. The table goes to stdout, progress to stderr. The code
measured is this tree's (``src/``), whatever camgate is installed.
"""

from __future__ import annotations

import argparse
import os
import threading
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # this tree's camgate and bench, first

from bench import add_camera, memory, recovery, relay_scale, throughput, viewers, vxg  # noqa: E402
from bench.common import STARTED, Children, Context, start_command  # noqa: E402
from bench.report import Row, format_table  # noqa: E402


class Part(NamedTuple):
    numbers: tuple[str, ...]  # the benchmark numbers it measures, as in the table's first column
    run: Callable[[Context], list[Row]]


# One line per part, in the order they run. A new part: a module with run(ctx), a line here.
PARTS = (
    Part(("1", "2"), throughput.run),  # throughput and round-trip time of one stream
    Part(("3",), add_camera.run),  # add-camera to the first RTSP answer through the relay
    Part(("4",), recovery.run),  # tunnels' downtime across a relay restart
    Part(("5",), memory.run),  # the agent's memory with 0, 100 and 500 cameras
    Part(("6",), viewers.run),  # CPU seconds per delivered GB of relay and agent, 100 and 200 viewers of 1 MB/s
    Part(("7",), relay_scale.run),  # 2000 idle devices on one relay: RSS per tunnel, connect time, provisioning storm
)


def main(argv: list[str] | None = None) -> int:
    numbers = [n for part in PARTS for n in part.numbers]
    parser = argparse.ArgumentParser(prog="bench/run.py", description="camgate's benchmarks, printed as one table.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a quick look")
    parser.add_argument("--smoke", action="store_true",
                        help="each part once at its smallest size, all at once (CI's check that every part runs)")
    parser.add_argument("--only", default=",".join(numbers), help=f"comma-separated benchmarks to run (default all: {','.join(numbers)})")
    args = parser.parse_args(argv)
    only = frozenset(part.strip() for part in args.only.split(",") if part.strip())
    if not only or not only <= set(numbers):
        parser.error(f"--only takes numbers from {numbers[0]} to {numbers[-1]}, not {args.only!r}")

    ctx = Context(quick=args.quick or args.smoke, tmp=Path(tempfile.mkdtemp(prefix="camgate-bench-")),
                  children=Children(), only=only, smoke=args.smoke)
    title = start_command(f"camgate benchmarks ({ctx.size} run)")
    if title is None:
        return 2
    chosen = [part for part in PARTS if only & set(part.numbers)]
    # Asked before the run: afterwards port 80 may still be held by the VXG path's own relay.
    vxg_note = vxg.unavailable()
    vxg_note = f"not measured: {vxg_note}" if vxg_note else f"{vxg.COMMAND} through its own camgate relay on port {vxg.PORT}"
    results: dict[int, list[Row]] = {}
    try:
        if args.smoke:  # at once: the sizes are tiny, and most of each part is starting processes
            threads = [threading.Thread(target=_run_part, args=(part, ctx, results, i)) for i, part in enumerate(chosen)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:
            for i, part in enumerate(chosen):
                _run_part(part, ctx, results, i)
                ctx.children.stop_all()
    finally:
        ctx.children.stop_all()
    rows = [row for i in sorted(results) for row in results[i]]
    failed = any(row.what == "FAILED" for row in rows)
    elapsed = time.monotonic() - STARTED
    print(title)
    print()
    print(format_table(rows))
    print()
    print(
        "MB = 10^6 bytes, MiB = 2^20 bytes. Baseline of 1, 2 and 6: one asyncio TCP proxy process in\n"
        "place of relay + tunnel client processes; viewers and cameras run in the benchmark process.\n"
        f"VXG column: {vxg_note}.\n"
        f"Load average {os.getloadavg()[0]:.2f} at the end; total run time {elapsed:.0f} s."
    )
    if failed:
        print(f"Logs of the failed run are kept in {ctx.tmp}", file=sys.stderr)
    else:
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    return 1 if failed else 0


def _run_part(part: Part, ctx: Context, results: dict[int, list[Row]], index: int) -> None:
    """Run one part; a failure is reported in the table, and the others go on."""
    try:
        results[index] = part.run(ctx)
    except Exception as exc:
        traceback.print_exc()
        results[index] = [Row(",".join(part.numbers), "FAILED", f"{type(exc).__name__}: {exc}"[:160])]


if __name__ == "__main__":
    sys.exit(main())
