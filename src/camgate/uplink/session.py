"""One live tunnel: O/D/C frames between one WebSocket and many TCP sockets.

Both ends run the same session once the hello is done; they differ only in who opens
connections. On the relay a viewer connecting to a public listener gets a client_id and
an O is sent; on the client an O from the relay opens a TCP connection to a camera.

Flow control. The protocol has no per-connection window on the wire. Against a
reference peer the only way to slow one sender down is to stop reading the whole
WebSocket, which also stops every other connection of the tunnel. Between two camgate
ends a flow extension (TEXT messages, see :mod:`.protocol`) pauses one connection
instead. Either way memory stays bounded whatever a peer does.

Both modes share:

* Towards the WebSocket, frames wait in one queue. Past ``FlowLimits.to_websocket``
  bytes every socket of the tunnel stops being read until the queue is half empty.
* Towards a socket, bytes wait in its transport buffer (and, on the client, in the
  buffer of a connection still being opened); ``per_connection`` is its high-water mark
  and half of it the low-water mark.
* Across the sockets of a tunnel, more than ``per_tunnel`` bytes waiting stops the
  WebSocket reader until they drain to half; each ``stall_timeout`` that passes without
  that, the connection holding the most bytes is closed.
* A socket is read only while nothing holds it: neither our full queue to the WebSocket
  nor a pause from the peer (each leg keeps the set of reasons).

Reference peer (the default until the peer offers the extension): past
``per_connection`` the WebSocket reader waits for that socket to drain to half (what
the spec asks), but for at most ``stall_timeout`` seconds per episode. After that it
stops waiting for that socket, so the other connections move again; the socket may then
fill up to ``per_connection_max`` bytes, and is closed with C beyond that. So a reader
that stops costs the others one pause of ``stall_timeout`` at most, then loses its
connection; a reader that drains half its bound within ``stall_timeout`` is never
dropped, though while it is the bottleneck the whole tunnel runs at its pace.

Flow extension (each end offers it in a TEXT right after the hello, and uses it once
the peer has offered it too): past ``per_connection`` we send ``pause`` for that id,
once, and ``resume`` when asyncio says the socket drained to the low-water mark; the
peer stops reading that connection's source socket in between, so TCP back-pressure
reaches the camera (or viewer) that sends too much. The WebSocket reader never waits
for one socket, so a reader that stops costs the other connections nothing and keeps
its connection. What the peer had already sent when the pause reached it still arrives,
so the hard cap is ``per_connection_max_negotiated`` (see :class:`FlowLimits`); beyond
it the socket is closed with C as before. A pause for an id that is not open is
ignored; the state belongs to the connection, so an id reused after C starts unpaused.
We honour a peer's pause/resume only if we offered the extension ourselves.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import WSMsgType

from .protocol import (
    DEAD_AFTER_SECONDS,
    FLOW_VERSION,
    LIMITS,
    PING_AFTER_SECONDS,
    CloseFrame,
    ConnectionTable,
    ConnState,
    DataFrame,
    Extension,
    Forward,
    Liveness,
    MalformedExtension,
    MalformedFrame,
    OpenFrame,
    PublicEndpoint,
    TableFull,
    build_extension,
    decode_frame,
    encode_close,
    encode_open,
    parse_extension,
    split_payload,
)

log = logging.getLogger(__name__)


class Role(enum.Enum):
    RELAY = "relay"
    CLIENT = "client"


@dataclass(frozen=True)
class FlowLimits:
    # High-water mark of what waits for one socket: past it the WebSocket reader waits
    # for that socket (reference peer), or the peer is asked to pause it (extension).
    # Below half of it, the socket counts as drained again.
    per_connection: int = 256 * 1024
    per_connection_max: int = 1024 * 1024  # reference peer: a socket holding more is closed with C
    # With the flow extension, what the peer had already sent for a connection when our
    # pause reaches it still arrives after we asked: its queue to the WebSocket (its
    # to_websocket, 1 MiB by default, plus one 256 KiB socket read that crossed it), the
    # WebSocket's writer and socket buffers between the two ends (the kernel grows those
    # with the link's bandwidth-delay product; up to 4.4 MB measured on loopback with the
    # relay busy, less on a thin link), and what the peer reads while the pause travels
    # (queued behind at most our own to_websocket). From per_connection that adds up to
    # about 6 MiB; 8 MiB leaves a margin. A socket holding more means the peer does not
    # honour pauses, or a link holds more than this in flight: it is closed with C, as
    # without the extension.
    per_connection_max_negotiated: int = 8 * 1024 * 1024
    per_tunnel: int = 16 * 1024 * 1024
    to_websocket: int = 1024 * 1024
    stall_timeout: float = 1.0  # longest the reader waits for one socket per episode
    # A closed socket first flushes what it holds; one whose reader never reads again
    # is aborted after this long so its buffer is freed.
    close_linger: float = 30.0
    # Flow extension: a socket that has not drained for this long after we paused its
    # peer is given up with C. Its reader has gone away without closing (a hung VMS or
    # player), and meanwhile the camera's end stays open: cameras serve only a few RTSP
    # sessions at once, so a dead viewer must not hold one for ever.
    stalled_close_after: float = 120.0
    connect_timeout: float = 10.0
    # Offer camgate's per-connection pause/resume to the peer (TEXT after the hello). It
    # is used only once the peer has offered it too; off, this end acts as a reference peer.
    announce_flow: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.per_connection <= self.per_connection_max:
            raise ValueError("need 0 < per_connection <= per_connection_max")
        if self.per_connection > self.per_connection_max_negotiated:
            raise ValueError("need per_connection <= per_connection_max_negotiated")


@dataclass(frozen=True)
class LivenessTimes:
    ping_after: float = PING_AFTER_SECONDS
    dead_after: float = DEAD_AFTER_SECONDS

    @property
    def tick(self) -> float:
        return min(1.0, self.ping_after / 4)


# Why a socket is not being read; it is read only while its leg has none.
HELD_BY_TUNNEL = "tunnel"  # our queue to the WebSocket is full
HELD_BY_PEER = "peer"  # the peer asked us to pause this connection (flow extension)


class _Leg(asyncio.Protocol):
    """The TCP side of one client_id: a viewer on the relay, a camera on the client."""

    def __init__(self, session: TunnelSession, index: int, client_id: int | None = None) -> None:
        self.session = session
        self.index = index
        self.client_id = client_id
        self.transport: asyncio.Transport | None = None
        # Client side: bytes that arrive while the camera connection is being opened.
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.connect_task: asyncio.Task[Any] | None = None
        self.ended = False  # closed by either end; never written to again
        # The WebSocket reader stopped waiting for this socket to drain; reset once it has.
        self.given_up = False
        self.counted = 0  # this leg's share of the session's buffered-bytes estimate
        self.holds: set[str] = set()  # reasons not to read the socket (HELD_BY_*)
        self.pause_sent = False  # flow extension: we asked the peer to pause this id
        self.paused_since: float | None = None  # loop time of that pause, while it lasts

    def hold(self, reason: str) -> None:
        if reason not in self.holds:
            self.holds.add(reason)
            if len(self.holds) == 1:
                _pause_reading(self)

    def release(self, reason: str) -> None:
        if reason in self.holds:
            self.holds.discard(reason)
            if not self.holds:
                _resume_reading(self)

    def buffered(self) -> int:
        if self.transport is None:
            return self.pending_bytes
        return self.transport.get_write_buffer_size()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # resume_writing then fires exactly when the reader may stop waiting for us.
        bound = self.session.limits.per_connection
        transport.set_write_buffer_limits(high=bound, low=bound // 2)
        self.session._leg_connected(self)

    def data_received(self, data: bytes) -> None:
        self.session._from_socket(self, data)

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
        *,
        role: Role,
        label: str,
        send_payload_max: int = LIMITS.reference_payload,
        forwards: tuple[Forward, ...] = (),
        max_connections: int = LIMITS.max_connections,
        limits: FlowLimits = FlowLimits(),
        liveness: LivenessTimes = LivenessTimes(),
        on_extension: Callable[[Extension], None] | None = None,
    ) -> None:
        self._ws = ws
        self.role = role
        self.label = label
        self.send_payload_max = send_payload_max
        self.forwards = forwards
        self.limits = limits
        self._liveness_times = liveness
        self._on_extension = on_extension
        self.table: ConnectionTable[_Leg] = ConnectionTable(max_connections)
        self._legs: set[_Leg] = set()  # every leg with a live transport, incl. lingering ones
        self._out: deque[bytes] = deque()
        self._out_bytes = 0
        self._out_ready = asyncio.Event()
        self._sources_paused = False
        self._buffered_estimate = 0
        self._socket_drained = asyncio.Event()
        self._waiting_on: set[_Leg] = set()  # sockets over per_connection, not given up
        self._ended = False
        self._complaints = 0
        self.bytes_to_peer = 0  # D payload bytes sent on the WebSocket
        self.bytes_from_peer = 0  # D payload bytes received from the WebSocket
        # High-water marks, so tests and diagnostics can check the bounds hold.
        self.peak_connection_buffer = 0  # bytes waiting for one socket
        self.peak_queued_to_websocket = 0
        self.pauses = 0  # times the WebSocket reader waited for sockets to drain
        # The flow extension: on once we have offered it and the peer has too.
        self._flow_offered = False
        self._flow_peer = False
        self.pauses_sent = 0  # ids we asked the peer to pause
        self.resumes_sent = 0
        self.pauses_received = 0  # ids the peer asked us to pause (live ones only)
        self._stop = asyncio.Event()

    # --- public ------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        return len(self.table)

    @property
    def queued_to_websocket(self) -> int:
        return self._out_bytes

    def buffered_to_sockets(self) -> int:
        return sum(leg.buffered() for leg in self._legs) + sum(
            leg.pending_bytes for leg in self.table.values() if leg.transport is None
        )

    def viewer_protocol(self, index: int) -> _Leg:
        """Relay side: protocol factory result for a viewer on forward ``index``."""
        return _Leg(self, index)

    @property
    def flow_active(self) -> bool:
        """Per-connection pause/resume is in use: both ends offered it."""
        return self._flow_offered and self._flow_peer

    def announce(
        self, *, max_payload: int | None = None, endpoints: tuple[PublicEndpoint, ...] | None = None
    ) -> None:
        """Queue this end's camgate extension message, right after the hello.

        It offers the flow extension (unless ``limits.announce_flow`` is off) and, from
        the relay, carries ``max_payload`` and the public ports. Nothing is sent when
        there is nothing to say, so a client that does not offer flow control sends
        exactly what the reference agent sends.
        """
        flow = self.limits.announce_flow
        if not flow and max_payload is None and endpoints is None:
            return
        self._flow_offered = self._flow_offered or flow
        self._enqueue(build_extension(flow=flow, max_payload=max_payload, endpoints=endpoints))
        if self.flow_active:
            self._flow_on()

    async def run(self) -> None:
        """Carry frames until the WebSocket closes, the peer dies or :meth:`close` is called."""
        loop = asyncio.get_running_loop()
        self._liveness = Liveness(loop.time(), self._liveness_times.ping_after, self._liveness_times.dead_after)
        tasks = [
            asyncio.create_task(self._read_loop(), name=f"uplink-reader {self.label}"),
            asyncio.create_task(self._write_loop(), name=f"uplink-writer {self.label}"),
            asyncio.create_task(self._watch_liveness(), name=f"uplink-liveness {self.label}"),
            asyncio.create_task(self._stop.wait(), name=f"uplink-stop {self.label}"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    exc = task.exception()
                    log.info("%s: tunnel ends: %s", self.label, str(exc) or type(exc).__name__)
        finally:
            self._ended = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._close_all_legs()
            if not self._ws.closed:
                # The WebSocket's own close timeout (set by its creator) ends the closing
                # handshake with a dead peer; this is only a safety net.
                try:
                    await asyncio.wait_for(self._ws.close(), 3)
                except (asyncio.TimeoutError, OSError):
                    pass

    def close(self) -> None:
        """End the session from outside (the tunnel was replaced or the process stops)."""
        self._stop.set()

    # --- WebSocket -> sockets ------------------------------------------------

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            msg = await self._ws.receive()
            self._liveness.heard(loop.time())
            if msg.type is WSMsgType.BINARY:
                self._on_binary(msg.data)
                if self._waiting_on or self._buffered_estimate > self.limits.per_tunnel:
                    await self._wait_for_sockets_to_drain()
            elif msg.type is WSMsgType.TEXT:
                self._on_text(msg.data)
            elif msg.type is WSMsgType.PING:
                await self._ws.pong(msg.data)
            elif msg.type is WSMsgType.PONG:
                pass
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                if msg.type is WSMsgType.ERROR:
                    log.info("%s: websocket error: %s", self.label, msg.data)
                return

    def _on_binary(self, data: bytes) -> None:
        try:
            frame = decode_frame(data)
        except MalformedFrame as exc:
            self._complain(f"malformed frame ignored: {exc.reason}")
            return
        if isinstance(frame, DataFrame):
            leg = self.table.get(frame.client_id)
            if leg is None:
                self._ignore_unknown(frame)
                return
            self._to_socket(leg, frame.payload)
        elif isinstance(frame, CloseFrame):
            leg = self.table.close_remote(frame.client_id)
            if leg is None:
                self._ignore_unknown(frame)
                return
            self._end_leg(leg, flush=True)
        elif self.role is Role.CLIENT:
            self._open_camera_leg(frame)
        else:
            self._complain(f"O frame from a client ignored (id {frame.client_id})")

    def _on_text(self, text: str) -> None:
        try:
            extension = parse_extension(text)
        except MalformedExtension as exc:
            self._complain(f"camgate extension message ignored: {exc.reason}")
            return
        if extension is None:
            self._complain("TEXT message after the hello ignored")
            return
        if extension.flow is not None and not self._flow_peer:
            if extension.flow != FLOW_VERSION:
                log.info("%s: peer offers flow control version %d, not %d; not used",
                         self.label, extension.flow, FLOW_VERSION)
            else:
                self._flow_peer = True
                if self.flow_active:
                    self._flow_on()
        if extension.max_payload is not None:
            # The peer takes D payloads this large (it would accept them from anyone: a
            # relay must take 64 KiB); larger ones gain nothing and cost memory, and a
            # smaller offer never shrinks what the hello already allows.
            offered = min(extension.max_payload, LIMITS.relay_accepts_payload)
            self.send_payload_max = max(self.send_payload_max, offered)
        if extension.pause or extension.resume:
            if not self._flow_offered:
                # We never offered it: the peer breaks the negotiation. Ignore, as a
                # reference peer would.
                self._complain("pause/resume ignored: this end did not offer flow control")
            else:
                for cid in extension.pause:
                    self._peer_asks(cid, pause=True)
                for cid in extension.resume:
                    self._peer_asks(cid, pause=False)
        if self._on_extension is not None:
            self._on_extension(extension)

    def _flow_on(self) -> None:
        """Both ends offered the flow extension: switch this tunnel to it."""
        log.debug("%s: per-connection flow control on", self.label)
        # Sockets the reader was waiting for are paused at the peer instead.
        self._waiting_on.clear()
        for leg in self.table.values():
            leg.given_up = False
            if leg.buffered() > self.limits.per_connection and not leg.pause_sent:
                self._ask_peer(leg, pause=True)

    def _peer_asks(self, client_id: int, *, pause: bool) -> None:
        leg = self.table.get(client_id)
        if leg is None:
            # A connection already closed (the message crossed our C) or never opened.
            log.debug("%s: %s ignored: %s", self.label, "pause" if pause else "resume",
                      self.table.why_unknown(client_id))
            return
        if pause:
            self.pauses_received += 1
            leg.hold(HELD_BY_PEER)
        else:
            leg.release(HELD_BY_PEER)

    def _ask_peer(self, leg: _Leg, *, pause: bool) -> None:
        """Flow extension: ask the peer to pause (or resume) reading ``leg``'s source."""
        cid = leg.client_id
        if cid is None or self.table.get(cid) is not leg:
            return  # closed: the peer forgets the id on C
        leg.pause_sent = pause
        leg.paused_since = asyncio.get_running_loop().time() if pause else None
        if pause:
            self.pauses_sent += 1
            self._enqueue(build_extension(pause=[cid]))
        else:
            self.resumes_sent += 1
            self._enqueue(build_extension(resume=[cid]))

    def _leg_drained(self, leg: _Leg) -> None:
        """``leg``'s socket drained to half of ``per_connection`` (asyncio's resume_writing)."""
        self._socket_drained.set()
        if leg.pause_sent and not leg.ended:
            self._ask_peer(leg, pause=False)

    def _ignore_unknown(self, frame: DataFrame | CloseFrame) -> None:
        kind = "D" if isinstance(frame, DataFrame) else "C"
        if self.table.was_recently_closed(frame.client_id):
            # Expected: the frame crossed our own C on the wire.
            log.debug("%s: %s ignored: %s", self.label, kind, self.table.why_unknown(frame.client_id))
        else:
            self._complain(f"{kind} ignored: {self.table.why_unknown(frame.client_id)}")

    def _to_socket(self, leg: _Leg, payload: bytes) -> None:
        self.bytes_from_peer += len(payload)
        if leg.transport is None:
            leg.pending.append(payload)
            leg.pending_bytes += len(payload)
        elif not leg.transport.is_closing():  # else the socket is going; C follows
            leg.transport.write(payload)
        size = leg.buffered()
        self._buffered_estimate += size - leg.counted
        leg.counted = size
        if size > self.peak_connection_buffer:
            self.peak_connection_buffer = size
        flow = self.flow_active
        cap = self.limits.per_connection_max_negotiated if flow else self.limits.per_connection_max
        if size > cap:
            self._drop_slow(leg, f"{size} bytes waiting, over the {cap}-byte bound")
        elif size > self.limits.per_connection:
            if flow:
                # The peer stops reading this connection's source; nothing else waits.
                if not leg.pause_sent:
                    self._ask_peer(leg, pause=True)
            elif not leg.given_up:
                self._waiting_on.add(leg)
        elif size <= self.limits.per_connection // 2:
            leg.given_up = False

    def _drop_slow(self, leg: _Leg, why: str) -> None:
        log.warning("%s: closing connection %s, its reader is too slow: %s", self.label, leg.client_id, why)
        self._end_leg_locally(leg, abort=True)

    async def _wait_for_sockets_to_drain(self) -> None:
        """Stop reading the WebSocket while sockets are over their bounds (see module doc)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.pauses += 1
        low = self.limits.per_connection // 2
        tunnel_full = self._recount_buffered() > self.limits.per_tunnel
        while not self._ended:
            self._waiting_on = {leg for leg in self._waiting_on if not leg.ended and leg.buffered() > low}
            total = self._recount_buffered()
            tunnel_full = tunnel_full and total > self.limits.per_tunnel // 2
            if not self._waiting_on and not tunnel_full:
                return
            if loop.time() - started >= self.limits.stall_timeout:
                for leg in self._waiting_on:
                    leg.given_up = True
                    log.info(
                        "%s: connection %s drains too slowly; no longer pausing the tunnel for it",
                        self.label, leg.client_id,
                    )
                self._waiting_on.clear()
                if tunnel_full:
                    victim = max(self._legs | set(self.table.values()), key=_Leg.buffered)
                    self._drop_slow(victim, f"tunnel stalled with {total} bytes waiting")
                started = loop.time()
                continue
            self._socket_drained.clear()
            try:
                await asyncio.wait_for(self._socket_drained.wait(), 0.1)
            except asyncio.TimeoutError:
                pass

    def _recount_buffered(self) -> int:
        total = 0
        for leg in self._legs | set(self.table.values()):
            leg.counted = leg.buffered()
            total += leg.counted
        self._buffered_estimate = total
        return total

    # --- sockets -> WebSocket ------------------------------------------------

    def _from_socket(self, leg: _Leg, data: bytes) -> None:
        if leg.ended or leg.client_id is None or self._ended:
            return
        self.bytes_to_peer += len(data)
        for frame in split_payload(leg.client_id, data, self.send_payload_max):
            self._enqueue(frame)

    def _enqueue(self, message: bytes | str) -> None:
        if self._ended:
            return
        self._out.append(message)
        self._out_bytes += len(message)
        if self._out_bytes > self.peak_queued_to_websocket:
            self.peak_queued_to_websocket = self._out_bytes
        self._out_ready.set()
        if not self._sources_paused and self._out_bytes > self.limits.to_websocket:
            self._sources_paused = True
            for leg in self._legs:
                leg.hold(HELD_BY_TUNNEL)

    async def _write_loop(self) -> None:
        while True:
            while not self._out:
                self._out_ready.clear()
                await self._out_ready.wait()
            message = self._out.popleft()
            self._out_bytes -= len(message)
            if self._sources_paused and self._out_bytes <= self.limits.to_websocket // 2:
                self._sources_paused = False
                for leg in list(self._legs):
                    leg.release(HELD_BY_TUNNEL)
            if isinstance(message, str):
                await self._ws.send_str(message)
            else:
                await self._ws.send_bytes(message)

    # --- legs ----------------------------------------------------------------

    def _leg_connected(self, leg: _Leg) -> None:
        transport = leg.transport
        assert transport is not None
        if self._ended or leg.ended:
            transport.abort()
            return
        self._legs.add(leg)
        if self.role is Role.RELAY:
            try:
                leg.client_id = self.table.allocate(leg)
            except TableFull as exc:
                log.warning("%s: viewer refused on forward %d: %s", self.label, leg.index, exc)
                leg.ended = True
                transport.abort()
                return
            self._enqueue(encode_open(leg.client_id, leg.index))
        else:
            assert leg.client_id is not None
            if leg.pending:
                transport.write(b"".join(leg.pending))
            leg.pending.clear()
            leg.pending_bytes = 0
            self.table.mark_open(leg.client_id)
            self._socket_drained.set()
            if leg.pause_sent and leg.buffered() <= self.limits.per_connection:
                # Over per_connection asyncio has paused our writing and its
                # resume_writing will say when to resume; below, it never would.
                self._ask_peer(leg, pause=False)
        if self._sources_paused:
            leg.holds.add(HELD_BY_TUNNEL)
        if leg.holds:  # the peer may have paused an id still connecting
            transport.pause_reading()

    def _leg_lost(self, leg: _Leg) -> None:
        self._socket_drained.set()
        self._legs.discard(leg)
        self._buffered_estimate -= leg.counted
        leg.counted = 0
        self._end_leg_locally(leg, abort=False)

    def _end_leg_locally(self, leg: _Leg, *, abort: bool) -> None:
        """Our end of ``leg`` is gone: tell the peer with one C (if it was still live)."""
        if leg.client_id is not None and self.table.get(leg.client_id) is leg:
            self.table.close_local(leg.client_id)
            self._enqueue(encode_close(leg.client_id))
        self._end_leg(leg, flush=not abort)

    def _end_leg(self, leg: _Leg, *, flush: bool) -> None:
        leg.ended = True
        self._waiting_on.discard(leg)
        leg.pending.clear()
        leg.pending_bytes = 0
        if leg.connect_task is not None and not leg.connect_task.done():
            leg.connect_task.cancel()
        transport = leg.transport
        if transport is None:
            return
        if not flush:
            transport.abort()  # also frees what a closing transport still holds
        elif not transport.is_closing():
            transport.close()  # writes what is buffered first, then closes
            asyncio.get_running_loop().call_later(self.limits.close_linger, transport.abort)

    def _close_all_legs(self) -> None:
        for leg in self.table.values():
            self.table.close_local(leg.client_id)  # no C: the WebSocket is gone
            self._end_leg(leg, flush=True)
        for leg in list(self._legs):
            self._end_leg(leg, flush=True)

    # --- client side: O opens a camera connection -------------------------------

    def _open_camera_leg(self, frame: OpenFrame) -> None:
        cid = frame.client_id
        if frame.index >= len(self.forwards):
            self._complain(f"O for forward {frame.index}, which the hello did not name; refused")
            self._refuse(cid)
            return
        leg = _Leg(self, frame.index, cid)
        try:
            displaced = self.table.register(cid, leg, ConnState.OPENING)
        except TableFull as exc:
            self._complain(f"O for id {cid} refused: {exc}")
            self._refuse(cid)
            return
        if displaced is not None:
            # The relay reused an id it considers closed; drop ours without a C.
            log.warning("%s: relay reopened live id %d; closing the old connection", self.label, cid)
            self._end_leg(displaced, flush=False)
        forward = self.forwards[frame.index]
        leg.connect_task = asyncio.create_task(
            self._connect(leg, forward), name=f"uplink-connect {self.label} #{cid}"
        )

    def _refuse(self, client_id: int) -> None:
        if client_id not in self.table:
            self._enqueue(encode_close(client_id))

    async def _connect(self, leg: _Leg, forward: Forward) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: leg, forward.host, forward.port),
                self.limits.connect_timeout,
            )
        except Exception as exc:  # refused, unreachable, timed out, bad host name...
            if isinstance(exc, asyncio.TimeoutError):
                reason = "timed out"
            else:
                reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            log.info(
                "%s: cannot reach %s at %s:%d for id %s: %s",
                self.label, forward.name, forward.host, forward.port, leg.client_id, reason,
            )
            self._end_leg_locally(leg, abort=True)

    # --- liveness ------------------------------------------------------------

    async def _watch_liveness(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._liveness_times.tick)
            self._close_stalled(loop.time())
            verdict = self._liveness.poll(loop.time())
            if verdict == Liveness.PING:
                await self._ws.ping()
            elif verdict == Liveness.DEAD:
                log.warning(
                    "%s: peer silent for %gs, closing the tunnel", self.label, self._liveness_times.dead_after
                )
                return

    def _close_stalled(self, now: float) -> None:
        limit = self.limits.stalled_close_after
        for leg in self.table.values():
            if leg.paused_since is not None and now - leg.paused_since > limit and not leg.ended:
                self._drop_slow(leg, f"nothing drained for {limit:g} s")

    def _complain(self, message: str) -> None:
        # A misbehaving peer could flood the log; say the first few, then every 1000th.
        self._complaints += 1
        if self._complaints <= 20 or self._complaints % 1000 == 0:
            log.warning("%s: %s (%d so far)", self.label, message, self._complaints)


def _pause_reading(leg: _Leg) -> None:
    if leg.transport is not None and not leg.transport.is_closing():
        leg.transport.pause_reading()


def _resume_reading(leg: _Leg) -> None:
    if leg.transport is not None and not leg.transport.is_closing():
        leg.transport.resume_reading()
