"""One end of a live tunnel, with no I/O in it (the sans-I/O style of h11 and wsproto).

A :class:`TunnelConnection` holds everything one end knows about its tunnel after the
hello, and makes every decision about it. Its caller (:mod:`.session`) only moves bytes:
it hands over each message that arrives on the WebSocket and each thing that happens to
a TCP socket, and carries out the events that come back (:mod:`.events`), in order.
Nothing here reads a clock, a socket or a task, so each rule can be tested by calling
it.

What the connection owns:

* the O/D/C frames and the table of live client ids (C at most once per id);
* camgate's extension (TEXT after the hello): the offer of per-connection flow control,
  used once both ends offered it; a peer's pause/resume, honoured only if we offered;
  the largest D payload each end sends;
* flow control: what waits for each socket and for the WebSocket, when to ask the peer
  to pause a connection or resume it, when to stop reading sockets or the WebSocket,
  and when a connection must be closed (described in :mod:`.flow`).

Errors: input from the peer that breaks the protocol is never fatal (the spec says so)
and comes back as :class:`~.events.Ignored`, saying why. A call that breaks this class's
own rules is a bug in the caller and raises :class:`LocalProtocolError`.
"""

from __future__ import annotations

import enum
from operator import attrgetter
from typing import Any, Iterable, Sequence

from .events import (
    Closed, Data, Dropped, Endpoints, Event, FlowOffered, Ignored, Opened, PauseRequested, ResumeRequested, Send,
    StoppedWaiting,
)
from .flow import Channel, FlowLimits
from .client_ids import ConnectionTable, TableFull
from .protocol import (
    FLOW_VERSION, LIMITS, CloseFrame, DataFrame, Hello, MalformedExtension, MalformedFrame,
    ProtocolError, PublicEndpoint, build_extension, decode_frame, encode_close, encode_data, encode_open,
    parse_extension, split_payload,
)

NOTHING: Sequence[Event] = ()  # the usual answer; a shared empty tuple costs nothing


class Role(enum.Enum):
    RELAY = "relay"
    CLIENT = "client"


class LocalProtocolError(ProtocolError):
    """This end's own code broke the protocol (a bug here, never the peer's doing)."""


class TunnelConnection:
    """One end (``role``) of the tunnel whose hello is ``hello``."""

    def __init__(
        self,
        role: Role,
        hello: Hello,
        *,
        max_connections: int = LIMITS.max_connections,
        limits: FlowLimits = FlowLimits(),
    ) -> None:
        self.role = role
        self.forwards = hello.forwards
        self.limits = limits
        # What each end may put in one D payload until the peer says more: the hello's
        # websocket_buffer_size (the reference agent's own limit; it is also what it
        # takes). The relay never sends more than 64 KiB on a hello's word alone: only
        # a camgate client's max_payload (the extension) raises it further.
        size = hello.websocket_buffer_size
        self.send_payload_max = size if role is Role.CLIENT else min(size, LIMITS.relay_accepts_payload)
        self.table: ConnectionTable[Channel] = ConnectionTable(max_connections)
        self._closing: set[Channel] = set()  # closed ids whose sockets still hold bytes
        self._announced = False
        self._flow_offered = False
        self._flow_peer = False
        self._sockets_held = False  # our queue to the WebSocket is full
        self._waiting_on: set[Channel] = set()  # sockets the reader waits for (see check_wait)
        self._wait_started: float | None = None
        self._tunnel_full = False
        self.queued_to_websocket = 0  # bytes of the Send events not yet reported sent
        self.buffered_to_sockets = 0  # bytes waiting for sockets, as last reported
        self.bytes_to_peer = 0  # D payload bytes sent on the WebSocket
        self.bytes_from_peer = 0  # D payload bytes received from the WebSocket
        # High-water marks and counts, so tests and diagnostics can check the bounds hold.
        self.peak_connection_buffer = 0
        self.peak_queued_to_websocket = 0
        self.pauses = 0  # times the WebSocket reader waited for sockets to drain
        self.pauses_sent = 0  # ids we asked the peer to pause
        self.resumes_sent = 0
        self.pauses_received = 0  # ids the peer asked us to pause (live ones only)

    @property
    def flow_active(self) -> bool:
        """Per-connection pause/resume is in use: both ends offered it."""
        return self._flow_offered and self._flow_peer

    @property
    def open_connections(self) -> int:
        return len(self.table)

    @property
    def socket_water_marks(self) -> tuple[int, int]:
        """Where the caller's sockets count as full and as drained: it reports a socket
        drained (:meth:`socket_drained`) when what waits falls to the second."""
        return self.limits.per_connection, self.limits.per_connection // 2

    # --- the WebSocket ---------------------------------------------------------

    def announce(self, endpoints: tuple[PublicEndpoint, ...] | None = None) -> Sequence[Event]:
        """This end's camgate extension message, sent right after the hello.

        It offers the flow extension (unless ``limits.announce_flow`` is off) and D
        payloads up to 256 KiB (``LIMITS.camgate_payload``); the relay adds its public ports. A client that does not
        offer flow control says nothing at all, exactly as the reference agent.
        """
        if self.role is Role.CLIENT and endpoints is not None:
            raise LocalProtocolError("only a relay says where it publishes the forwards")
        if self._announced:
            raise LocalProtocolError("the extension message is sent once, after the hello")
        self._announced = True
        flow = self.limits.announce_flow
        if self.role is Role.CLIENT and not flow:
            return NOTHING
        self._flow_offered = flow
        events: list[Event] = []
        self._queue(events, build_extension(flow=flow, max_payload=LIMITS.camgate_payload, endpoints=endpoints))
        if self.flow_active:
            self._flow_on(events)
        return events

    def receive_binary(self, data: bytes | bytearray | memoryview) -> Sequence[Event]:
        """A BINARY message from the peer. Its buffer must not change afterwards: a D
        payload is passed on as a view of it, not copied."""
        if len(data) > 3 and data[0] == 0x44:  # a D frame: nearly every message, decoded here
            client_id = data[1] | data[2] << 8  # little-endian (spec, section 4)
            channel = self.table.get(client_id)
            if channel is None:
                return [self._unknown("D", client_id)]
            payload = memoryview(data)[3:]
            self.bytes_from_peer += len(payload)
            return [Data(client_id, payload, channel)]
        try:
            frame = decode_frame(data)
        except MalformedFrame as exc:
            return [Ignored(f"malformed frame ignored: {exc.reason}")]
        if type(frame) is DataFrame:
            channel = self.table.get(frame.client_id)
            if channel is None:
                return [self._unknown("D", frame.client_id)]
            self.bytes_from_peer += len(frame.payload)
            return [Data(frame.client_id, frame.payload, channel)]
        if type(frame) is CloseFrame:
            channel = self.table.close_remote(frame.client_id)
            if channel is None:
                return [self._unknown("C", frame.client_id)]
            self._retire(channel)
            return [Closed(frame.client_id, channel)]
        if self.role is Role.RELAY:
            return [Ignored(f"O frame from a client ignored (id {frame.client_id})")]
        return self._opened_by_relay(frame.client_id, frame.index)

    def receive_text(self, text: str | bytes) -> Sequence[Event]:
        """A TEXT message from the peer after the hello: camgate's extension, or ignored."""
        try:
            extension = parse_extension(text)
        except MalformedExtension as exc:
            return [Ignored(f"camgate extension message ignored: {exc.reason}")]
        if extension is None:
            return [Ignored("TEXT message after the hello ignored")]
        events: list[Event] = []
        if extension.flow is not None and not self._flow_peer:
            used = extension.flow == FLOW_VERSION
            events.append(FlowOffered(extension.flow, used))
            if used:
                self._flow_peer = True
                if self.flow_active:
                    self._flow_on(events)
        if extension.max_payload is not None:
            # The peer takes D payloads this large (a relay must take 64 KiB from anyone);
            # past what camgate's ends take from each other, larger ones gain nothing and
            # cost memory, and a smaller offer never shrinks what the hello allows.
            offered = min(extension.max_payload, LIMITS.camgate_payload)
            self.send_payload_max = max(self.send_payload_max, offered)
        if extension.pause or extension.resume:
            if not self._flow_offered:
                # The peer breaks the negotiation; ignore it, as a reference peer would.
                events.append(Ignored("pause/resume ignored: this end did not offer flow control"))
            else:
                for cid in extension.pause:
                    self._peer_asks(events, cid, pause=True)
                for cid in extension.resume:
                    self._peer_asks(events, cid, pause=False)
        if extension.endpoints is not None and self.role is Role.CLIENT:
            events.append(Endpoints(extension.endpoints))
        return events

    def sent(self, size: int) -> Sequence[Event]:
        """The caller wrote a message of ``size`` (its ``len``) to the WebSocket."""
        self.queued_to_websocket -= size
        if self._sockets_held and self.queued_to_websocket <= self.limits.to_websocket // 2:
            self._sockets_held = False
            return [ResumeRequested(ch.client_id, ch) for ch in self.table.values() if not ch.held_by_peer]
        return NOTHING

    # --- the sockets -------------------------------------------------------------

    def open_viewer(self, index: int, socket: Any = None) -> tuple[Channel, Sequence[Event]]:
        """(relay) A viewer connected to forward ``index``: its channel, and the O to send.

        Raises :class:`~.client_ids.TableFull` when the tunnel has all the connections it
        may have; the caller refuses the viewer.
        """
        if self.role is not Role.RELAY:
            raise LocalProtocolError("only the relay opens connections")
        if not 0 <= index < len(self.forwards):
            raise LocalProtocolError(f"forward {index} is not in the hello")
        channel = Channel(-1, index, socket)
        channel.client_id = self.table.allocate(channel)
        events: list[Event] = []
        self._queue(events, encode_open(channel.client_id, index))
        if self._sockets_held:
            events.append(PauseRequested(channel.client_id, channel))
        return channel, events

    def socket_connected(self, channel: Channel, buffered: int) -> Sequence[Event]:
        """(client) The camera socket for ``channel`` is up, holding ``buffered`` bytes
        (what arrived while it was being opened)."""
        events: list[Event] = []
        self._account(channel, buffered)
        if channel.live and channel.pause_sent and buffered <= self.limits.per_connection:
            # Over per_connection the socket says when it drains (socket_drained); below
            # it, it never would.
            self._ask_peer(events, channel, pause=False)
        if channel.held_by_peer or self._sockets_held:
            events.append(PauseRequested(channel.client_id, channel))
        return events

    def send_data(self, channel: Channel, data: bytes) -> Sequence[Event]:
        """Bytes read from ``channel``'s socket: the D frames that carry them."""
        if not channel.live:
            return NOTHING
        self.bytes_to_peer += len(data)
        events: list[Event] = []
        if len(data) <= self.send_payload_max:
            self._queue(events, encode_data(channel.client_id, data))
        else:
            for frame in split_payload(channel.client_id, data, self.send_payload_max):
                self._queue(events, frame)
        return events

    def send_read(self, channel: Channel, frame: bytearray) -> Sequence[Event]:
        """Bytes read from ``channel``'s socket straight into a D frame's place: ``frame``
        holds them from its fourth byte on, at most :attr:`send_payload_max` of them, and
        this fills in its first three. The frame is sent as it is: nothing copied."""
        if not channel.live:
            return NOTHING
        client_id = channel.client_id
        frame[0], frame[1], frame[2] = 0x44, client_id & 0xFF, client_id >> 8  # D, id little-endian
        self.bytes_to_peer += len(frame) - 3
        events: list[Event] = []
        self._queue(events, frame)
        return events

    def socket_buffered(self, channel: Channel, size: int) -> Sequence[Event]:
        """``size`` bytes now wait for ``channel``'s socket (reported after each write)."""
        self.buffered_to_sockets += size - channel.buffered  # _account, inlined: once per frame
        channel.buffered = size
        if size > self.peak_connection_buffer:
            self.peak_connection_buffer = size
        limits = self.limits
        if not channel.live or size <= limits.per_connection:
            if size <= limits.per_connection // 2:
                channel.given_up = False
            return NOTHING
        if not self.flow_active:
            if size > limits.per_connection_max:
                return self._drop(channel, f"{size} bytes waiting, over the {limits.per_connection_max}-byte bound")
            if not channel.given_up:
                self._waiting_on.add(channel)
            return NOTHING
        cap = limits.per_connection_max_negotiated
        if size > cap and channel.given_up:
            why = f"{size} bytes waiting, over the {cap}-byte bound, not drained within {limits.stall_timeout:g} s"
            return self._drop(channel, why)
        events: list[Event] = []
        if not channel.pause_sent:
            # The peer stops reading this connection's source; nothing else waits...
            self._ask_peer(events, channel, pause=True)
        if size > cap:
            # ...unless more was already on its way than we hold for one socket. TCP
            # holds the rest while the reader waits; a reader that keeps up reads it.
            self._waiting_on.add(channel)
        return events

    def socket_drained(self, channel: Channel, size: int) -> Sequence[Event]:
        """``channel``'s socket drained to ``size``, down to its low-water mark."""
        self._account(channel, size)
        channel.given_up = False
        events: list[Event] = []
        if channel.live and channel.pause_sent:
            self._ask_peer(events, channel, pause=False)
        return events

    def socket_lost(self, channel: Channel) -> Sequence[Event]:
        """``channel``'s socket is gone (closed, failed to connect, or abandoned): a C
        if the id was still open; its bytes no longer count."""
        events: list[Event] = []
        if channel.live:
            self.table.close_local(channel.client_id)
            self._retire(channel)
            self._queue(events, encode_close(channel.client_id))
        self._closing.discard(channel)
        self._account(channel, 0)
        return events

    # --- time ----------------------------------------------------------------------

    @property
    def reader_must_wait(self) -> bool:
        """Stop reading the WebSocket until :meth:`check_wait` says otherwise."""
        return bool(self._waiting_on) or self.buffered_to_sockets > self.limits.per_tunnel

    def check_wait(self, now: float, sizes: Iterable[tuple[Channel, int]]) -> tuple[bool, Sequence[Event]]:
        """While the reader waits: whether it still must, and what to do first.

        ``sizes`` gives what waits for every socket the caller still has, live or
        closing. The caller asks again whenever a socket drains, or every so often.
        """
        total = 0
        for channel, size in sizes:
            channel.buffered = size
            total += size
        self.buffered_to_sockets = total
        limits = self.limits
        if self._wait_started is None:
            self.pauses += 1
            self._wait_started = now
            self._tunnel_full = total > limits.per_tunnel
        low = limits.per_connection // 2
        self._waiting_on = {ch for ch in self._waiting_on if ch.live and ch.buffered > low}
        self._tunnel_full = self._tunnel_full and total > limits.per_tunnel // 2
        if not self._waiting_on and not self._tunnel_full:
            self._wait_started = None
            return False, NOTHING
        if now - self._wait_started < limits.stall_timeout:
            return True, NOTHING
        # Waited a whole stall_timeout: stop waiting for those sockets (they may fill up
        # to their hard bound), and if the tunnel as a whole holds too much, close the
        # connection holding the most.
        events: list[Event] = [StoppedWaiting(ch.client_id) for ch in self._waiting_on]
        for channel in self._waiting_on:
            channel.given_up = True
        self._waiting_on.clear()
        if self._tunnel_full:
            victim = max([*self.table.values(), *self._closing], key=attrgetter("buffered"))
            events += self._drop(victim, f"tunnel stalled with {total} bytes waiting")
        self._wait_started = now
        return True, events

    def poll(self, now: float) -> Sequence[Event]:
        """Called every second or so: gives up connections paused for too long.

        A pause is timed from the first poll after it was sent (this class reads no
        clock), so it may last up to one poll interval longer than the limit.
        """
        limit = self.limits.stalled_close_after
        events: list[Event] = []
        for channel in self.table.values():
            if not channel.pause_sent:
                continue
            if channel.paused_since is None:
                channel.paused_since = now
            elif now - channel.paused_since > limit:
                events += self._drop(channel, f"nothing drained for {limit:g} s")
        return events

    # --- inside --------------------------------------------------------------------

    def _queue(self, events: list[Event], message: bytes | str) -> None:
        events.append(Send(message))
        self.queued_to_websocket += len(message)
        if self.queued_to_websocket > self.peak_queued_to_websocket:
            self.peak_queued_to_websocket = self.queued_to_websocket
        if not self._sockets_held and self.queued_to_websocket > self.limits.to_websocket:
            self._sockets_held = True
            events.extend(PauseRequested(ch.client_id, ch) for ch in self.table.values() if not ch.held_by_peer)

    def _account(self, channel: Channel, size: int) -> None:
        self.buffered_to_sockets += size - channel.buffered
        channel.buffered = size
        if size > self.peak_connection_buffer:
            self.peak_connection_buffer = size

    def _retire(self, channel: Channel) -> None:
        """``channel``'s id is closed; its socket may still hold bytes."""
        channel.live = False
        self._waiting_on.discard(channel)
        self._closing.add(channel)

    def _drop(self, channel: Channel, why: str) -> Sequence[Event]:
        events: list[Event] = []
        if channel.live:
            self.table.close_local(channel.client_id)
            self._retire(channel)
            self._queue(events, encode_close(channel.client_id))
        events.append(Dropped(channel.client_id, f"its reader is too slow: {why}", channel))
        return events

    def _unknown(self, kind: str, client_id: int) -> Ignored:
        # A frame for an id just closed is expected: it crossed our own C on the wire.
        why = self.table.why_unknown(client_id)
        return Ignored(f"{kind} ignored: {why}", expected=self.table.was_recently_closed(client_id))

    def _opened_by_relay(self, client_id: int, index: int) -> Sequence[Event]:
        if index >= len(self.forwards):
            reason = f"O for forward {index}, which the hello did not name; refused"
            return [Ignored(reason), *self._refuse(client_id)]
        channel = Channel(client_id, index)
        try:
            displaced = self.table.register(client_id, channel)
        except TableFull as exc:
            return [Ignored(f"O for id {client_id} refused: {exc}"), *self._refuse(client_id)]
        events: list[Event] = []
        if displaced is not None:
            # The relay reused an id it considers closed: drop ours without a C.
            self._retire(displaced)
            events.append(Dropped(client_id, "the relay opened its id again", displaced))
        events.append(Opened(client_id, index, channel))
        return events

    def _refuse(self, client_id: int) -> Sequence[Event]:
        if client_id in self.table:
            return NOTHING  # a live connection has that id; it stays
        events: list[Event] = []
        self._queue(events, encode_close(client_id))
        return events

    def _flow_on(self, events: list[Event]) -> None:
        """Both ends offered the flow extension: sockets the reader was waiting for are
        paused at the peer instead."""
        self._waiting_on.clear()
        for channel in self.table.values():
            channel.given_up = False
            if channel.buffered > self.limits.per_connection and not channel.pause_sent:
                self._ask_peer(events, channel, pause=True)

    def _ask_peer(self, events: list[Event], channel: Channel, *, pause: bool) -> None:
        channel.pause_sent = pause
        channel.paused_since = None
        if pause:
            self.pauses_sent += 1
            self._queue(events, build_extension(pause=[channel.client_id]))
        else:
            self.resumes_sent += 1
            self._queue(events, build_extension(resume=[channel.client_id]))

    def _peer_asks(self, events: list[Event], client_id: int, *, pause: bool) -> None:
        channel = self.table.get(client_id)
        if channel is None:
            # A connection already closed (the message crossed our C) or never opened.
            why = self.table.why_unknown(client_id)
            events.append(Ignored(f"{'pause' if pause else 'resume'} ignored: {why}", expected=True))
            return
        if pause:
            self.pauses_received += 1
            if not channel.held_by_peer:
                channel.held_by_peer = True
                if not self._sockets_held:
                    events.append(PauseRequested(client_id, channel))
        elif channel.held_by_peer:
            channel.held_by_peer = False
            if not self._sockets_held:
                events.append(ResumeRequested(client_id, channel))
