"""`camgate run`: start every part of the gateway as its own process and keep them up.

Each part is a separate process (as in production, where compose or systemd runs them)
so that the agent's pid is the real process serving the tunnels, and a crash of one
part is contained: the supervisor restarts it after a short pause.
"""

from __future__ import annotations

import ctypes
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from camgate import config
from camgate.core import port_range_text
from camgate.agent.single import AgentAlreadyRunning, hold_agent_lock
from camgate.datadir import write_private_file
from camgate.run_ports import PlannedPort, embedded_relay_port, port_problem
from camgate.uplink.enrollment import ENROLLMENT_SECRET_ENV, ENROLLMENT_SECRET_FILE

log = logging.getLogger("camgate.supervisor")

# Before restarting a part that exited: short, so a crash costs seconds of tunnels at
# most, and longer each time a part dies again soon after its start (a crash loop).
RESTART_PAUSES_S = (0.5, 1.0, 2.0, 5.0, 10.0)
STABLE_AFTER_S = 30.0
STOP_GRACE_S = 10.0


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent_pid: int):
    """A preexec_fn: the child gets SIGTERM when the supervisor dies, even by SIGKILL, so
    no orphan keeps ports and tunnels that the next `camgate run` needs."""

    def arm() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # on top of ours
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    quick_exits: int = 0  # exits in a row, each soon after its start
    restart_at: float | None = None  # while it waits to be started again

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env={**os.environ, **self.env},
                                        preexec_fn=_die_with_parent(os.getpid()))
        self.started_at, self.restart_at = time.monotonic(), None
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def look_after(self, now: float) -> None:
        """Start it again when its pause is over; plan a restart when it has exited. Each
        part on its own clock: two parts dying together both come back after one pause."""
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.start()
            return
        code = self.process.poll()
        if code is None:
            return
        self.quick_exits = self.quick_exits + 1 if now - self.started_at < STABLE_AFTER_S else 0
        pause = RESTART_PAUSES_S[min(self.quick_exits, len(RESTART_PAUSES_S) - 1)]
        log.error("%s exited with code %s; restarting in %.1f s", self.name, code, pause)
        self.restart_at = now + pause


def _embedded_relay_admin_token() -> str:
    """The embedded relay's admin token: from the environment, or made once and kept."""
    configured = config.env_str("CAMGATE_RELAY_ADMIN_TOKEN")
    if configured:
        return configured
    path = config.data_dir() / "relay-admin-token"
    write_private_file(path, secrets.token_hex(20))
    return path.read_text().strip()


def _embedded_relay_enrollment_secret() -> str:
    """Made once into the data directory: only this instance's agent enrolls in its relay."""
    path = config.data_dir() / ENROLLMENT_SECRET_FILE
    write_private_file(path, secrets.token_hex(20))
    return path.read_text().strip()


def _relay_port(port: int) -> int:
    return embedded_relay_port(port, config.env_int("CAMGATE_EMBEDDED_RELAY_PORT", 0))


def planned_ports(host: str, port: int, tunnel_port: int) -> list[PlannedPort]:
    ports = [PlannedPort(host, port, "the web server (--port)")]
    if tunnel_port:
        ports.append(PlannedPort(host, tunnel_port, "the web server's tunnel port (--tunnel-port)"))
    if not config.env_str("CAMGATE_UPLINK_HOST"):
        ports.append(PlannedPort("127.0.0.1", _relay_port(port), "the embedded relay (CAMGATE_EMBEDDED_RELAY_PORT)"))
    return ports


def planned_children(host: str, port: int, tunnel_port: int) -> list[Child]:
    camgate = [sys.executable, "-m", "camgate.cli"]
    web = Child("web", [*camgate, "web", "--host", host, "--port", str(port), "--tunnel-port", str(tunnel_port), "--no-prepare"])
    # The gateway's own tunnel delivers internet users from loopback: to the web server's
    # tunnel port, where no forwarded header is believed, never to its main port.
    agent = Child("agent", [*camgate, "agent", "--no-prepare"], {"CAMGATE_GATEWAY_HTTP_PORT": str(tunnel_port)})
    if not tunnel_port:
        agent.env["CAMGATE_GATEWAY_TUNNEL"] = "false"
    if config.env_str("CAMGATE_UPLINK_HOST"):
        return [web, agent]
    # No cloud configured: a relay on loopback, so camera -> gateway -> relay -> viewer
    # works on this machine alone. It enrolls the devices of whoever shows the secret in
    # this data directory: this instance's agent, not another instance's on the machine.
    relay_port = _relay_port(port)
    relay_address = f"127.0.0.1:{relay_port}"
    enrollment = {ENROLLMENT_SECRET_ENV: _embedded_relay_enrollment_secret()}
    relay = Child(
        "relay",
        [*camgate, "relay", "--host", "127.0.0.1", "--port", str(relay_port), "--open-enrollment", "--port-range", config.env_str("CAMGATE_RELAY_PORT_RANGE") or port_range_text()],
        {"CAMGATE_RELAY_ADMIN_TOKEN": _embedded_relay_admin_token(), **enrollment},
    )
    agent.env.update({
        **enrollment,
        "CAMGATE_UPLINK_HOST": relay_address,
        "CAMGATE_UPLINK_TLS": "false",
        "CAMGATE_PROVISIONING_URL": f"http://{relay_address}",
        "CAMGATE_EMBEDDED_RELAY": "true",
    })
    return [relay, web, agent]


def run_all(host: str, port: int, tunnel_port: int) -> int:
    try:
        # Only a probe: the agent child takes the lock for itself.
        os.close(hold_agent_lock(config.data_dir()))
    except AgentAlreadyRunning as error:
        log.error("camgate run: %s; stop it first", error)
        return 1
    problem = port_problem(planned_ports(host, port, tunnel_port))
    if problem:
        log.error("camgate run: %s", problem)
        return 1
    children = planned_children(host, port, tunnel_port)
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
            child.look_after(time.monotonic())
        time.sleep(0.1)
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
