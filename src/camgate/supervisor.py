"""`camgate run`: start every part of the gateway as its own process and keep them up.

Each part is a separate process (as in production, where compose or systemd runs them)
so that the agent's pid is the real process serving the tunnels, and a crash of one
part is contained: the supervisor restarts it after a short pause.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

log = logging.getLogger("camgate.supervisor")

RESTART_PAUSE_S = 2.0
STOP_GRACE_S = 10.0


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    started_at: float = field(default=0.0)

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv)
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.process.pid)


def planned_children(host: str, port: int) -> list[Child]:
    camgate = [sys.executable, "-m", "camgate.cli"]
    return [
        Child("web", [*camgate, "web", "--host", host, "--port", str(port), "--no-prepare"]),
    ]


def run_all(host: str, port: int) -> int:
    children = planned_children(host, port)
    stopping = False

    def request_stop(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    for child in children:
        child.start()
    while not stopping:
        for child in children:
            code = child.process.poll()
            if code is None or stopping:
                continue
            log.error("%s exited with code %s; restarting in %.0f s", child.name, code, RESTART_PAUSE_S)
            time.sleep(RESTART_PAUSE_S)
            if not stopping:
                child.start()
        time.sleep(0.2)
    _stop(children)
    return 0


def _stop(children: list[Child]) -> None:
    for child in children:
        if child.process and child.process.poll() is None:
            child.process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        if not child.process:
            continue
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", child.name)
            child.process.kill()
            child.process.wait()
