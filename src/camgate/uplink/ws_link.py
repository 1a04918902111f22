"""A tunnel's WebSocket after aiohttp's handshake, read and written by camgate itself.

aiohttp's reader copied each payload twice (and a relay's once more to unmask it), queued
every message and woke the reading task for each: on a relay carrying 200 streams that
was a fifth of its CPU. Once the handshake is done, :func:`accept` (relay) and
:func:`take_over` (client) put a :class:`WebSocketLink` in place of aiohttp's protocol on
the connection's transport (plain TCP or TLS, asyncio's or uvloop's). It reads with
:class:`~.ws_reader.FrameReader` into buffers of its own, and hands each message to the
tunnel's session as it is parsed, in the transport's read callback; the session tells it
when to stop (flow control) and when to go on. It writes frames itself
(:class:`~.ws_frames.DirectFrames`) and answers the peer's CLOSE as aiohttp did.

It offers the part of aiohttp's WebSocket API that camgate uses (receive, send_str,
send_bytes, ping, pong, close, closed, close_code), so the relay reads the hello with it
and everything else goes on as before; aiohttp's own object is told when it is closed.
What the transport tells the link about the connection (lost, writing paused or resumed)
is passed on to aiohttp's protocol too, which keeps its bookkeeping (the relay's
connection guard, aiohttp's server and client connections).

It takes over only when nothing of the WebSocket can have reached aiohttp's reader: the
relay stops reading the connection before it answers the upgrade, and a client takes over
before it sends its hello, which a relay waits for before it says anything (spec,
section 4). Where that cannot be known, or compression was negotiated, or aiohttp does not
look as expected, aiohttp's WebSocket is returned and used as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Callable

from aiohttp import WSMessage, WSMsgType, web

from .ws_frames import CLOSE, PING, PONG, TEXT, DirectFrames, websocket_mask
from .ws_reader import FrameReader, WebSocketProtocolError

log = logging.getLogger(__name__)

Receiver = Callable[[WSMessage], bool]  # False: deliver nothing more until resume()

_CLOSED_MESSAGE = WSMessage(WSMsgType.CLOSED, None, None)
_CLOSE_OK = (1000).to_bytes(2, "big")


class WebSocketLink(asyncio.BufferedProtocol):
    """One WebSocket connection, camgate's from its handshake on (see the module's docstring)."""

    def __init__(
        self,
        transport: Any,
        previous: Any,
        *,
        masked: bool,
        max_message: int,
        close_timeout: float,
        on_closed: Callable[[int], None] = lambda code: None,
    ) -> None:
        self._transport = transport
        self._previous = previous  # aiohttp's protocol (or the relay's guard in front of it)
        self._reader = FrameReader(max_message)
        self.frames = DirectFrames(transport, self, masked)
        self._close_timeout = close_timeout
        self._on_closed = on_closed
        self.writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._receiver: Receiver | None = None
        self._queue: deque[WSMessage] = deque()  # parsed, not yet delivered (reading is paused meanwhile)
        self._paused = False  # we stopped the transport's reading
        self._waiter: asyncio.Future[None] | None = None  # receive()
        self._lost = False
        self._error: WebSocketProtocolError | None = None
        self._close_sent = False
        self.closed = False
        self.close_code: int | None = None
        # Set once nothing more will be read: the peer's CLOSE came, the connection was
        # lost, or the peer broke the protocol. Its result: why, when it is an error.
        self.done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

    # --- what the session uses ---------------------------------------------------------

    def set_receiver(self, receiver: Receiver | None) -> None:
        """Hand every message from now on (and those already queued) to ``receiver``, in
        the transport's read callback, until it returns False; None: queue them for
        :meth:`receive`."""
        self._receiver = receiver
        if receiver is not None and self._queue:
            self.resume()

    def resume(self) -> None:
        """Deliver what waits, then read again (after the receiver returned False)."""
        queue = self._queue
        while queue and self._receiver is not None and not self.closed:
            message = queue.popleft()
            if message[0] is WSMsgType.CLOSE:
                self._peer_closes(message)
                return
            if not self._receiver(message):
                return
        if not queue:
            self._read()

    def answer_ping(self, payload: bytes) -> None:
        if not self._transport.is_closing():
            self.frames.write_frame(PONG, payload)

    # --- aiohttp's WebSocket API (the part camgate uses) -----------------------------------

    async def receive(self, timeout: float | None = None) -> WSMessage:
        """The next message, as aiohttp's receive() gives it (CLOSE is answered first)."""
        while not self._queue:
            if self.done.done() or self.closed:
                return _CLOSED_MESSAGE
            self._read()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, timeout)
            finally:
                self._waiter = None
        message = self._queue.popleft()
        if message[0] is WSMsgType.CLOSE:
            self._peer_closes(message)
        elif not self._queue:
            self._read()
        return message

    async def send_str(self, data: str) -> None:
        self._check_open()
        self.frames.write_frame(TEXT, data.encode("utf-8"))
        await self._drain()

    async def send_bytes(self, data: bytes | bytearray) -> None:
        self._check_open()
        self.frames.write(data)
        await self._drain()

    async def ping(self, message: bytes = b"") -> None:
        self._check_open()
        self.frames.write_frame(PING, message)

    async def pong(self, message: bytes = b"") -> None:
        self._check_open()
        self.frames.write_frame(PONG, message)

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        """Send CLOSE, wait up to the close timeout for the peer's, then close the
        connection; False when it was closed already."""
        if self.closed:
            return False
        self.closed = True
        self._receiver = None
        self._queue.clear()
        if not self._close_sent and not self._transport.is_closing():
            self._close_sent = True
            self.frames.write_frame(CLOSE, code.to_bytes(2, "big") + message)
        if not self.done.done():
            self._read()  # only its CLOSE counts now (see _deliver)
            try:
                await asyncio.wait_for(asyncio.shield(self.done), self._close_timeout)
            except asyncio.TimeoutError:
                pass
        if self.close_code is None:
            self.close_code = self._error.code if self._error is not None else 1006
        self._close_transport()
        return True

    def detach(self) -> None:
        """aiohttp's WebSocket object is let go (the relay's handler returned without it):
        tell it nothing more, and so keep nothing of it (with its request, about 9 KiB)."""
        self._on_closed = _ignore_close

    def close_connection(self) -> None:
        """Close the connection now, without a closing handshake (the owner is going away)."""
        self.closed = True
        self._receiver = None
        self._close_transport()

    # --- asyncio.BufferedProtocol ---------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._reader.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        try:
            messages = self._reader.buffer_updated(nbytes)
        except WebSocketProtocolError as error:
            self._protocol_error(error)
            return
        if messages:
            try:
                self._deliver(messages)
            except Exception:  # a bug of the receiver's: end this WebSocket, say where
                log.exception("websocket receiver failed; closing the connection")
                self._protocol_error(WebSocketProtocolError(1011, "internal error"))

    def eof_received(self) -> bool:
        return False  # no CLOSE came first: the connection ends (connection_lost follows)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.closed = True
        if self.close_code is None:
            self.close_code = 1006
        self._finish(None if exc is None else str(exc) or type(exc).__name__)
        self._wake_drain()
        self._on_closed(self.close_code)
        self._previous.connection_lost(exc)

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._previous.pause_writing()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_drain()
        self._previous.resume_writing()

    # --- inside ---------------------------------------------------------------------

    def _deliver(self, messages: list[WSMessage]) -> None:
        if self.closed:  # closing: only the peer's CLOSE matters now
            for message in messages:
                if message[0] is WSMsgType.CLOSE:
                    self.close_code = message[1]
                    self._finish(None)
            return
        queue, receiver = self._queue, self._receiver
        if queue or receiver is None:
            queue.extend(messages)
            self._pause()
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)
            return
        for index, message in enumerate(messages):
            if message[0] is WSMsgType.CLOSE:
                self._peer_closes(message)
                return
            if not receiver(message):
                queue.extend(messages[index + 1 :])
                self._pause()
                return
            if self.closed or self._receiver is not receiver:  # it closed us, or let go
                queue.extend(messages[index + 1 :])
                if queue:
                    self._pause()
                return

    def _peer_closes(self, message: WSMessage) -> None:
        """The peer's CLOSE: answer it (as aiohttp's autoclose did) and close the connection."""
        self.close_code = message[1]
        self.closed = True
        self._receiver = None
        self._queue.clear()
        if not self._close_sent and not self._transport.is_closing():
            self._close_sent = True
            self.frames.write_frame(CLOSE, _CLOSE_OK)
        self._finish(None)
        self._close_transport()

    def _protocol_error(self, error: WebSocketProtocolError) -> None:
        log.debug("websocket protocol error: %s", error.reason)
        self._error = error
        if not self._close_sent and not self._transport.is_closing():
            self._close_sent = True
            self.frames.write_frame(CLOSE, error.code.to_bytes(2, "big"))
        if not self.closed:
            self.closed = True
            self.close_code = error.code
        self._finish(f"{error.reason} (close code {error.code})")
        self._close_transport()

    def _finish(self, why: str | None) -> None:
        if not self.done.done():
            self.done.set_result(why)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _close_transport(self) -> None:
        if not self._transport.is_closing():
            self._transport.close()
        self._on_closed(self.close_code if self.close_code is not None else 1006)

    def _pause(self) -> None:
        if not self._paused and not self._transport.is_closing():
            self._paused = True
            self._transport.pause_reading()

    def _read(self) -> None:
        if self._paused and not self._transport.is_closing():
            self._paused = False
            self._transport.resume_reading()

    def _check_open(self) -> None:
        if self._transport.is_closing():
            raise ConnectionResetError("Cannot write to closing transport")

    async def _drain(self) -> None:
        if not self.writing_paused:
            return
        if self._drain_waiter is None:
            self._drain_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._drain_waiter)
        if self._lost:
            raise ConnectionResetError("Connection lost")

    def _wake_drain(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _ignore_close(code: int) -> None:
    pass


def _mark_closed(ws: Any) -> Callable[[int], None]:
    """What tells aiohttp's WebSocket object that its connection is closed, so that its
    own close() (the server's write_eof after the handler, the client's cleanup) does
    nothing more."""

    def closed(code: int) -> None:
        if not ws._closed:
            ws._closed = True
            ws._close_code = code
            response = getattr(ws, "_response", None)  # a client's: release its connection
            if response is not None:
                response.close()

    return closed


def _take_over(ws: Any, transport: Any, *, masked: bool, max_message: int, close_timeout: float) -> WebSocketLink | None:
    """Put a link on ``transport`` in place of aiohttp's protocol, when that is sure to
    lose nothing (see the module's docstring); None when not."""
    writer = getattr(ws, "_writer", None)
    queue = getattr(getattr(ws, "_reader", None), "_buffer", None)
    if (
        ws.compress
        or websocket_mask is None
        or transport is None
        or transport.is_closing()
        or getattr(writer, "transport", None) is not transport
        or queue is None
        or len(queue)  # aiohttp has messages already: its reader may hold more
        or not hasattr(ws, "_closed")
        or not hasattr(ws, "_close_code")
    ):
        return None
    link = WebSocketLink(
        transport, transport.get_protocol(), masked=masked, max_message=max_message, close_timeout=close_timeout,
        on_closed=_mark_closed(ws),
    )
    # uvloop picks its read callbacks (buffered or not) when reading starts: restart it.
    transport.pause_reading()
    transport.set_protocol(link)
    transport.resume_reading()
    return link


async def accept(ws: web.WebSocketResponse, request: web.BaseRequest) -> WebSocketLink | web.WebSocketResponse:
    """``await ws.prepare(request)`` for the relay, and the link that reads the WebSocket
    from then on (``ws`` itself when camgate cannot take it over). Raises what prepare
    raises."""
    transport = request.transport
    # Bytes that came with the upgrade request, before our answer, went to aiohttp:
    # a client must not send them, and one that did keeps aiohttp's reader.
    ours = (
        transport is not None
        and not transport.is_closing()
        and getattr(request.protocol, "_message_tail", None) == b""
    )
    if ours:
        transport.pause_reading()  # nothing reaches aiohttp's reader from here on
    try:
        await ws.prepare(request)
    except BaseException:
        if ours and not transport.is_closing():
            transport.resume_reading()
        raise
    link = None
    if ours:
        link = _take_over(ws, transport, masked=False, max_message=getattr(ws, "_max_msg_size", 0) or 4 * 1024 * 1024,
                          close_timeout=getattr(ws, "_timeout", None) or 10.0)
        if link is None and not transport.is_closing():
            transport.resume_reading()
    return link if link is not None else ws


def take_over(ws: Any, *, max_message: int, close_timeout: float) -> Any:
    """The link that reads a client's WebSocket ``ws`` (just connected, nothing sent yet)
    from now on, or ``ws`` itself when camgate cannot take it over."""
    transport = getattr(getattr(ws, "_writer", None), "transport", None)
    link = _take_over(ws, transport, masked=True, max_message=max_message, close_timeout=close_timeout)
    return link if link is not None else ws
