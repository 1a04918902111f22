"""The ports `camgate run` listens on, and checking them before any part starts.

A taken port used to surface as a child's traceback, again at every restart, while
the other parts started anyway; now the start stops at once with one line naming the
port and what it was for.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

# The embedded relay's default port is --port + this: 8000 -> 8800. Web and tunnel take
# --port and --port + 1, so instances on --port 8000, 8002, 8004 ... share no port.
EMBEDDED_RELAY_OFFSET = 800


@dataclass(frozen=True)
class PlannedPort:
    host: str
    port: int
    purpose: str  # e.g. "the web server (--port)"


def embedded_relay_port(web_port: int, configured: int | None) -> int:
    return configured if configured else web_port + EMBEDDED_RELAY_OFFSET


def port_problem(ports: list[PlannedPort]) -> str | None:
    """One line saying why these ports cannot all be listened on, or None."""
    seen: dict[int, PlannedPort] = {}
    for planned in ports:
        if planned.port in seen:
            return f"port {planned.port} is planned twice: for {seen[planned.port].purpose} and for {planned.purpose}"
        seen[planned.port] = planned
        error = _bind_error(planned.host, planned.port)
        if error:
            return f"port {planned.port} on {planned.host}, for {planned.purpose}, cannot be used: {error}"
    return None


def _bind_error(host: str, port: int) -> str | None:
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as error:
        return f"{host!r} is not an address of this machine ({error.strerror})"
    try:
        # create_server sets SO_REUSEADDR as the servers do: a port only in TIME_WAIT is free.
        with socket.create_server((host, port), family=family):
            return None
    except OSError as error:
        if error.errno == 98:  # EADDRINUSE
            return "another program (or another camgate run) listens there"
        return error.strerror or str(error)
