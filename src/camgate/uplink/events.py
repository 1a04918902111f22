"""What a :class:`~camgate.uplink.connection.TunnelConnection` tells its caller to do.

Every method of the connection returns a list of these events, in the order they must
be carried out. (They are not frozen: one or two are made for every frame, and frozen
dataclasses take twice as long to build.) Those about one connection name its ``client_id`` and carry its
:class:`Channel`, whose ``socket`` is the caller's own object for it (the channel is
left out of comparisons, so a test can write ``Data(5, b"x")``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .protocol import PublicEndpoint

if TYPE_CHECKING:
    from .flow import Channel


def _channel() -> Any:
    return field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class Send:
    """Put this message on the WebSocket after every earlier one (str: TEXT, bytes: BINARY)."""

    message: bytes | str

    def __repr__(self) -> str:  # D frames can be large; say how large instead
        if isinstance(self.message, str):
            return f"Send({self.message!r})"
        return f"Send(<{self.message[:1].decode('latin-1')} frame, {len(self.message)} bytes>)"


@dataclass(slots=True)
class Opened:
    """(client) The relay opened ``client_id``: connect a socket to forward ``index``."""

    client_id: int
    index: int
    channel: Channel = _channel()


@dataclass(slots=True)
class Data:
    """Bytes from the peer: write them to the connection's socket."""

    client_id: int
    payload: bytes
    channel: Channel = _channel()

    def __repr__(self) -> str:
        return f"Data({self.client_id}, <{len(self.payload)} bytes>)"


@dataclass(slots=True)
class _AboutOneConnection:
    client_id: int
    channel: Channel = _channel()


@dataclass(slots=True)
class Closed(_AboutOneConnection):
    """The peer closed the connection: close its socket once what it holds is written."""


@dataclass(slots=True)
class Dropped:
    """This end gives the connection up (any C is already sent): abort its socket at once."""

    client_id: int
    reason: str  # for the log
    channel: Channel = _channel()


@dataclass(slots=True)
class PauseRequested(_AboutOneConnection):
    """Stop reading the connection's socket: the peer asked (flow extension), or our
    queue to the WebSocket is full."""


@dataclass(slots=True)
class ResumeRequested(_AboutOneConnection):
    """Read the connection's socket again: nothing holds it any more."""


@dataclass(slots=True)
class StoppedWaiting:
    """(for the log) The WebSocket reader no longer waits for this socket to drain."""

    client_id: int


@dataclass(slots=True)
class FlowOffered:
    """The peer offered per-connection flow control; ``used`` says whether we use it."""

    version: int
    used: bool


@dataclass(slots=True)
class Endpoints:
    """(client) Where a camgate relay publishes the forwards."""

    endpoints: tuple[PublicEndpoint, ...]


@dataclass(slots=True)
class Ignored:
    """The peer sent something the protocol says to ignore; ``reason`` is for the log.

    ``expected`` marks what a well-behaved peer also sends (a frame that crossed our C
    on the wire), worth a debug line rather than a warning.
    """

    reason: str
    expected: bool = False


Event = (
    Send | Opened | Data | Closed | Dropped | PauseRequested | ResumeRequested | StoppedWaiting | FlowOffered
    | Endpoints | Ignored
)
