"""The tunnel client's TLS contexts, built once per CA file.

Building one loads the system's CA store and the extra CA file: about 33 ms of blocking
work, which the client used to repeat in the event loop for every provisioning call,
ws-endpoint call and WebSocket connect (so a relay restart with 100 cameras stalled the
agent for seconds). A context is not changed once built and may serve any number of
connections, so every client trusting the same CA file shares one; a CA file replaced
on disk (another size, time or inode) gets a new one at the next use.
"""

from __future__ import annotations

import os
import ssl

_contexts: dict[str | None, tuple[tuple[int, int, int] | None, ssl.SSLContext]] = {}


def client_context(cafile: str | None = None) -> ssl.SSLContext:
    """A verifying client context trusting the system's CAs, and ``cafile``'s if given.

    Raises OSError (or ssl.SSLError) when ``cafile`` cannot be read; nothing is kept then.
    """
    stamp = _stamp(cafile)
    known = _contexts.get(cafile)
    if known is not None and known[0] == stamp:
        return known[1]
    context = ssl.create_default_context()
    if cafile:
        context.load_verify_locations(cafile)
    _contexts[cafile] = (stamp, context)
    return context


def _stamp(cafile: str | None) -> tuple[int, int, int] | None:
    if not cafile:
        return None
    try:
        stat = os.stat(cafile)
    except OSError:
        return None  # load_verify_locations says why
    return stat.st_size, stat.st_mtime_ns, stat.st_ino
