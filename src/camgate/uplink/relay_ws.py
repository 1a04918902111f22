"""The relay's end of a tunnel's WebSocket, once aiohttp has answered the upgrade.

aiohttp keeps a great deal per WebSocket it serves, for as long as the handler runs: the
upgrade request with its headers, its request handler with an HTTP parser and a message
queue, two tasks and the handler's coroutine frames, the response and its writer. On a
relay holding thousands of idle tunnels that was over half of what each cost (about
9 KiB of some 25). So once aiohttp has written the 101, the tunnel's connection is
handed to a :class:`TunnelWebSocket`: the connection's protocol (the connection guard's
:class:`~.connection_guard.GuardedConnection`) passes its bytes here instead of to
aiohttp, aiohttp is told the connection is gone, and its handler returns.

What it keeps is aiohttp's own frame parser and message queue (the same validation of
frames, sizes and UTF-8 as before); it writes frames itself (ws_frames.frame_header).
It answers what :class:`~.session.TunnelSession` and the relay ask of a WebSocket
(receive, send_bytes, send_str, ping, pong, close, closed), with aiohttp's meaning:
a CLOSE from the peer is answered at once, close() waits ``close_timeout`` for the
peer's CLOSE, and a frame error closes with its code and is received as ERROR.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web
from aiohttp.http_websocket import WS_CLOSED_MESSAGE, WS_CLOSING_MESSAGE, WebSocketError, WebSocketReader
from aiohttp.streams import EofStream

try:  # the queue aiohttp's parser feeds: aiohttp's own, private, so looked for
    from aiohttp._websocket.reader import WebSocketDataQueue
except ImportError:  # pragma: no cover - a later aiohttp moved it: tunnels stay on aiohttp
    WebSocketDataQueue = None

from .ws_frames import frame_header

QUEUE_LIMIT = 2**16  # as aiohttp's: past twice this, the connection is not read
_CLOSE_CODE = struct.Struct("!H")


def take_over(conn: Any, request: web.BaseRequest, max_msg_size: int, close_timeout: float) -> TunnelWebSocket | None:
    """Before aiohttp answers ``request``'s upgrade: make ``conn`` (the guard's connection
    that carries it) pass its bytes to a new TunnelWebSocket instead of to aiohttp; None
    where that cannot be done (the tunnel then stays on aiohttp's WebSocket)."""
    if conn is None or WebSocketDataQueue is None:
        return None
    own = TunnelWebSocket(max_msg_size, close_timeout)
    conn.inner = own
    own.connection_made(request.transport)
    # Frames sent with the request, before the 101 (RFC 6455 forbids it, but aiohttp
    # would have read them): aiohttp holds them until it makes its frame parser.
    tail = getattr(request.protocol, "_message_tail", b"")
    if tail:
        own.data_received(tail)
    return own


def give_back(conn: Any, request: web.BaseRequest) -> None:
    """The upgrade failed: ``conn``'s bytes go to aiohttp again, which answers or cleans up."""
    conn.inner = request.protocol


def release(request: web.BaseRequest) -> None:
    """aiohttp lets go of ``request``'s connection, answered with a 101: its request
    handler is told the connection is gone, with no transport first, or it would close
    it. The handler's response is then written nowhere, quietly."""
    handler = request.protocol
    handler.transport = None
    handler.connection_lost(None)


class TunnelWebSocket(asyncio.Protocol):
    """A server-side WebSocket on a connection whose handshake is done."""

    compress = 0  # no extension is negotiated (ws_frames.direct_frames checks)
    use_mask = False  # a server never masks

    def __init__(self, max_msg_size: int, close_timeout: float) -> None:
        self.transport: Any = None
        self.closed = False  # we sent CLOSE (or the connection is gone)
        self._closing = False  # the peer sent CLOSE
        self._close_timeout = close_timeout
        self._reading_paused = False  # read by aiohttp's queue
        self.writing_paused = False  # read by ws_frames.DirectFrames
        self._drained: asyncio.Future[None] | None = None
        self._receiving = False
        self._queue = WebSocketDataQueue(self, QUEUE_LIMIT, loop=asyncio.get_running_loop())
        self._parser = WebSocketReader(self._queue, max_msg_size, compress=False, decode_text=True)

    @property
    def _writer(self) -> TunnelWebSocket:
        """What ws_frames.direct_frames looks at on an aiohttp WebSocket: transport,
        protocol and use_mask are this object's own."""
        return self

    @property
    def protocol(self) -> TunnelWebSocket:
        return self

    # --- asyncio.Protocol, through the guard's connection --------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def eof_received(self) -> bool:
        return False  # no half-close: the connection ends

    def connection_lost(self, exc: Exception | None) -> None:
        self._parser.feed_eof()
        self._wake_writers(exc or ConnectionResetError("Connection lost"))

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_writers(None)

    # aiohttp's queue pauses and resumes reading through these.
    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
            self._reading_paused = True

    def resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        self._reading_paused = False

    # --- receiving ------------------------------------------------------------------

    async def receive(self) -> WSMessage:
        if self.closed:
            return WS_CLOSED_MESSAGE
        if self._closing:
            return WS_CLOSING_MESSAGE
        self._receiving = True
        try:
            msg = await self._queue.read()
        except EofStream:
            await self.close()
            return WS_CLOSED_MESSAGE
        except WebSocketError as exc:  # a bad frame, a message too big, text not UTF-8
            await self.close(code=exc.code)
            return WSMessage(WSMsgType.ERROR, exc, None)
        except Exception as exc:  # noqa: BLE001 - as aiohttp: the connection is unusable
            self._closing = True
            await self.close(code=WSCloseCode.ABNORMAL_CLOSURE)
            return WSMessage(WSMsgType.ERROR, exc, None)
        finally:
            self._receiving = False
        if msg.type is WSMsgType.CLOSE:
            self._closing = True
            await self.close()  # answered at once; the peer closes the connection next
        return msg

    # --- sending --------------------------------------------------------------------

    async def send_bytes(self, data: bytes | bytearray) -> None:
        self._write(WSMsgType.BINARY, data)
        await self._drain()

    async def send_str(self, data: str) -> None:
        self._write(WSMsgType.TEXT, data.encode("utf-8"))
        await self._drain()

    async def ping(self, message: bytes = b"") -> None:
        self._write(WSMsgType.PING, message)
        await self._drain()

    async def pong(self, message: bytes = b"") -> None:
        self._write(WSMsgType.PONG, message)
        await self._drain()

    def _write(self, opcode: int, payload: bytes | bytearray) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("Cannot write to closing transport")
        transport.writelines((frame_header(len(payload), opcode=opcode), payload))

    async def _drain(self) -> None:
        if not self.writing_paused:
            return
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._drained)

    def _wake_writers(self, exc: BaseException | None) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            if exc is None:
                drained.set_result(None)
            else:
                drained.set_exception(exc)
                drained.exception()  # retrieved: no writer may be waiting

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"") -> bool:
        """Send CLOSE and end the connection once the peer's CLOSE came (at most
        ``close_timeout`` later); False if it was closed already."""
        if self.closed:
            return False
        self.closed = True
        try:
            self._write(WSMsgType.CLOSE, _CLOSE_CODE.pack(code) + message)
        except ConnectionResetError:
            return True
        try:
            # Another task reading cannot share the queue: it sees the end itself.
            if not self._closing and not self._receiving:
                async with asyncio.timeout(self._close_timeout):
                    while (await self._queue.read()).type is not WSMsgType.CLOSE:
                        pass
        except Exception:  # noqa: BLE001 - timed out, the connection ended, a bad frame: closed all the same
            pass
        finally:
            self.transport.close()
        return True
