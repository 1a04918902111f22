"""One agent per data directory.

Two agents on one data directory fight over every tunnel (each takes it over from the
other at the relay, over and over) and over the control socket. The first agent holds
an exclusive lock on a file in the data directory for as long as it runs; the kernel
releases it when the process dies, however it dies, so a crash never leaves it stale.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "agent.lock"


class AgentAlreadyRunning(RuntimeError):
    pass


def hold_agent_lock(data_dir: Path) -> int:
    """Take the lock and return its file descriptor (keep it open for the agent's whole
    life), or raise AgentAlreadyRunning naming the process that holds it."""
    path = data_dir / LOCK_NAME
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(descriptor, 32).decode(errors="replace").strip() or "unknown"
        os.close(descriptor)
        raise AgentAlreadyRunning(
            f"another camgate agent (pid {holder}) is already running for the data directory {data_dir}"
        ) from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    return descriptor
