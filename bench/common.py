"""What every benchmark command shares: running this tree's code, progress lines, free
ports, and the child processes a benchmark starts (stopped by their own pid at the end).

The commands (`bench/run.py`, `bench/chaos.py`, `bench/soak.py`) put this tree's
``src/`` and root first on ``sys.path`` themselves, before importing this module.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import resource
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import bindable

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
ROLES = ROOT / "bench" / "roles.py"
STARTED = time.monotonic()


def run_this_tree() -> str | None:
    """Make this process and its children (camgate's commands, the roles) run this
    tree's ``src/``; the reason it cannot, or None. Also raises the open-file limit,
    since some benchmarks hold thousands of sockets."""
    os.environ["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
    import camgate

    if not Path(camgate.__file__).resolve().is_relative_to(SRC):
        return f"camgate is imported from {camgate.__file__}, not from this tree"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 8192:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, hard), hard))
    return None


def start_command(what: str) -> str | None:
    """Ready a benchmark command: this tree's code (see run_this_tree), camgate's own
    logging quiet in this process. The table's first line, or None (the reason said on
    stderr) when it cannot run."""
    problem = run_this_tree()
    if problem:
        print(problem, file=sys.stderr)
        return None
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    return machine_line(what)


def conclude(problems: list[str], success: str, details: list[str], tmp: Path, keep: bool = False) -> int:
    """The last lines of a long run's output, its logs kept when anything failed; the
    exit status."""
    print(f"Load average {os.getloadavg()[0]:.2f} at the end; total run time {time.monotonic() - STARTED:.0f} s. "
          + (success if not problems else "FAILED: " + "; ".join(problems)))
    for line in details:
        print("  " + line)
    if problems or keep:
        print(f"Logs kept in {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if problems else 0


def machine_line(what: str) -> str:
    """The first line of a printed table: what ran, on which commit, machine and load."""
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()
    return (
        f"{what} at {commit or 'unknown commit'}; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} at start"
    )


def note(message: str) -> None:
    """A progress line on stderr (stdout is the table's)."""
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def vm_kib(pid: int, field: str) -> int:
    """A memory figure of a process from /proc (VmRSS: resident now, VmHWM: its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def free_port_range(size: int) -> tuple[int, int]:
    """``size`` consecutive free ports below the ephemeral range, away from camgate's
    default 20000-29999 (other checkouts on this machine may run relays there)."""
    for _ in range(100):
        low = random.randrange(10000, 19999 - size)
        if all(bindable(p) for p in range(low, low + size)):
            return low, low + size - 1
    raise RuntimeError(f"no {size} consecutive free ports found")


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
    """One of bench/roles.py's processes, and the JSON line it says once ready."""
    process = children.spawn(
        [sys.executable, str(ROLES), role, *args], tmp / f"{role}.log",
        env={**os.environ, **(env_extra or {})}, stdout=subprocess.PIPE, text=True,
    )
    return process, first_json_line(process, 30)


@dataclass(frozen=True)
class Context:
    """What `bench/run.py` hands each part: the sizes to use, a scratch directory (kept
    when a part fails), the children to stop after it, and the part numbers asked for.

    ``smoke`` (CI's run: every part once, at the smallest size that still measures
    something) implies ``quick``; a part without smoke sizes uses its quick ones."""

    quick: bool
    tmp: Path
    children: Children
    only: frozenset[str]
    smoke: bool = False

    @property
    def size(self) -> str:
        return "smoke" if self.smoke else "quick" if self.quick else "full"
