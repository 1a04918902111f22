"""One `camgate run` on loopback with its own data directory, for the chaos run and the
soak: started, stopped and killed as a user would, with its processes found in /proc.

Its embedded relay takes a random port and public port range of its own, so the run
never meets another checkout's gateway on this machine.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.common import free_port_range
from tests.support.processes import camgate_env, free_port, http_json

STARTUP_S = 90.0  # from `camgate run` to API, relay and agent all answering, on a loaded machine
PARTS = ("relay", "web", "agent")  # `camgate run`'s children, by their camgate command


def _proc(pid: int, name: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return b""


def _parent_and_state(pid: int) -> tuple[int, str]:
    fields = _proc(pid, "stat").rsplit(b")", 1)[-1].split()
    return (int(fields[1]), fields[0].decode()) if len(fields) > 1 else (0, "?")


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    fields = _proc(pid, "stat").rsplit(b")", 1)[-1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if len(fields) > 12 else 0.0


# What a request whose server dies under it raises: refused, reset, timed out, or the
# answer cut short (http.client.IncompleteRead, after a status line already came).
NO_ANSWER = (OSError, http.client.HTTPException)


def refused(error: BaseException) -> bool:
    """Whether a request failed before the server had it (so it certainly did nothing)."""
    return isinstance(getattr(error, "reason", error), ConnectionRefusedError)


def left_over(find, grace_s: float) -> dict[int, str]:
    """What ``find()`` (pid: command line) still lists after ``grace_s``; those are then
    killed, by pid (they are this run's), so that the run can go on or end clean."""
    deadline = time.monotonic() + grace_s
    while (left := find()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


class Gateway:
    def __init__(self, tmp: Path, public_ports: int) -> None:
        self.data = tmp / "data"
        self.log = tmp / "camgate-run.log"
        self.port, self.relay_port = free_port(), free_port()
        low, high = free_port_range(public_ports)
        self.env = camgate_env(
            self.data, CAMGATE_EMBEDDED_RELAY_PORT=str(self.relay_port), CAMGATE_RELAY_PORT_RANGE=f"{low}-{high}",
            CAMGATE_SSH_PORT="0",
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.token = ""
        self.refused_starts = 0  # `camgate run` exited at start (e.g. "already running")

    # --- starting and stopping -------------------------------------------------------

    def start(self) -> None:
        """`camgate run`, again until it stays up (as a user retries), and wait until its
        API, relay and agent answer."""
        deadline = time.monotonic() + STARTUP_S
        while True:
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "camgate.cli", "run", "--port", str(self.port)],
                    env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
            while self.process.poll() is None and not self.serving():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"camgate run did not serve within {STARTUP_S:.0f} s (see {self.log})")
                time.sleep(0.1)
            if self.process.poll() is None:
                return
            self.refused_starts += 1
            if time.monotonic() > deadline:
                raise RuntimeError(f"camgate run keeps exiting at start (see {self.log})")
            time.sleep(1)

    def serving(self) -> bool:
        try:
            if not self.token:
                status, body = http_json("POST", self.base + "/api/auth-token/", {"username": "admin", "password": "admin"})
                if status != 200:
                    return False
                self.token = body["token"]
            return (
                self.api("GET", "/api/cameras/")[0] == 200
                and self.relay_admin("GET", "/api/devices")[0] == 200
                and self.child_pid("agent") is not None
                and (self.data / "agent.sock").exists()
            )
        except NO_ANSWER:
            return False

    def kill_supervisor(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()  # reap it: a zombie is not a process left over

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop `camgate run` as a user does (SIGTERM); whether it exited in ``timeout``."""
        if self.process is None or self.process.poll() is not None:
            return True
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill_everything(self) -> None:
        """The last resort at the end of a run: every process of this data directory."""
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    # --- its processes ---------------------------------------------------------------

    def processes(self) -> dict[int, str]:
        """Every live camgate process of this run's data directory (pid: command line),
        whoever its parent: the supervisor, its children, and any left over."""
        marker = f"CAMGATE_DATA_DIR={self.data}".encode()
        found = {}
        for pid in _pids():
            cmdline = _proc(pid, "cmdline")
            if b"camgate" in cmdline and marker in _proc(pid, "environ").split(b"\0"):
                if _parent_and_state(pid)[1] not in ("Z", "X", "?"):
                    found[pid] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
        return found

    def strays(self) -> dict[int, str]:
        """Processes of this data directory outside the running supervisor's tree."""
        everything = self.processes()
        supervisor = self.process.pid if self.process is not None and self.process.poll() is None else None
        ours = set()
        for pid in everything:
            ancestor = pid
            while ancestor > 1 and ancestor != supervisor:
                ancestor = _parent_and_state(ancestor)[0]
            if ancestor == supervisor:
                ours.add(pid)
        return {pid: cmd for pid, cmd in everything.items() if pid not in ours}

    def family(self, pid: int) -> list[int]:
        """``pid`` and its children (the web server's gunicorn master and its workers)."""
        return [pid, *(p for p in _pids() if _parent_and_state(p)[0] == pid)]

    def child_pid(self, part: str) -> int | None:
        """The pid of `camgate run`'s child running ``part`` (relay, web or agent)."""
        if self.process is None or self.process.poll() is not None:
            return None
        for pid in _pids():
            argv = _proc(pid, "cmdline").split(b"\0")
            if argv[1:4] == [b"-m", b"camgate.cli", part.encode()] and _parent_and_state(pid)[0] == self.process.pid:
                return pid
        return None

    # --- its two HTTP APIs -------------------------------------------------------------

    def api(self, method: str, path: str, body=None):
        return http_json(method, self.base + path, body, token=self.token)

    def relay_admin(self, method: str, path: str, body=None):
        admin = (self.data / "relay-admin-token").read_text().strip()
        return http_json(method, f"http://127.0.0.1:{self.relay_port}{path}", body, headers={"Authorization": f"Bearer {admin}"})

    def mint_token(self, camid: int) -> str:
        """An access token for ``camid`` from the embedded relay, as a VMS gets one."""
        status, device = self.relay_admin("POST", "/api/devices", {"camid": camid, "cmngrid": 1})
        if status not in (200, 201):
            raise RuntimeError(f"the relay refused camid {camid}: {status} {device}")
        return device["access_token"]

    def add_stream_camera(self, camid: int, camera_port: int, timeout: float = 60.0) -> int:
        """A camera (RTSP only) whose tunnel leads to ``camera_port``; its public port."""
        status, camera = self.api("POST", "/api/add-camera/", {
            "ip": "127.0.0.1", "rtsp_port": camera_port, "rtsp_only": True, "access_token": self.mint_token(camid),
        })
        if status != 201:
            raise RuntimeError(f"add-camera answered {status}: {camera}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tunnel = self.api("GET", f"/api/camera/{camera['camera_id']}/")[1].get("tunnel") or {}
            for endpoint in tunnel.get("endpoints") or ():
                if tunnel.get("state") == "up" and endpoint["name"] == "rtsp":
                    return endpoint["proxy_port"]
            time.sleep(0.1)
        raise TimeoutError(f"camera {camid}'s tunnel was not up within {timeout:.0f} s")

    def gateway_web_port(self, timeout: float = 60.0) -> int:
        """The relay's public port for the gateway's own tunnel's web forward."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, devices = self.relay_admin("GET", "/api/devices")
            for device in devices if status == 200 else ():
                if device["online"] and device["camid"] >= 1_000_000_000:
                    lookup = self.relay_admin("GET", f"/api/device/{device['camid']}")[1]
                    for forward in lookup.get("forwards", ()):
                        if forward["name"] == "web":
                            return forward["proxy_port"]
            time.sleep(0.2)
        raise TimeoutError(f"the gateway's own tunnel was not up within {timeout:.0f} s")
