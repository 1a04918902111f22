"""How much one tunnel end holds back, and the per-connection state that tracks it.

The decisions are :class:`~.connection.TunnelConnection`'s; these are its numbers and its
record of each connection.
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
