"""onvif-zeep-async, imported once with what camgate needs of it fixed around it.

- Its client module calls ``logging.basicConfig`` when imported; the process's logging
  is the gateway's, so it is put back as it was.
- It reads every answer whole (``aiohttp.ClientResponse.read``), however large, and the
  device answering is a peer on the LAN: its sessions are given a response class that
  stops at MAX_RESPONSE_BYTES. The library makes its own sessions, so the name it calls
  them by is pointed at a ``ClientSession`` with that class (aiohttp's public
  ``response_class``).
- A read cut short by its timeout can leave a session the library made but had not yet
  registered (while it loads a WSDL, say), which nothing would close: every session made
  inside ``sessions_closed_after()`` is closed when it ends.
"""

from __future__ import annotations

import functools
import logging
from contextlib import asynccontextmanager, suppress
from contextvars import ContextVar

import aiohttp

MAX_RESPONSE_BYTES = 1024 * 1024  # a camera's largest ONVIF answer (GetProfiles) is tens of KiB


class ResponseTooLarge(Exception):
    pass


class BoundedResponse(aiohttp.ClientResponse):
    _bounded_body: bytes | None = None

    async def read(self) -> bytes:
        if self._bounded_body is None:
            if (self.content_length or 0) > MAX_RESPONSE_BYTES:
                self.close()
                raise ResponseTooLarge(f"the device's answer is over {MAX_RESPONSE_BYTES // 1024} KiB")
            chunks, size = [], 0
            async for chunk in self.content.iter_any():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    self.close()
                    raise ResponseTooLarge(f"the device's answer is over {MAX_RESPONSE_BYTES // 1024} KiB")
                chunks.append(chunk)
            self._bounded_body = b"".join(chunks)
        return self._bounded_body


_opened: ContextVar[list[aiohttp.ClientSession]] = ContextVar("camgate_onvif_sessions")


def _bounded_session(*args, **kwargs) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(*args, response_class=BoundedResponse, **kwargs)
    with suppress(LookupError):
        _opened.get().append(session)
    return session


@asynccontextmanager
async def sessions_closed_after():
    opened: list[aiohttp.ClientSession] = []
    token = _opened.set(opened)
    try:
        yield
    finally:
        _opened.reset(token)
        for session in opened:
            if not session.closed:
                await session.close()


@functools.cache
def onvif_camera_class():
    """``onvif.ONVIFCamera``, imported on first use (it takes a second: the web server
    pays it at the first ONVIF read, not at every start)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import onvif.client
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    onvif.client.ClientSession = _bounded_session
    return onvif.client.ONVIFCamera
