"""The uplink tunnel protocol with no I/O in it (uplink protocol, section 4).

Everything here is a pure function or a small class driven by its caller: the forward
spec, the hello, the O/D/C frames, camgate's extension TEXT messages (the per-tunnel table of client ids is in
client_ids.py, the liveness clock in liveness.py). The relay and the tunnel client share it, so both ends agree on the wire format
by construction, and it can be tested exhaustively without sockets (the style of h11
and wsproto).
"""

from __future__ import annotations

import ipaddress
import json
import reprlib
import struct
from dataclasses import dataclass, field
from typing import Any, Iterator

from camgate import __version__ as _camgate_version


@dataclass(frozen=True)
class Limits:
    # The reference agent's limits: a relay must accept at least these, and a client
    # must not need more to stay compatible with the reference cloud.
    max_forwards: int = 10
    max_forward_name: int = 50
    max_host: int = 255
    max_connections: int = 256
    # The reference agent sends D payloads of at most its websocket_buffer_size
    # (4096 by default); a relay must accept any D payload up to at least 64 KiB.
    reference_payload: int = 4096
    relay_accepts_payload: int = 64 * 1024
    # What a camgate end takes from another (the extension's max_payload): a 256 KiB
    # socket read (asyncio's and uvloop's read size) goes as one D frame, not four, which
    # costs each end about a quarter less CPU per byte at full speed (bench/viewers.py's
    # neighbours in bench/throughput.py). Well under the 1 MiB WebSocket message limit.
    camgate_payload: int = 256 * 1024


LIMITS = Limits()

FORWARD_PROTOCOLS = ("http", "https", "tcp")
SUBPROTOCOL = "ra-proxy"
PING_AFTER_SECONDS = 30.0  # ping a peer that has sent nothing for this long
DEAD_AFTER_SECONDS = 60.0  # a peer silent for this long is dead
MAX_CLIENT_ID = 0xFFFF
AGENT_VERSION = f"camgate-{_camgate_version}"


class ProtocolError(ValueError):
    """Input from a peer or a configuration that breaks the protocol."""


class Malformed(ProtocolError):
    """Input from a peer that breaks a format; ``reason`` says how (for the log)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedFrame(Malformed):
    """A binary frame that is not a valid O, D or C."""


# --- forwards ---------------------------------------------------------------


@dataclass(frozen=True)
class Forward:
    """One port of a device that the relay publishes: ``name:protocol:host:port``."""

    name: str
    protocol: str
    host: str
    port: int

    def __post_init__(self) -> None:
        _check_forward(self)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "protocol": self.protocol, "host": self.host, "port": self.port}

    @classmethod
    def from_json(cls, data: Any) -> Forward:
        if not isinstance(data, dict):
            raise ProtocolError("a forward must be a JSON object")
        missing = [key for key in ("name", "protocol", "host", "port") if key not in data]
        if missing:
            raise ProtocolError(f"forward is missing {', '.join(missing)}")
        port = data["port"]
        if isinstance(port, bool) or not isinstance(port, int):
            # reprlib: a peer's value may be huge or nested too deep to print whole.
            raise ProtocolError(f"forward port must be an integer, not {reprlib.repr(port)}")
        for key in ("name", "protocol", "host"):
            if not isinstance(data[key], str):
                raise ProtocolError(f"forward {key} must be a string")
        return cls(data["name"], data["protocol"], _unbracket(data["host"]), port)


def _unbracket(host: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def _check_forward(forward: Forward) -> None:
    if not forward.name:
        raise ProtocolError("forward name is empty")
    if len(forward.name) > LIMITS.max_forward_name:
        raise ProtocolError(f"forward name is longer than {LIMITS.max_forward_name} characters")
    if ":" in forward.name:
        raise ProtocolError("forward name must not contain ':'")
    if forward.protocol not in FORWARD_PROTOCOLS:
        raise ProtocolError(
            f"forward protocol {forward.protocol!r} is not one of {', '.join(FORWARD_PROTOCOLS)}"
        )
    if not forward.host:
        raise ProtocolError("forward host is empty")
    if len(forward.host) > LIMITS.max_host:
        raise ProtocolError(f"forward host is longer than {LIMITS.max_host} characters")
    if any(ch in forward.host for ch in "[]/ \t\r\n"):
        raise ProtocolError(f"forward host {forward.host!r} is not a host name or address")
    if ":" in forward.host:
        # Only an IPv6 address may contain colons; anything else is a typo.
        try:
            ipaddress.IPv6Address(forward.host.split("%", 1)[0])
        except ValueError:
            raise ProtocolError(f"forward host {forward.host!r} is not a valid IPv6 address") from None
    if not 1 <= forward.port <= 65535:
        raise ProtocolError(f"forward port {forward.port} is not in 1..65535")


def parse_forward(text: str) -> Forward:
    """Parse ``name:protocol:host:port``; the host may be in brackets (``[::1]``)."""
    parts = text.strip().split(":", 2)
    if len(parts) != 3:
        raise ProtocolError(f"forward {text!r} is not name:protocol:host:port")
    name, protocol, rest = parts
    # The port is after the last colon, so an IPv6 host keeps its colons with or
    # without brackets.
    host, sep, port_text = rest.rpartition(":")
    if not sep:
        raise ProtocolError(f"forward {text!r} is not name:protocol:host:port")
    if not port_text.isdigit() or not port_text.isascii():
        raise ProtocolError(f"forward {text!r} has no numeric port")
    host = _unbracket(host)
    return Forward(name, protocol, host, int(port_text))


def format_forward(forward: Forward) -> str:
    # Always bracket the host: the gateway's own form (``http:http:[ip]:port``) and
    # the only unambiguous one for IPv6.
    return f"{forward.name}:{forward.protocol}:[{forward.host}]:{forward.port}"


def check_forwards(forwards: tuple[Forward, ...] | list[Forward]) -> tuple[Forward, ...]:
    """Validate a tunnel's forward list as a whole (count and unique names)."""
    forwards = tuple(forwards)
    if not forwards:
        raise ProtocolError("a tunnel needs at least one forward")
    if len(forwards) > LIMITS.max_forwards:
        raise ProtocolError(f"a tunnel has at most {LIMITS.max_forwards} forwards, got {len(forwards)}")
    names = [f.name for f in forwards]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        # The relay keys a forward's stable public port by its name.
        raise ProtocolError(f"forward names must be unique: {', '.join(duplicates)}")
    return forwards


# --- the hello --------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    forwards: tuple[Forward, ...]
    websocket_buffer_size: int = LIMITS.reference_payload
    agent_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def build_hello(
    forwards: tuple[Forward, ...] | list[Forward],
    websocket_buffer_size: int = LIMITS.reference_payload,
    agent_version: str = AGENT_VERSION,
) -> str:
    forwards = check_forwards(forwards)
    if websocket_buffer_size < 1:
        raise ProtocolError("websocket_buffer_size must be at least 1")
    return json.dumps(
        {
            "websocket_buffer_size": websocket_buffer_size,
            "agent_version": agent_version,
            "forwards": [f.to_json() for f in forwards],
        }
    )


def parse_hello(text: str | bytes) -> Hello:
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("hello is not JSON") from None
    except RecursionError:  # a peer's JSON nested deeper than Python's stack
        raise ProtocolError("hello is nested too deeply") from None
    if not isinstance(data, dict):
        raise ProtocolError("hello is not a JSON object")
    raw_forwards = data.get("forwards")
    if not isinstance(raw_forwards, list):
        raise ProtocolError("hello has no forwards list")
    try:
        forwards = check_forwards([Forward.from_json(item) for item in raw_forwards])
    except ProtocolError as exc:
        raise ProtocolError(f"hello: {exc}") from None
    size = data.get("websocket_buffer_size", LIMITS.reference_payload)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ProtocolError("hello websocket_buffer_size must be a positive integer")
    version = data.get("agent_version")
    extra = {k: v for k, v in data.items() if k not in ("forwards", "websocket_buffer_size", "agent_version")}
    return Hello(forwards, size, version if isinstance(version, str) else None, extra)


# --- camgate's extension messages ----------------------------------------------
#
# TEXT messages after the hello, which the spec says a peer ignores, so a reference
# relay or agent never notices them. Each is a JSON object with "camgate": 1 and any of:
#   "flow": 1                  the sender takes and honours per-connection pause/resume
#   "pause": [ids]             stop reading these connections' sockets until resume
#   "resume": [ids]            read them again
#   "max_payload": n           the largest D payload the sender takes
#   "forwards": [{"name", "proxy_host", "proxy_port"}]   (relay only) its public ports
# Unknown keys are ignored, so later versions can add some.

EXTENSION_VERSION = 1
FLOW_VERSION = 1


class MalformedExtension(Malformed):
    """A TEXT message that says it is camgate's but breaks this format."""


@dataclass(frozen=True)
class PublicEndpoint:
    """Where the relay publishes one forward (said only by a camgate relay)."""

    name: str
    proxy_host: str
    proxy_port: int


@dataclass(frozen=True)
class Extension:
    flow: int | None = None  # the flow-control version the sender announces
    pause: tuple[int, ...] = ()
    resume: tuple[int, ...] = ()
    max_payload: int | None = None
    endpoints: tuple[PublicEndpoint, ...] | None = None  # None: the message said nothing about them


def _check_ids(key: str, ids: Any) -> tuple[int, ...]:
    if not isinstance(ids, (list, tuple)):
        raise MalformedExtension(f"{key} is not a list of connection ids")
    for cid in ids:
        if isinstance(cid, bool) or not isinstance(cid, int) or not 0 <= cid <= MAX_CLIENT_ID:
            raise MalformedExtension(f"{key} holds {cid!r}, not a connection id in 0..{MAX_CLIENT_ID}")
    return tuple(dict.fromkeys(ids))  # each id once, in order


def build_extension(
    *,
    flow: bool = False,
    pause: tuple[int, ...] | list[int] = (),
    resume: tuple[int, ...] | list[int] = (),
    max_payload: int | None = None,
    endpoints: tuple[PublicEndpoint, ...] | list[PublicEndpoint] | None = None,
) -> str:
    """One camgate extension TEXT message with the given parts."""
    message: dict[str, Any] = {"camgate": EXTENSION_VERSION}
    if flow:
        message["flow"] = FLOW_VERSION
    try:
        pause, resume = _check_ids("pause", pause), _check_ids("resume", resume)
    except MalformedExtension as exc:
        raise ValueError(exc.reason) from None
    if set(pause) & set(resume):
        raise ValueError("an id cannot be paused and resumed by one message")
    if pause:
        message["pause"] = list(pause)
    if resume:
        message["resume"] = list(resume)
    if max_payload is not None:
        if max_payload < 1:
            raise ValueError("max_payload must be at least 1")
        message["max_payload"] = max_payload
    if endpoints is not None:
        message["forwards"] = [
            {"name": e.name, "proxy_host": e.proxy_host, "proxy_port": e.proxy_port} for e in endpoints
        ]
    return json.dumps(message, separators=(",", ":"))


def parse_extension(text: str | bytes) -> Extension | None:
    """A TEXT message after the hello: None when it is not camgate's (to be ignored).

    Raises :class:`MalformedExtension` when it says it is camgate's but a part this
    version uses is wrong; the caller ignores the whole message. Unknown keys are
    ignored. The relay's own parts (``max_payload``, ``forwards``) are read leniently,
    as before: a bad value or a bad forward is skipped.
    """
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):  # not JSON, or nested past the stack
        return None
    if not isinstance(data, dict):
        return None
    version = data.get("camgate")
    if type(version) is not int or version != EXTENSION_VERSION:
        return None
    flow = data.get("flow")
    if flow is not None and (isinstance(flow, bool) or not isinstance(flow, int) or flow < 1):
        raise MalformedExtension(f"flow is {flow!r}, not a positive version number")
    pause = _check_ids("pause", data.get("pause", ()))
    resume = _check_ids("resume", data.get("resume", ()))
    if set(pause) & set(resume):
        raise MalformedExtension("the same id is both paused and resumed")
    max_payload = data.get("max_payload")
    if isinstance(max_payload, bool) or not isinstance(max_payload, int) or max_payload < 1:
        max_payload = None
    endpoints = None
    if "forwards" in data:
        items = data["forwards"] if isinstance(data["forwards"], list) else []
        found = []
        for item in items:
            try:
                name, host = item["name"], item["proxy_host"]
                if isinstance(name, str) and isinstance(host, str):
                    found.append(PublicEndpoint(name, host, int(item["proxy_port"])))
            except (KeyError, TypeError, ValueError):
                continue
        endpoints = tuple(found)
    return Extension(flow, pause, resume, max_payload, endpoints)


# --- frames -----------------------------------------------------------------

# client_id is little-endian: the reference agent copies it in host order and every
# host it runs on is little-endian.
_OPEN = struct.Struct("<cHB")
_HEAD = struct.Struct("<cH")


@dataclass(frozen=True)
class OpenFrame:
    client_id: int
    index: int


@dataclass(frozen=True)
class DataFrame:
    client_id: int
    payload: bytes | memoryview  # a view into the message when that cannot change (bytes)

    def __repr__(self) -> str:  # payloads can be large; say how large instead
        return f"DataFrame(client_id={self.client_id}, payload=<{len(self.payload)} bytes>)"


@dataclass(frozen=True)
class CloseFrame:
    client_id: int


Frame = OpenFrame | DataFrame | CloseFrame


def check_client_id(client_id: int) -> None:
    if not 0 <= client_id <= MAX_CLIENT_ID:
        raise ValueError(f"client_id {client_id} is not in 0..{MAX_CLIENT_ID}")


def encode_open(client_id: int, index: int) -> bytes:
    check_client_id(client_id)
    if not 0 <= index <= 255:
        raise ValueError(f"forward index {index} is not in 0..255")
    return _OPEN.pack(b"O", client_id, index)


def encode_data(client_id: int, payload: bytes | memoryview) -> bytearray:
    """A D frame. A bytearray: its payload is copied once, and a client's WebSocket
    writer masks it in place (ws_frames.py) instead of copying it again."""
    check_client_id(client_id)
    if not payload:
        raise ValueError("a D frame carries at least one byte")
    frame = bytearray(_HEAD.pack(b"D", client_id))
    frame += payload
    return frame


def encode_close(client_id: int) -> bytes:
    check_client_id(client_id)
    return _HEAD.pack(b"C", client_id)


def decode_frame(data: bytes) -> Frame:
    """Decode one BINARY message; raise :class:`MalformedFrame` saying what is wrong."""
    if not data:
        raise MalformedFrame("empty message")
    command = data[:1]
    if command == b"D":
        if len(data) < 4:
            raise MalformedFrame(f"D frame of {len(data)} bytes has no payload")
        (client_id,) = struct.unpack_from("<H", data, 1)
        # Every byte of the tunnel passes here: a view of an immutable message saves
        # copying each payload (up to 64 KiB) before it is written to its socket.
        payload = memoryview(data)[3:] if type(data) is bytes else bytes(data[3:])
        return DataFrame(client_id, payload)
    if command == b"O":
        if len(data) != 4:
            raise MalformedFrame(f"O frame is {len(data)} bytes, not 4")
        _, client_id, index = _OPEN.unpack(data)
        return OpenFrame(client_id, index)
    if command == b"C":
        if len(data) != 3:
            raise MalformedFrame(f"C frame is {len(data)} bytes, not 3")
        _, client_id = _HEAD.unpack(data)
        return CloseFrame(client_id)
    raise MalformedFrame(f"unknown command {command!r}")


def split_payload(client_id: int, data: bytes, max_payload: int) -> Iterator[bytearray]:
    """D frames carrying ``data`` with payloads of at most ``max_payload`` bytes."""
    view = memoryview(data)
    for start in range(0, len(view), max_payload):
        yield encode_data(client_id, view[start : start + max_payload])
