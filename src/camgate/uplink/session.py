"""One live tunnel's I/O: frames between one WebSocket and many TCP sockets.

A :class:`TunnelSession` moves bytes and makes no protocol decision: it hands each
WebSocket message and each socket's news to its :class:`~.connection.TunnelConnection`
and carries out the events that come back (write to a socket, stop reading one, send a
frame, stop reading the WebSocket for a while...). Flow control, payload sizes, pauses
and caps are the connection's; see :mod:`.connection`.

Both ends run the same session once the hello is done; they differ only in who opens
connections. On the relay a viewer connecting to a public listener gets a client_id and
an O is sent; on the client an O from the relay opens a TCP connection to a camera.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from aiohttp import ClientError, WSMsgType

from . import events as ev
from .client_ids import TableFull
from .connection import TunnelConnection
from .flow import Channel
from .heap import steady_heap
from .liveness import Liveness
from .protocol import DEAD_AFTER_SECONDS, LIMITS, PING_AFTER_SECONDS, ProtocolError, PublicEndpoint
from .ws_frames import direct_frames
from .ws_link import WebSocketLink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LivenessTimes:
    ping_after: float = PING_AFTER_SECONDS
    dead_after: float = DEAD_AFTER_SECONDS

    @property
    def tick(self) -> float:
        return min(1.0, self.ping_after / 4)


_read_room = threading.local()


def _read_staging() -> bytearray:
    """This thread's buffer for socket reads: a D header's room, then the largest payload
    either end sends. Each read is copied out of it once, into the frame that carries it."""
    room = getattr(_read_room, "buffer", None)
    if room is None:
        room = _read_room.buffer = bytearray(3 + LIMITS.camgate_payload)
    return room


class _Leg(asyncio.BufferedProtocol):
    """The TCP side of one client_id: a viewer on the relay, a camera on the client.

    It reads into the thread's staging buffer behind a D header's room, and each read goes
    out as one D frame copied from there once (uvloop's bytes, and a frame built from
    them, were two copies); a read larger than the peer takes in one D payload (a
    reference peer's 4 KiB) is split into several, each copied once.
    """

    def __init__(self, session: TunnelSession, index: int, channel: Channel | None = None) -> None:
        self.session = session
        self.index = index
        self.channel = channel  # the relay's viewer gets one once it has connected
        self.transport: asyncio.Transport | None = None
        # Client side: bytes that arrive while the camera connection is being opened.
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.connect_task: asyncio.Task[Any] | None = None
        self.ended = False  # closed by either end; never written to again

    def buffered(self) -> int:
        if self.transport is None:
            return self.pending_bytes
        return self.transport.get_write_buffer_size()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A socket transport, asyncio's or uvloop's (which is not an asyncio.Transport).
        self.transport = transport  # type: ignore[assignment]
        # resume_writing then fires exactly when the connection wants to hear of a drain.
        high, low = self.session.connection.socket_water_marks
        transport.set_write_buffer_limits(high=high, low=low)
        self.session._leg_connected(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(_read_staging())[3:]

    def buffer_updated(self, nbytes: int) -> None:
        self.session._from_socket(self, nbytes)

    def eof_received(self) -> bool:
        # There is no half-close in the protocol: EOF from a socket ends the connection.
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.session._leg_lost(self)

    def resume_writing(self) -> None:
        self.session._leg_drained(self)


class TunnelSession:
    """Frames of one WebSocket, after the hello, to and from that tunnel's TCP sockets."""

    def __init__(
        self,
        ws: Any,
        connection: TunnelConnection,
        *,
        label: str,
        liveness: LivenessTimes = LivenessTimes(),
        on_endpoints: Callable[[tuple[PublicEndpoint, ...]], None] | None = None,
    ) -> None:
        self._ws = ws
        # A WebSocket camgate reads itself (ws_link.py) hands over each message as it is
        # parsed (_on_message); aiohttp's is read by a task (_read_loop).
        self._link = ws if isinstance(ws, WebSocketLink) else None
        self._drain_task: asyncio.Task[None] | None = None
        self.connection = connection
        self.label = label
        self._liveness_times = liveness
        self._on_endpoints = on_endpoints
        self._legs: set[_Leg] = set()  # every leg with a channel until its socket is gone
        # Messages waiting for the writer task. Both exist only while something waits:
        # an idle tunnel holds no queue and no task (thousands of them sit on a relay).
        self._out: deque[bytes | bytearray | str] | None = None
        self._writer: asyncio.Task[None] | None = None
        # BINARY messages written at once while nothing waits in _out (ws_frames.py). Their
        # bytes are reported sent once the events that queued them are all carried out:
        # a pause among those events must not land after the resume that sending them
        # earns (the connection decided both as if the frames were still queued).
        self._direct = ws.frames if self._link is not None else direct_frames(ws)
        self._unreported = 0
        self._applying = 0
        self._drained: asyncio.Future[None] | None = None  # while the reader waits for sockets
        self._ended = False
        self._complaints = 0
        # The session's end, with the error that ended it (None: a normal end); made by run().
        self._done: asyncio.Future[BaseException | None] | None = None
        self._closing = False  # close() came, maybe before run()
        self._tick_handle: asyncio.TimerHandle | None = None  # liveness: a timer, not a task
        self._pinging: asyncio.Task[None] | None = None

    # --- public ------------------------------------------------------------

    @property
    def queued_to_websocket(self) -> int:
        return self.connection.queued_to_websocket

    def buffered_to_sockets(self) -> int:
        return sum(leg.buffered() for leg in self._legs)

    def viewer_protocol(self, index: int) -> _Leg:
        """Relay side: protocol factory result for a viewer on forward ``index``."""
        return _Leg(self, index)

    def announce(self, endpoints: tuple[PublicEndpoint, ...] | None = None) -> None:
        """Queue this end's camgate extension message, right after the hello."""
        self._apply(self.connection.announce(endpoints))

    async def run(self) -> None:
        """Carry frames until the WebSocket closes, the peer dies or :meth:`close` is called.

        camgate's own WebSocket (ws_link.py) hands over each message in its read callback;
        aiohttp's is read by a task. A writer task exists only while messages wait for it,
        and liveness is a timer: an idle tunnel runs no task of its own on a link, one on
        aiohttp's WebSocket."""
        steady_heap()
        loop = asyncio.get_running_loop()
        self._liveness = Liveness(loop.time(), self._liveness_times.ping_after, self._liveness_times.dead_after)
        self._done = done = loop.create_future()
        if self._closing:
            done.set_result(None)
        self._time = loop.time
        link, reader = self._link, None
        if link is not None:
            link.set_receiver(self._on_message)
            link.done.add_done_callback(self._link_ended)
        else:
            reader = loop.create_task(self._read_loop(), name=f"uplink-reader {self.label}")
            reader.add_done_callback(self._reader_ended)
        self._tick_handle = loop.call_later(self._liveness_times.tick, self._tick)
        if self._out:
            self._start_writer()  # what was queued before run (the extension message)
        try:
            exc = await done
            if exc is not None:
                if isinstance(exc, (OSError, asyncio.TimeoutError, ClientError, ProtocolError)):
                    log.info("%s: tunnel ends: %s", self.label, str(exc) or type(exc).__name__)
                else:  # a bug, not the network: say so, with where it happened
                    log.error("%s: tunnel ends on an unexpected error", self.label, exc_info=exc)
        finally:
            self._ended = True
            if link is not None:
                link.set_receiver(None)
            if self._tick_handle is not None:
                self._tick_handle.cancel()
            tasks = [task for task in (reader, self._writer, self._pinging, self._drain_task) if task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for leg in list(self._legs):  # no C: the WebSocket is gone
                self._end_leg(leg, flush=True)
            if not self._ws.closed:
                # The WebSocket's own close timeout (set by its creator) ends the closing
                # handshake with a dead peer; this is only a safety net.
                try:
                    await asyncio.wait_for(self._ws.close(), 3)
                except (asyncio.TimeoutError, OSError):
                    pass

    def close(self) -> None:
        """End the session from outside (the tunnel was replaced or the process stops)."""
        self._closing = True
        self._finish(None)

    def _finish(self, exc: BaseException | None) -> None:
        """End run(), with the error that ended the session (None: a normal end)."""
        if self._done is not None and not self._done.done():
            self._done.set_result(exc)

    def _reader_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            self._finish(task.exception())

    def _link_ended(self, done: asyncio.Future[str | None]) -> None:
        """The link's connection ended; with why, when a frame broke the WebSocket's rules."""
        if not done.cancelled() and done.result() is not None:
            log.info("%s: websocket error: %s", self.label, done.result())
        self._finish(None)

    def _helper_ended(self, task: asyncio.Task[None]) -> None:
        """The writer or a ping: its error ends the session; its normal end does not."""
        if not task.cancelled() and task.exception() is not None:
            self._finish(task.exception())

    # --- carrying out the connection's events --------------------------------------

    def _apply(self, events: Sequence[ev.Event]) -> None:
        handlers = _HANDLERS
        self._applying += 1
        try:
            for event in events:
                handlers[type(event)](self, event)
        finally:
            self._applying -= 1
        if self._unreported and not self._applying:
            size, self._unreported = self._unreported, 0
            events = self.connection.sent(size)
            if events:
                self._apply(events)

    def _send(self, event: ev.Send) -> None:
        if self._ended:
            return
        message, direct = event.message, self._direct
        if not self._out and direct is not None and type(message) is not str and direct.writable:
            direct.write(message)
            self._unreported += len(message)  # reported at the end of _apply
            return
        if self._out is None:
            self._out = deque()
        self._out.append(message)
        if self._writer is None and self._done is not None:  # else run() starts it
            self._start_writer()

    def _pause(self, event: ev.PauseRequested) -> None:
        event.channel.socket.pause_reading()

    def _resume(self, event: ev.ResumeRequested) -> None:
        event.channel.socket.resume_reading()

    def _closed(self, event: ev.Closed) -> None:
        self._end_leg(event.channel.socket, flush=True)

    def _drop(self, event: ev.Dropped) -> None:
        log.warning("%s: closing connection %s: %s", self.label, event.client_id, event.reason)
        self._end_leg(event.channel.socket, flush=False)

    def _ignore(self, event: ev.Ignored) -> None:
        if event.expected:
            log.debug("%s: %s", self.label, event.reason)
        else:
            self._complain(event.reason)

    def _stopped_waiting(self, event: ev.StoppedWaiting) -> None:
        log.info("%s: connection %s drains too slowly; no longer pausing the tunnel for it",
                 self.label, event.client_id)

    def _flow_offered(self, event: ev.FlowOffered) -> None:
        if event.used:
            log.debug("%s: peer offers per-connection flow control", self.label)
        else:
            log.info("%s: peer offers flow control version %d, which this end does not speak; not used",
                     self.label, event.version)

    def _endpoints(self, event: ev.Endpoints) -> None:
        if self._on_endpoints is not None:
            self._on_endpoints(event.endpoints)

    def _complain(self, message: str) -> None:
        # A misbehaving peer could flood the log; say the first few, then every 1000th.
        self._complaints += 1
        if self._complaints <= 20 or self._complaints % 1000 == 0:
            log.warning("%s: %s (%d so far)", self.label, message, self._complaints)

    # --- WebSocket -> sockets ------------------------------------------------

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        connection = self.connection
        while True:
            msg = await self._ws.receive()
            self._liveness.heard(loop.time())
            if msg.type is WSMsgType.BINARY:
                self._apply(connection.receive_binary(msg.data))
                if connection.reader_must_wait:
                    await self._wait_for_sockets_to_drain()
            elif msg.type is WSMsgType.TEXT:
                self._apply(connection.receive_text(msg.data))
            elif msg.type is WSMsgType.PING:
                await self._ws.pong(msg.data)
            elif msg.type is WSMsgType.PONG:
                pass
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                if msg.type is WSMsgType.ERROR:
                    log.info("%s: websocket error: %s", self.label, msg.data)
                return

    def _on_message(self, message: Any) -> bool:
        """One message from the link, in its transport's read callback; False stops the
        link until the sockets have drained (then _resume_link)."""
        self._liveness.heard(self._time())
        kind = message[0]
        if kind is WSMsgType.BINARY:
            connection = self.connection
            self._apply(connection.receive_binary(message[1]))
            if connection.reader_must_wait:
                self._drain_task = asyncio.create_task(self._resume_link(), name=f"uplink-drain {self.label}")
                return False
        elif kind is WSMsgType.TEXT:
            self._apply(self.connection.receive_text(message[1]))
        elif kind is WSMsgType.PING:
            self._link.answer_ping(message[1])  # type: ignore[union-attr]
        return True

    async def _resume_link(self) -> None:
        await self._wait_for_sockets_to_drain()
        if not self._ended:
            self._link.resume()  # type: ignore[union-attr]

    def _deliver(self, event: ev.Data) -> None:
        leg, payload = event.channel.socket, event.payload
        if leg.transport is None:
            leg.pending.append(payload)
            leg.pending_bytes += len(payload)
        elif not leg.transport.is_closing():  # else the socket is going; C follows
            leg.transport.write(payload)
        events = self.connection.socket_buffered(leg.channel, leg.buffered())
        if events:  # seldom: skip the call on the hot path
            self._apply(events)

    async def _wait_for_sockets_to_drain(self) -> None:
        """Stop reading the WebSocket for as long as the connection says."""
        loop = asyncio.get_running_loop()
        while not self._ended:
            waiting, events = self.connection.check_wait(loop.time(), self._sizes())
            if not waiting:
                return
            if events:
                self._apply(events)
                continue  # look again at once: a dropped socket frees its bytes
            self._drained = loop.create_future()
            try:
                await asyncio.wait_for(self._drained, 0.1)
            except asyncio.TimeoutError:
                pass
            finally:
                self._drained = None

    def _socket_drained(self) -> None:
        """Wake the reader if it waits for sockets to drain (one did, or went away)."""
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _sizes(self) -> Iterator[tuple[Channel, int]]:
        for leg in self._legs:
            yield leg.channel, leg.buffered()

    # --- sockets -> WebSocket ------------------------------------------------

    def _from_socket(self, leg: _Leg, size: int) -> None:
        """``size`` bytes were read from ``leg``'s socket into the staging buffer."""
        if leg.ended or leg.channel is None or self._ended:
            return
        connection, staging = self.connection, _read_staging()
        if size <= connection.send_payload_max:
            self._apply(connection.send_read(leg.channel, staging[: 3 + size]))
        else:
            self._apply(connection.send_data(leg.channel, memoryview(staging)[3 : 3 + size]))

    def _start_writer(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(
            self._write_queued(), name=f"uplink-writer {self.label}")
        self._writer.add_done_callback(self._helper_ended)

    async def _write_queued(self) -> None:
        out = self._out
        assert out is not None
        while out:
            message = out.popleft()
            events = self.connection.sent(len(message))
            if events:
                self._apply(events)
            if isinstance(message, str):
                await self._ws.send_str(message)
            else:
                await self._ws.send_bytes(message)
        # Nothing waits: no await since the last look, so _send starts a new writer for
        # whatever it queues next.
        self._writer = None
        self._out = None

    # --- legs ----------------------------------------------------------------

    def _leg_connected(self, leg: _Leg) -> None:
        transport = leg.transport
        assert transport is not None
        if self._ended or leg.ended:
            transport.abort()
            return
        if leg.channel is None:  # a viewer on the relay
            try:
                leg.channel, events = self.connection.open_viewer(leg.index, leg)
            except TableFull as exc:
                log.warning("%s: viewer refused on forward %d: %s", self.label, leg.index, exc)
                leg.ended = True
                transport.abort()
                return
            self._legs.add(leg)
        else:  # a camera on the client
            if leg.pending:
                transport.write(b"".join(leg.pending))
            leg.pending.clear()
            leg.pending_bytes = 0
            self._socket_drained()
            events = self.connection.socket_connected(leg.channel, leg.buffered())
        self._apply(events)

    def _leg_drained(self, leg: _Leg) -> None:
        """``leg``'s socket drained to its low-water mark (asyncio's resume_writing)."""
        self._socket_drained()
        if leg.channel is not None and not leg.ended:
            self._apply(self.connection.socket_drained(leg.channel, leg.buffered()))

    def _leg_lost(self, leg: _Leg) -> None:
        self._socket_drained()
        if leg.channel is not None and leg in self._legs:
            self._legs.discard(leg)
            self._apply(self.connection.socket_lost(leg.channel))
        self._end_leg(leg, flush=True)

    def _end_leg(self, leg: _Leg, *, flush: bool) -> None:
        leg.ended = True
        leg.pending.clear()
        leg.pending_bytes = 0
        if leg.connect_task is not None and not leg.connect_task.done():
            leg.connect_task.cancel()
        transport = leg.transport
        if transport is None:  # never connected: its socket is gone now
            if leg in self._legs:
                self._legs.discard(leg)
                self._apply(self.connection.socket_lost(leg.channel))
            return
        if not flush:
            transport.abort()  # also frees what a closing transport still holds
        elif not transport.is_closing():
            transport.close()  # writes what is buffered first, then closes
            asyncio.get_running_loop().call_later(self.connection.limits.close_linger, transport.abort)

    # --- client side: O opens a camera connection -------------------------------

    def _open_camera_leg(self, event: ev.Opened) -> None:
        leg = _Leg(self, event.index, event.channel)
        event.channel.socket = leg
        self._legs.add(leg)
        forward = self.connection.forwards[event.index]
        leg.connect_task = asyncio.create_task(
            self._connect(leg, forward.host, forward.port, forward.name),
            name=f"uplink-connect {self.label} #{event.client_id}",
        )

    async def _connect(self, leg: _Leg, host: str, port: int, name: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.create_connection(lambda: leg, host, port),
                                   self.connection.limits.connect_timeout)
        except Exception as exc:  # refused, unreachable, timed out, bad host name...
            if isinstance(exc, asyncio.TimeoutError):
                reason = "timed out"
            else:
                reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            log.info("%s: cannot reach %s at %s:%d for id %s: %s",
                     self.label, name, host, port, leg.channel.client_id, reason)
            self._end_leg(leg, flush=False)  # its C goes out now

    # --- liveness ------------------------------------------------------------

    def _tick(self) -> None:
        """Every ``tick`` seconds: the connection's timers, then the peer's liveness."""
        self._tick_handle = None
        if self._ended:
            return
        loop = asyncio.get_running_loop()
        try:
            self._apply(self.connection.poll(loop.time()))
        except Exception as exc:  # noqa: BLE001 - a bug: run() says so and ends the session
            self._finish(exc)
            return
        verdict = self._liveness.poll(loop.time())
        if verdict == Liveness.DEAD:
            log.warning("%s: peer silent for %gs, closing the tunnel", self.label, self._liveness_times.dead_after)
            self._finish(None)
            return
        if verdict == Liveness.PING and (self._pinging is None or self._pinging.done()):
            self._pinging = loop.create_task(self._ws.ping(), name=f"uplink-ping {self.label}")
            self._pinging.add_done_callback(self._helper_ended)
        self._tick_handle = loop.call_later(self._liveness_times.tick, self._tick)


# What carries out each kind of event (a table per class, not one per session).
_HANDLERS: dict[type, Callable[[TunnelSession, Any], None]] = {
    ev.Send: TunnelSession._send,
    ev.Data: TunnelSession._deliver,
    ev.PauseRequested: TunnelSession._pause,
    ev.ResumeRequested: TunnelSession._resume,
    ev.Closed: TunnelSession._closed,
    ev.Opened: TunnelSession._open_camera_leg,
    ev.Dropped: TunnelSession._drop,
    ev.Ignored: TunnelSession._ignore,
    ev.StoppedWaiting: TunnelSession._stopped_waiting,
    ev.FlowOffered: TunnelSession._flow_offered,
    ev.Endpoints: TunnelSession._endpoints,
}
