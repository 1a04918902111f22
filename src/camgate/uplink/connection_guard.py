"""What connections to the relay's HTTP port may cost it before they carry a tunnel.

Left to itself, aiohttp keeps a connection that sends nothing open for an hour and waits
for the rest of a request's headers for ever, so about a thousand idle sockets use up
the common limit of 1024 open files: the relay then accepts no tunnel, API call or
viewer. Every connection to that port is therefore accepted by camgate itself (see
guarded_listener.py), counted at once, and served through a :class:`GuardedConnection`
in front of aiohttp's own protocol, which

- closes it when a request's headers are not complete ``header_timeout`` seconds after
  the connection opened (TLS handshake included) or after the first byte of a later
  request, and when a kept-alive connection starts no request for ``idle_timeout``;
- counts it against its client address (an IPv6 /64 is one address, as one host
  usually has all of it) until it carries an accepted tunnel. A new connection past
  ``per_address`` pushes out that address's oldest connection between requests, so
  whoever opens many connections loses its own oldest ones and a newcomer is still
  served; but only one older than ``young`` seconds: a site whose hundreds of cameras
  reconnect at once (one address behind NAT) is not the flood the cap is for, and its
  connections are past their request or idle for long soon enough. Past ``total`` for
  all addresses, a new connection pushes out the oldest one between requests whatever
  its age, or is refused if there is none.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import socket
import ssl
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    idle_timeout: float = 30.0
    body_timeout: float = 10.0  # for the body of an admin API call
    per_address: int = 128
    young: float = 1.0
    # None: an eighth of the open-files limit (at least 32), so connections that have
    # proven nothing never take the descriptors tunnels and viewers need; nor do those
    # asyncio accepts in one go (up to the listen backlog, 128) before any is counted.
    total: int | None = None

    def total_or_default(self) -> int:
        if self.total is not None:
            return self.total
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return max(32, soft // 8) if soft != resource.RLIM_INFINITY else 1 << 17


def address_key(peer: Any) -> str:
    """The address a connection counts against: an IPv4 address, or an IPv6 /64."""
    host = peer[0] if isinstance(peer, tuple) and peer else str(peer)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return str(host)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class GuardedConnection(asyncio.Protocol):
    """Stands in front of one aiohttp request handler: times it, and closes it when told."""

    def __init__(self, guard: ConnectionGuard, key: str) -> None:
        self.guard = guard
        self.key = key
        self.raw: asyncio.Transport | None = None  # the TCP transport, or TLS over it
        self.transport: asyncio.BaseTransport | None = None  # what aiohttp was given
        self.inner: asyncio.Protocol | None = None
        self.busy = False  # a request is being handled
        self.trusted = False  # carries an accepted tunnel: neither counted nor timed
        # Bytes of the next request have arrived, so its header deadline runs. A new
        # connection's runs from the start: it has no reason to wait before speaking.
        self.heard = True
        self._timer: asyncio.TimerHandle | None = None
        self.opened = asyncio.get_running_loop().time()

    # --- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A socket transport (asyncio's or uvloop's, which is not an asyncio.Transport),
        # its TLS handshake done if the port speaks TLS: that counts against the header
        # time too.
        self.raw = transport  # type: ignore[assignment]
        self._arm(max(0.0, self.opened + self.guard.limits.header_timeout - asyncio.get_running_loop().time()))
        self._attach(transport)

    def data_received(self, data: bytes) -> None:
        if not self.heard and not self.busy and not self.trusted:
            self.heard = True
            self._arm(self.guard.limits.header_timeout)  # the next request has begun
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.guard.release(self)
        if self.transport is not None:
            self.guard.by_transport.pop(self.transport, None)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    # --- the guard's side -----------------------------------------------------------

    def _attach(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.guard.by_transport[transport] = self
        self.inner = self.guard.handler_factory()
        self.inner.connection_made(transport)

    def request_started(self) -> None:
        self.busy = True
        self._disarm()

    def request_finished(self) -> None:
        self.busy = False
        if self.trusted or self.raw is None or self.raw.is_closing():
            return
        self.heard = False
        self._arm(self.guard.limits.idle_timeout)

    def trust(self) -> None:
        self.trusted = True
        self._disarm()

    def close(self) -> None:
        self._disarm()
        if self.raw is not None:
            self.raw.abort()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if not self.busy and not self.trusted:
            log.debug("closing a connection from %s: no complete request in time", self.key)
            self.close()


class ConnectionGuard:
    """The bookkeeping for every :class:`GuardedConnection` of one listening port."""

    def __init__(self, limits: ConnectionLimits, ssl_context: ssl.SSLContext | None = None) -> None:
        self.limits = limits
        self.total = limits.total_or_default()
        self.ssl_context = ssl_context
        self.handler_factory: Callable[[], asyncio.Protocol] = _not_started
        self.by_transport: dict[asyncio.BaseTransport, GuardedConnection] = {}
        # Connections not yet trusted, oldest first: all of them, and by address.
        self._counted: OrderedDict[GuardedConnection, None] = OrderedDict()
        self._by_address: dict[str, OrderedDict[GuardedConnection, None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.evicted = 0
        self.refused = 0

    def accept(self, sock: socket.socket, peer: Any) -> None:
        """A connection accept() has just returned: count it and serve it, or close it
        at once (before asyncio has spent anything on it)."""
        conn = GuardedConnection(self, address_key(peer))
        if not self.admit(conn):
            sock.close()
            return
        self.spawn(self._serve(conn, sock))

    async def _serve(self, conn: GuardedConnection, sock: socket.socket) -> None:
        # The TLS handshake is the loop's, before the connection sees a byte: a protocol
        # that called start_tls itself would lose the ClientHello under uvloop, which
        # starts reading as soon as connection_made returns.
        tls = {} if self.ssl_context is None else {
            "ssl": self.ssl_context, "ssl_handshake_timeout": self.limits.header_timeout}
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: conn, sock, **tls)
        except Exception:  # noqa: BLE001 - the peer went (or failed its handshake) before its transport was made
            sock.close()
            self.release(conn)

    def counted(self, key: str | None = None) -> int:
        """Connections that carry no tunnel (from ``key`` only, when given)."""
        return len(self._counted) if key is None else len(self._by_address.get(key, ()))

    def admit(self, conn: GuardedConnection) -> bool:
        same_address = self._by_address.setdefault(conn.key, OrderedDict())
        if len(same_address) >= self.limits.per_address:
            self._evict_oldest_idle(same_address, older_than=self.limits.young)
        if len(self._counted) >= self.total and not self._evict_oldest_idle(self._counted):
            self.refused += 1
            log.warning("refused a connection from %s: %d connections without a tunnel, none idle",
                        conn.key, len(self._counted))
            if not same_address:
                del self._by_address[conn.key]
            return False
        same_address[conn] = None
        self._counted[conn] = None
        return True

    def _evict_oldest_idle(self, group: OrderedDict[GuardedConnection, None], older_than: float = 0.0) -> bool:
        born_before = asyncio.get_running_loop().time() - older_than
        # One without a transport yet is only being set up: the newest, in effect.
        victim = next((c for c in group if not c.busy and c.raw is not None), None)
        if victim is None or victim.opened > born_before:
            return False
        self.evicted += 1
        log.warning("closed the oldest idle connection from %s to make room (%d without a tunnel)",
                    victim.key, len(group))
        self.release(victim)
        victim.close()
        return True

    def release(self, conn: GuardedConnection) -> None:
        """Stop counting ``conn`` (it closed, or carries a tunnel now)."""
        self._counted.pop(conn, None)
        same_address = self._by_address.get(conn.key)
        if same_address is not None:
            same_address.pop(conn, None)
            if not same_address:
                del self._by_address[conn.key]

    def trust(self, request: web.Request) -> None:
        """``request``'s connection carries an accepted tunnel: stop timing and counting it."""
        conn = self.by_transport.get(request.transport) if request.transport is not None else None
        if conn is not None:
            conn.trust()
            self.release(conn)

    def close(self) -> None:
        """Abort what is still counted (TLS handshakes, idle connections) and its tasks."""
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._counted):
            conn.close()

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        conn = self.by_transport.get(request.transport) if request.transport is not None else None
        if conn is None:
            return await handler(request)
        conn.request_started()
        try:
            return await handler(request)
        finally:
            conn.request_finished()


def _not_started() -> asyncio.Protocol:
    raise RuntimeError("the guard's site has not started")
