"""The front's asyncio server: whole requests in, under deadlines; one at a time to the app.

Each client connection costs a few kilobytes here while its request arrives, however
slowly, instead of one of gunicorn's few threads. Only a complete request (head and
body) goes to the app server, in one write, on a fresh Unix-socket connection; its
answer comes back as it is, and the client's connection is closed after it.

What a client can cost is bounded: the head must arrive within `head_timeout` of the
connection's start, the body must keep coming (`body_idle_timeout` between reads), the
answer must keep being taken (`send_timeout`), and at most `max_clients` connections are
held (and a listener's own `max_clients`, if it has one). When that many are open, the
one that has waited longest for its request to arrive is dropped to make room: a slow
client is always older than a normal one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from functools import partial

from camgate.front.request_head import (
    BadRequest,
    ChunkedBody,
    RequestHead,
    body_length,
    error_response,
    find_head_end,
    parse_head,
    upstream_request,
    wants_continue,
)

log = logging.getLogger("camgate.front")

APP_UNAVAILABLE = "The gateway web service is not answering; try again shortly."
READ_SIZE = 64 * 1024
LINGER_S = 2.0  # after an early refusal, how long the rest of a request may still come
APP_CONNECT_TIMEOUT_S = 5.0
REPORT_EVERY_S = 60.0


@dataclass(frozen=True)
class FrontLimits:
    head_timeout: float = 10.0  # the whole request head, counted from the connection's start
    body_idle_timeout: float = 30.0  # between two reads of a body (nginx's client_body_timeout)
    app_timeout: float = 60.0  # for the app's answer to start, and between two of its reads
    send_timeout: float = 30.0  # a client that takes none of its answer for this long is dropped
    max_head_bytes: int = 32 * 1024
    max_body_bytes: int = 1024 * 1024
    max_clients: int = 4096
    # Of the app's answer, held for a slow reader before the app is made to wait: every
    # page and API answer fits, so a slow reader does not hold a gunicorn thread.
    response_buffer: int = 1024 * 1024


@dataclass(frozen=True)
class Listener:
    host: str
    port: int
    from_tunnel: bool = False  # requests here are marked as the gateway tunnel's
    max_clients: int | None = None  # held at once on this listener (FrontLimits' for all)


class _Door:
    """One listener's clients: how many, and which are still sending their request."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.clients = 0
        self.waiting: dict[asyncio.StreamWriter, None] = {}  # oldest first


class _ClientGone(Exception):
    """The client closed, or never sent a byte before its deadline: nothing to answer."""


class Front:
    def __init__(self, app_socket: str, limits: FrontLimits = FrontLimits()) -> None:
        self.app_socket = app_socket
        self.limits = limits
        self.clients = 0
        self.counts: Counter[str] = Counter()  # what was refused or dropped, for the log
        # Connections whose request has not fully arrived, oldest first: who gives way.
        self._waiting: dict[asyncio.StreamWriter, _Door] = {}
        self._servers: list[asyncio.Server] = []
        self._idle = asyncio.Event()
        self._idle.set()

    async def listen(self, listener: Listener) -> asyncio.Server:
        server = await asyncio.start_server(
            partial(self._client, _Door(listener)), listener.host.strip("[]"), listener.port,
            backlog=1024, reuse_address=True,
        )
        self._servers.append(server)
        return server

    async def close(self, grace: float) -> None:
        """Stop listening, drop clients still sending, let answers in progress finish."""
        for server in self._servers:
            server.close()
        for writer in list(self._waiting):
            writer.transport.abort()
        try:
            async with asyncio.timeout(grace):
                await self._idle.wait()
        except TimeoutError:
            log.warning("%d answers still in progress at shutdown; closing them", self.clients)

    async def report(self) -> None:
        """Log what was refused or dropped, at most once a minute (a flood of slow clients
        must not become a flood of log lines)."""
        while True:
            await asyncio.sleep(REPORT_EVERY_S)
            if self.counts:
                summary = ", ".join(f"{count} {what}" for what, count in sorted(self.counts.items()))
                log.warning("web front, last %.0f s: %s", REPORT_EVERY_S, summary)
                self.counts.clear()

    # --- one client connection ----------------------------------------------------

    async def _client(self, door: _Door, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._make_room(door):
            self.counts["connections refused (all busy with the app)"] += 1
            writer.transport.abort()
            return
        self.clients += 1
        door.clients += 1
        self._idle.clear()
        self._wait(writer, door)
        try:
            await self._exchange(reader, writer, door.listener.from_tunnel)
        except (_ClientGone, ConnectionError):
            pass
        except Exception:
            log.exception("web front: unexpected error with a client")
        finally:
            self._done_waiting(writer)
            writer.transport.abort()  # a no-op once closed cleanly
            door.clients -= 1
            self.clients -= 1
            if not self.clients:
                self._idle.set()

    def _make_room(self, door: _Door) -> bool:
        """Room for one more client at this door: drop the one that has waited longest
        for its own request, at the door if it is full, else anywhere if all are."""
        if door.listener.max_clients is not None and door.clients >= door.listener.max_clients:
            if not self._evict(next(iter(door.waiting), None)):
                return False
        if self.clients >= self.limits.max_clients:
            return self._evict(next(iter(self._waiting), None))
        return True

    def _evict(self, writer: asyncio.StreamWriter | None) -> bool:
        if writer is None:
            return False
        self._done_waiting(writer)
        writer.transport.abort()
        self.counts["slow connections dropped to make room"] += 1
        return True

    def _wait(self, writer: asyncio.StreamWriter, door: _Door) -> None:
        self._waiting[writer] = door
        door.waiting[writer] = None

    def _done_waiting(self, writer: asyncio.StreamWriter) -> None:
        door = self._waiting.pop(writer, None)
        if door is not None:
            door.waiting.pop(writer, None)

    async def _exchange(self, reader, writer, from_tunnel: bool) -> None:
        peer, local = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
        if not peer or not local:
            raise _ClientGone  # reset before asyncio could ask who it was
        head = None
        try:
            head, rest = await self._read_head(reader)
            length = body_length(head, self.limits.max_body_bytes)
            body = await self._read_body(reader, writer, head, length, rest)
        except BadRequest as refusal:
            self.counts[f"requests refused with {refusal.status}"] += 1
            await self._refuse(reader, writer, refusal, head.path if head else "")
            return
        self._done_waiting(writer)
        had_body = length is None or bool(head.values(b"content-length"))
        request = upstream_request(head, len(body), peer=peer, local=local, from_tunnel=from_tunnel, had_body=had_body)
        await self._pass_to_app(request + body, writer, head.path)

    async def _read_head(self, reader: asyncio.StreamReader) -> tuple[RequestHead, bytes]:
        buffer = bytearray()
        try:
            async with asyncio.timeout(self.limits.head_timeout):
                while True:
                    data = await reader.read(READ_SIZE)
                    if not data:
                        raise _ClientGone
                    searched = len(buffer) - 3
                    buffer += data
                    if buffer[:1] in (b"\r", b"\n"):
                        # Blank lines before a request are allowed (RFC 9112, 2.2).
                        buffer = bytearray(buffer.lstrip(b"\r\n"))
                        searched = 0
                    end = find_head_end(buffer, searched)
                    if end is not None and end.start() <= self.limits.max_head_bytes:
                        return parse_head(bytes(buffer[: end.start()])), bytes(buffer[end.end():])
                    if len(buffer) > self.limits.max_head_bytes:
                        raise BadRequest(431, f"The request head is larger than {self.limits.max_head_bytes} bytes.")
        except TimeoutError:
            self.counts["connections closed before a whole request head came"] += 1
            if not buffer:
                raise _ClientGone from None
            raise BadRequest(408, f"The request head did not arrive within {self.limits.head_timeout:g} s.") from None

    async def _read_body(self, reader, writer, head: RequestHead, length: int | None, rest: bytes) -> bytes:
        if length == 0:
            return b""
        if wants_continue(head) and not rest:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if length is None:
            chunked = ChunkedBody(self.limits.max_body_bytes)
            chunked.feed(rest)
            while not chunked.done:
                chunked.feed(await self._read_body_part(reader, READ_SIZE))
            return bytes(chunked.body)
        body = bytearray(rest[:length])
        while len(body) < length:
            body += await self._read_body_part(reader, min(READ_SIZE, length - len(body)))
        return bytes(body)

    async def _read_body_part(self, reader: asyncio.StreamReader, size: int) -> bytes:
        try:
            async with asyncio.timeout(self.limits.body_idle_timeout):
                data = await reader.read(size)
        except TimeoutError:
            raise BadRequest(408, f"The request body stopped arriving for {self.limits.body_idle_timeout:g} s.") from None
        if not data:
            raise _ClientGone
        return data

    async def _refuse(self, reader, writer, refusal: BadRequest, path: str) -> None:
        """Answer a refusal, then read and drop what the client still sends for a moment:
        closing with its unread bytes pending would reset the connection, and the
        client could lose the answer. It stays among the waiting meanwhile: the first
        to give way if room is needed."""
        writer.write(error_response(refusal.status, refusal.message, path))
        try:
            writer.write_eof()
            async with asyncio.timeout(LINGER_S):
                while await reader.read(READ_SIZE):
                    pass
        except (TimeoutError, OSError):
            pass
        await self._finish(writer)

    async def _pass_to_app(self, request: bytes, writer: asyncio.StreamWriter, path: str) -> None:
        try:
            async with asyncio.timeout(APP_CONNECT_TIMEOUT_S):
                app_reader, app_writer = await asyncio.open_unix_connection(self.app_socket)
        except (OSError, TimeoutError):
            self.counts["requests answered 502 (app server unreachable)"] += 1
            writer.write(error_response(502, APP_UNAVAILABLE, path))
            await self._finish(writer)
            return
        try:
            app_writer.write(request)
            if await self._relay_answer(app_reader, writer, path):
                await self._finish(writer)
        finally:
            app_writer.transport.abort()

    async def _relay_answer(self, app_reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bool:
        """Copy the app's answer to the client; False when the client is beyond saving."""
        answered = False
        while True:
            try:
                async with asyncio.timeout(self.limits.app_timeout):
                    data = await app_reader.read(READ_SIZE)
            except TimeoutError:
                self.counts["requests the app did not answer in time"] += 1
                if answered:
                    return False
                writer.write(error_response(504, APP_UNAVAILABLE, path))
                return True
            if not data:
                break
            if writer.transport.is_closing():
                return False
            answered = True
            writer.write(data)
            if writer.transport.get_write_buffer_size() > self.limits.response_buffer:
                try:
                    async with asyncio.timeout(self.limits.send_timeout):
                        await writer.drain()
                except TimeoutError:
                    self.counts["clients dropped for not reading their answer"] += 1
                    return False
        if not answered:
            self.counts["requests answered 502 (app closed without answering)"] += 1
            writer.write(error_response(502, APP_UNAVAILABLE, path))
        return True

    async def _finish(self, writer: asyncio.StreamWriter) -> None:
        """Close once the client has taken everything written, or give up after
        send_timeout (asyncio would otherwise keep an unread answer forever)."""
        try:
            async with asyncio.timeout(self.limits.send_timeout):
                writer.close()
                await writer.wait_closed()
        except TimeoutError:
            self.counts["clients dropped for not reading their answer"] += 1
        except OSError:
            pass
