"""onvif-zeep-async, imported once with what camgate needs of it fixed around it.

- Its client module calls ``logging.basicConfig`` when imported; the process's logging
  is the gateway's, so it is put back as it was.
- It reads every answer whole (``aiohttp.ClientResponse.read``), however large, and the
  device answering is a peer on the LAN: its sessions are given a response class that
  stops at MAX_RESPONSE_BYTES. The library makes its own sessions, so the name it calls
  them by is pointed at a ``ClientSession`` with that class (aiohttp's public
  ``response_class``).
"""

from __future__ import annotations

import functools
import logging

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
    onvif.client.ClientSession = functools.partial(aiohttp.ClientSession, response_class=BoundedResponse)
    return onvif.client.ONVIFCamera
