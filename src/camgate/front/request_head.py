"""The front's HTTP/1.x request parsing and rewriting, without I/O.

Strict on purpose. The front gives gunicorn one request per connection, framed by a
Content-Length the front computed from the bytes it read itself, so nothing a client
sends can make the two disagree on where a request ends (no smuggling). Whatever could
be read two ways (two lengths, a length and a transfer coding, an unknown coding) is
refused here.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from http import HTTPStatus

from camgate.front.origin import ORIGIN_HEADER, TUNNEL

HEAD_END = re.compile(rb"\r?\n\r?\n")
LINE_END = re.compile(rb"\r?\n")
REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([^\x00-\x20\x7f]+) HTTP/(1\.[01])")
FIELD_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
FIELD_VALUE_FORBIDDEN = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")

# Meaningful for one connection only: the front's hop to gunicorn sets its own.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
    b"upgrade", b"expect", b"content-length",
})
# What a proxy in front says about the client. Believed by Django only from a trusted
# proxy; from the tunnel never, so it is not even passed on.
FORWARDED = frozenset({b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-real-ip"})
PRIVATE_PREFIX = b"x-camgate-"  # the front's own headers: a client's copies are removed


class BadRequest(Exception):
    """A request the front refuses itself, with the status and the reason to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class RequestHead:
    method: bytes
    target: bytes
    version: bytes  # b"1.0" or b"1.1"
    headers: tuple[tuple[bytes, bytes], ...]  # (name as sent, value without surrounding blanks)

    def values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key.lower() == name]

    @property
    def path(self) -> str:
        return self.target.split(b"?", 1)[0].decode("latin-1")


def find_head_end(buffer: bytes | bytearray, start: int = 0) -> re.Match | None:
    """Where the blank line after the head is, searching from START (a caller appending
    to its buffer passes the old length less 3, so each byte is looked at about once)."""
    return HEAD_END.search(buffer, max(0, start))


def parse_head(data: bytes) -> RequestHead:
    """The request line and header fields of DATA (everything before the blank line)."""
    lines = LINE_END.split(data)
    match = REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        raise BadRequest(400, "The request line is not an HTTP/1.x request line.")
    headers = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            raise BadRequest(400, "Folded header lines are not accepted.")
        name, colon, value = line.partition(b":")
        if not colon or not FIELD_NAME.fullmatch(name):
            raise BadRequest(400, "A header line is not 'name: value'.")
        value = value.strip(b" \t")
        if FIELD_VALUE_FORBIDDEN.search(value):
            raise BadRequest(400, "A header value holds a control character.")
        headers.append((name, value))
    return RequestHead(match.group(1), match.group(2), match.group(3), tuple(headers))


def body_length(head: RequestHead, max_body: int) -> int | None:
    """How many body bytes follow the head: a number, or None for a chunked body."""
    codings = [c.strip().lower() for value in head.values(b"transfer-encoding") for c in value.split(b",")]
    lengths = {v.strip() for value in head.values(b"content-length") for v in value.split(b",")}
    if codings:
        if lengths:
            raise BadRequest(400, "Both Transfer-Encoding and Content-Length are given.")
        if head.version == b"1.0":
            raise BadRequest(400, "Transfer-Encoding is not HTTP/1.0.")
        if codings != [b"chunked"]:
            raise BadRequest(501, "Only the chunked transfer coding is accepted.")
        return None
    if not lengths:
        return 0
    if len(lengths) != 1:
        raise BadRequest(400, "Content-Length is given twice, with different values.")
    (text,) = lengths
    if not text.isdigit() or not text.isascii():
        raise BadRequest(400, "Content-Length is not a number.")
    if len(text) > 19 or int(text) > max_body:
        raise BadRequest(413, f"Request body is larger than {max_body} bytes.")
    return int(text)


def wants_continue(head: RequestHead) -> bool:
    """True when the client waits for "100 Continue" before it sends the body."""
    expectations = {value.lower() for value in head.values(b"expect")}
    if expectations - {b"100-continue"}:
        raise BadRequest(417, "Only 'Expect: 100-continue' is understood.")
    return bool(expectations) and head.version == b"1.1"


def proxy_line(peer: tuple, local: tuple) -> bytes:
    """The PROXY protocol (v1) line telling gunicorn who connected to the front, so that
    REMOTE_ADDR is the client's address, as when gunicorn itself accepted it."""
    source, destination = _plain_address(peer[0]), _plain_address(local[0])
    if source.version != destination.version:
        # Only the source matters to the app; the line needs both in one family.
        destination = ipaddress.ip_address("0.0.0.0" if source.version == 4 else "::")
    family = "TCP4" if source.version == 4 else "TCP6"
    return f"PROXY {family} {source} {destination} {peer[1]} {local[1]}\r\n".encode()


def _plain_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    address = ipaddress.ip_address(text.split("%", 1)[0])  # no zone id: gunicorn refuses it
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def upstream_request(head: RequestHead, length: int, *, peer: tuple, local: tuple, from_tunnel: bool,
                     had_body: bool) -> bytes:
    """What the front sends gunicorn, before the body: the PROXY line, the request line,
    the client's headers less the hop-by-hop ones and the front's own, the body length
    it counted, "Connection: close", and the tunnel mark on the tunnel's listener."""
    named_by_connection = {
        token.strip().lower() for value in head.values(b"connection") for token in value.split(b",")
    }
    dropped = HOP_BY_HOP | named_by_connection | (FORWARDED if from_tunnel else frozenset())
    lines = [proxy_line(peer, local).rstrip(b"\r\n"), b"%s %s HTTP/%s" % (head.method, head.target, head.version)]
    for name, value in head.headers:
        lowered = name.lower()
        # Underscores: gunicorn would drop or merge them with their dashed twins (nginx
        # ignores them too); X-Camgate-*: only the front says those.
        if lowered in dropped or lowered.startswith(PRIVATE_PREFIX) or b"_" in name:
            continue
        lines.append(name + b": " + value)
    if had_body or length:
        lines.append(b"Content-Length: %d" % length)
    lines.append(b"Connection: close")
    if from_tunnel:
        lines.append(f"{ORIGIN_HEADER}: {TUNNEL}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"


def error_response(status: int, message: str, path: str = "") -> bytes:
    """The front's own answer, in the shape the app gives the same error: JSON
    {"detail": ...} under /api/, plain text elsewhere."""
    if path.startswith("/api/"):
        body, kind = json.dumps({"detail": message}).encode(), b"application/json"
    else:
        body, kind = message.encode(), b"text/plain; charset=utf-8"
    head = (
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        % (status, HTTPStatus(status).phrase.encode(), kind, len(body))
    )
    return head + body


class ChunkedBody:
    """Decodes a chunked request body fed in pieces; `done` once its last chunk and
    trailer have come. Trailer fields are read and dropped (the app never sees them)."""

    MAX_LINE = 4096
    MAX_TRAILER = 16 * 1024

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.body = bytearray()
        self.done = False
        self._pending = bytearray()
        self._chunk_left = 0
        self._state = "size"  # size, data, data-end, trailer
        self._trailer_bytes = 0

    def feed(self, data: bytes) -> bytes:
        """Take DATA; return what came after the body's end (nothing before `done`)."""
        self._pending += data
        while not self.done:
            if self._state == "data":
                taken = self._pending[: self._chunk_left]
                self.body += taken
                del self._pending[: len(taken)]
                self._chunk_left -= len(taken)
                if self._chunk_left:
                    return b""
                self._state = "data-end"
                continue
            line = self._line()
            if line is None:
                return b""
            if self._state == "size":
                self._start_chunk(line)
            elif self._state == "data-end":
                if line:
                    raise BadRequest(400, "A chunk is longer than its size says.")
                self._state = "size"
            else:  # trailer
                self._trailer_bytes += len(line) + 2
                if self._trailer_bytes > self.MAX_TRAILER:
                    raise BadRequest(431, "The chunked body's trailer is too large.")
                if not line:
                    self.done = True
        rest = bytes(self._pending)
        self._pending.clear()
        return rest

    def _line(self) -> bytes | None:
        end = self._pending.find(b"\n")
        if end < 0:
            if len(self._pending) > self.MAX_LINE:
                raise BadRequest(400, "A line of the chunked body is too long.")
            return None
        line = bytes(self._pending[:end]).removesuffix(b"\r")
        del self._pending[: end + 1]
        return line

    def _start_chunk(self, line: bytes) -> None:
        size_text = line.split(b";", 1)[0].strip(b" \t")
        if not CHUNK_SIZE.fullmatch(size_text):
            raise BadRequest(400, "A chunk size is not a hexadecimal number.")
        size = int(size_text, 16)
        if len(self.body) + size > self.max_body:
            raise BadRequest(413, f"Request body is larger than {self.max_body} bytes.")
        if size == 0:
            self._state = "trailer"
        else:
            self._chunk_left = size
            self._state = "data"
