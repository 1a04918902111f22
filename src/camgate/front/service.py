"""`camgate web`: the front on the public port and the tunnel's port, gunicorn behind it.

One process to the outside (its pid is what compose, systemd and `camgate run` stop),
two inside: this one runs the front, and its child runs gunicorn on a Unix socket in a
private temporary directory (mode 0700), so nothing but the front can reach the app and
its PROXY lines and tunnel marks can be believed. The child dies with us (see
camgate.appserver); if it exits, we exit, and whoever started us starts both again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

from camgate import config
from camgate.front.server import Front, FrontLimits, Listener

log = logging.getLogger("camgate.web")

APP_START_TIMEOUT_S = 120.0  # importing Django on a Raspberry Pi takes a while
STOP_GRACE_S = 9.0  # gunicorn's own graceful timeout is 8 s
FDS_PER_CLIENT = 2  # the client's socket, and the app's while it answers
FDS_RESERVED = 64  # logs, the listeners, the database, what Python opens itself
MAX_CLIENTS = 4096
# The relay holds at most 256 connections per tunnel (the uplink protocol's limit) and
# turns viewers away past that. Slow clients held here hold a slot there too, so on the
# tunnel's port the front keeps no more than half that many: past it, the one that has
# waited longest for its request is let go, and the relay has room for a normal one.
TUNNEL_MAX_CLIENTS = 128


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one (often 1024 against 524288):
    every client held costs a descriptor. Returns the limit in effect."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def max_clients_for(open_files: int) -> int:
    return max(16, min(MAX_CLIENTS, (open_files - FDS_RESERVED) // FDS_PER_CLIENT))


def run_web(host: str, port: int, tunnel_port: int | None, workers: int) -> int:
    """Serve until SIGTERM or SIGINT; the exit code for `camgate web`."""
    stop = _StopRequest()
    limits = FrontLimits(max_body_bytes=config.max_body_bytes(), max_clients=max_clients_for(raise_open_files_limit()))
    listeners = [Listener(host, port)]
    if tunnel_port:
        listeners.append(Listener(host, tunnel_port, from_tunnel=True, max_clients=TUNNEL_MAX_CLIENTS))
    with tempfile.TemporaryDirectory(prefix="camgate-web-") as private:
        app_socket = os.path.join(private, "app.sock")
        app = subprocess.Popen([
            sys.executable, "-m", "camgate.appserver",
            "--bind", f"unix:{app_socket}", "--workers", str(workers), "--parent", str(os.getpid()),
        ])
        try:
            if not _wait_for_app(app, app_socket, stop):
                return 0 if stop.requested else 1
            return asyncio.run(_serve(Front(app_socket, limits), listeners, app, stop))
        finally:
            _stop_app(app)


class _StopRequest:
    """SIGTERM/SIGINT before the event loop runs: remember it, stop starting."""

    def __init__(self) -> None:
        self.requested = False
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._request)

    def _request(self, _signum, _frame) -> None:
        self.requested = True


def _wait_for_app(app: subprocess.Popen, path: str, stop: _StopRequest) -> bool:
    """Wait until gunicorn accepts on its socket: the front opens its ports only then,
    so a client that reaches them is answered by the app, not with a 502."""
    deadline = time.monotonic() + APP_START_TIMEOUT_S
    while not stop.requested and app.poll() is None and time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(path)
                return True
            except OSError:
                time.sleep(0.1)
    if not stop.requested:
        log.error("the app server did not start (exit code %s)", app.poll())
    return False


async def _serve(front: Front, listeners: list[Listener], app: subprocess.Popen, stop: _StopRequest) -> int:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stopping.set)
    if stop.requested:
        return 0
    for listener in listeners:
        try:
            await front.listen(listener)
        except OSError as error:
            log.error("cannot listen on %s port %d: %s", listener.host, listener.port, error.strerror or error)
            return 1
    main, *tunnel = listeners
    log.info("web server on http://%s:%d/%s", main.host, main.port,
             f"; the gateway tunnel's requests on port {tunnel[0].port}" if tunnel else "")
    tasks = [asyncio.create_task(front.report()), asyncio.create_task(_watch(app, stopping))]
    await stopping.wait()
    app_died = app.poll() is not None
    if app_died:
        log.error("the app server exited with code %s; stopping", app.returncode)
    else:
        app.terminate()  # gunicorn finishes the requests it has, as the front does
    await front.close(STOP_GRACE_S)
    for task in tasks:
        task.cancel()
    return 1 if app_died else 0


async def _watch(app: subprocess.Popen, stopping: asyncio.Event) -> None:
    while app.poll() is None:
        await asyncio.sleep(0.5)
    stopping.set()


def _stop_app(app: subprocess.Popen) -> None:
    if app.poll() is None:
        app.terminate()
    try:
        app.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        log.warning("the app server did not stop in time; killing it")
        app.kill()
        app.wait()
