"""BINARY messages written as WebSocket frames straight onto aiohttp's transport.

Every byte of a tunnel passes here, a frame per socket read. aiohttp's ``send_bytes`` is a
coroutine, so a session handed its frames to a writer task: a task switch per frame, and
on the client (which masks, RFC 6455 section 5.3) three copies of each payload. Written
here, synchronously, while nothing waits before it and the transport takes more, a frame
costs the client one copy (masked in place) and the relay none: header and payload go out
in one ``writelines``, which uvloop sends with one vectored write.

The frames are exactly aiohttp's own: FIN set, one frame per message, a fresh random mask
per frame from the client, no extension bits. Nothing is written this way on a WebSocket
that negotiated compression, or whose aiohttp does not look as expected: the session then
sends everything through aiohttp (:func:`direct_frames` returns None).
"""

from __future__ import annotations

import random
import struct
from typing import Any

try:  # aiohttp's own masking (C when compiled): private, so its absence is allowed for
    from aiohttp._websocket.helpers import websocket_mask
except ImportError:  # pragma: no cover - a later aiohttp moved it
    websocket_mask = None

FIN = 0x80
BINARY, TEXT, CLOSE, PING, PONG = 0x2, 0x1, 0x8, 0x9, 0xA
_BINARY = FIN | BINARY
_MASKED = 0x80
_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


def frame_header(size: int, mask: bytes = b"", first: int = _BINARY) -> bytes:
    """The header of one unfragmented frame of ``size`` bytes (BINARY unless ``first``,
    FIN and opcode, says otherwise), with ``mask`` (4 bytes) when the client sends it."""
    bit = _MASKED if mask else 0
    if size < 126:
        head = _SHORT.pack(first, size | bit)
    elif size < 1 << 16:
        head = _MEDIUM.pack(first, 126 | bit, size)
    else:
        head = _LONG.pack(first, 127 | bit, size)
    return head + mask


class DirectFrames:
    """Writes one WebSocket's BINARY messages itself (see the module's docstring)."""

    def __init__(self, transport: Any, protocol: Any, masked: bool, masks: random.Random | None = None) -> None:
        self._transport = transport
        self._protocol = protocol
        self._masked = masked
        # Masks as aiohttp draws them: 32 random bits a frame, big-endian, from the
        # module's generator (as aiohttp's): a Random each would cost every tunnel 2.5 KiB.
        self._random_bits = (masks or random).getrandbits

    @property
    def writable(self) -> bool:
        """The transport takes a frame now: neither full (its protocol paused writing) nor closing."""
        return not self._protocol.writing_paused and not self._transport.is_closing()

    def write(self, message: bytes | bytearray) -> None:
        """Send ``message`` as one BINARY frame (a bytearray may be masked in place)."""
        if not self._masked:
            self._transport.writelines((frame_header(len(message)), message))
            return
        mask = self._random_bits(32).to_bytes(4, "big")
        body = message if type(message) is bytearray else bytearray(message)
        websocket_mask(mask, body)
        self._transport.writelines((frame_header(len(body), mask), body))

    def write_frame(self, opcode: int, payload: bytes) -> None:
        """Send one unfragmented frame of any other kind (TEXT, PING, PONG, CLOSE):
        what a WebSocket that camgate reads itself (ws_link.py) sends without aiohttp."""
        first = FIN | opcode
        if not self._masked:
            self._transport.writelines((frame_header(len(payload), b"", first), payload))
            return
        mask = self._random_bits(32).to_bytes(4, "big")
        body = bytearray(payload)
        websocket_mask(mask, body)
        self._transport.writelines((frame_header(len(body), mask, first), body))


def direct_frames(ws: Any) -> DirectFrames | None:
    """A :class:`DirectFrames` for aiohttp WebSocket ``ws`` (client or server, after its
    handshake), or None when its frames must go through aiohttp."""
    writer = getattr(ws, "_writer", None)
    transport = getattr(writer, "transport", None)
    protocol = getattr(writer, "protocol", None)
    masked = getattr(writer, "use_mask", None)
    if ws.compress or transport is None or not hasattr(protocol, "writing_paused") or masked is None:
        return None
    if masked and websocket_mask is None:
        return None
    return DirectFrames(transport, protocol, bool(masked))
