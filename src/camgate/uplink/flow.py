"""How much one tunnel end holds back, and the per-connection state that tracks it.

The decisions are :class:`~.connection.TunnelConnection`'s; these are its numbers, its
record of each connection, and its rules. The spec asks that "each side bounds what it
buffers per connection and per tunnel; when the bound is reached it stops reading from
the source". So:

- Towards the WebSocket, frames wait in one queue. Past ``FlowLimits.to_websocket``
  bytes every socket of the tunnel stops being read until the queue is half empty.
- Towards a socket, bytes wait in its buffer; ``per_connection`` is its high-water
  mark and half of it the low-water mark.
- Across the sockets of a tunnel, more than ``per_tunnel`` bytes waiting stops the
  WebSocket reader until they drain to half; each ``stall_timeout`` that passes
  without that, the connection holding the most bytes is closed.
- A socket is read only while neither our full queue nor a pause from the peer holds it.

Against a reference peer (the default until the peer offers the extension): past
``per_connection`` the WebSocket reader waits for that socket to drain to half, for
at most ``stall_timeout`` per episode; then it stops waiting for it, so the other
connections move again, and the socket may fill up to ``per_connection_max``, past
which it is closed with C.

With the flow extension: past ``per_connection`` we ask the peer to pause that id
(once), and to resume when the socket has drained to half; the reader does not wait,
so a reader that stops costs the other connections nothing and keeps its connection.
What the peer had sent before our pause reached it still arrives. How much that is
depends on the kernel's buffers between the two ends, which grow with the link and
with how far the receiving end lags; past ``per_connection_max_negotiated`` the
reader waits for the socket (TCP holds the rest back meanwhile) as it would for a
reference peer, and the connection is closed only if it has not drained within
``stall_timeout``. A socket whose peer we paused and that has not drained for
``stalled_close_after`` is closed as well: its reader hung without closing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FlowLimits:
    # High-water mark of what waits for one socket: past it the WebSocket reader waits
    # for that socket (reference peer), or the peer is asked to pause it (extension).
    # Below half of it, the socket counts as drained again.
    per_connection: int = 256 * 1024
    per_connection_max: int = 1024 * 1024  # reference peer: a socket holding more is closed with C
    # With the flow extension, what the peer had already sent for a connection when our
    # pause reaches it still arrives after we asked: its queue to the WebSocket (its
    # to_websocket, 1 MiB by default, plus one 256 KiB socket read that crossed it), what
    # it reads while the pause travels, and the WebSocket's socket buffers between the
    # two ends. The kernel grows those with the link's bandwidth-delay product and with
    # how far the receiving end lags behind the sending one: 16 MB were measured on
    # loopback, relay busy, with net.ipv4.tcp_rmem allowing 32 MiB. No bound here can
    # cover that, so past this one the WebSocket reader stops (TCP then holds the rest
    # back, as without the extension) until the socket drains; it is closed with C only
    # if it has not drained within stall_timeout.
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


class Channel:
    """One client_id's connection as the protocol sees it.

    ``socket`` belongs to the caller (its TCP side of the connection); the protocol
    never touches it. A channel is ``live`` while its id is open; once closed it may
    still hold bytes for its socket, which count until the caller reports it gone.
    """

    __slots__ = (
        "client_id", "index", "socket", "live", "buffered", "held_by_peer", "pause_sent", "paused_since",
        "given_up",
    )

    def __init__(self, client_id: int, index: int, socket: Any = None) -> None:
        self.client_id = client_id
        self.index = index  # the forward it belongs to
        self.socket = socket
        self.live = True
        self.buffered = 0  # bytes waiting for its socket, as last reported
        self.held_by_peer = False  # the peer asked us to pause it (flow extension)
        self.pause_sent = False  # we asked the peer to pause it
        self.paused_since: float | None = None  # see TunnelConnection.poll
        # The WebSocket reader stopped waiting for this socket to drain; reset once it has.
        self.given_up = False

    def __repr__(self) -> str:
        return f"<Channel {self.client_id} {'live' if self.live else 'closed'}, {self.buffered} bytes waiting>"
