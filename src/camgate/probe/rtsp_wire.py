"""RTSP/1.0 on the wire, sans-I/O: requests as bytes out, answers parsed from bytes in.

A camera is a peer we do not control, so the parser bounds everything it keeps: one
header line, all the headers, and the body (an SDP). Past a bound it raises WireError
with a reason fit for a person, instead of buffering more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from camgate.probe.result import printable

MAX_LINE_BYTES = 8 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
MAX_BODY_BYTES = 64 * 1024  # real SDPs are 1-4 KiB
USER_AGENT = "camgate-probe"

_STATUS_LINE = re.compile(r"^RTSP/(\d)\.(\d) (\d{3})(?: (.*))?$")


class WireError(Exception):
    """The peer's bytes are not an RTSP answer we can take; str() is the reason."""


@dataclass
class Response:
    status: int
    phrase: str
    headers: list[tuple[str, str]] = field(default_factory=list)  # names lower-cased, latin-1 text
    body: bytes = b""

    @property
    def status_line(self) -> str:
        return printable(f"RTSP/1.0 {self.status} {self.phrase}".rstrip(), 120)

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)

    def all_headers(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


def build_request(method: str, url: str, cseq: int, headers: dict[str, str] | None = None) -> bytes:
    """One request with no body. ``url`` and header values are latin-1 text (see auth.py)."""
    lines = [f"{method} {url} RTSP/1.0", f"CSeq: {cseq}", f"User-Agent: {USER_AGENT}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if any(ch in line for line in lines for ch in "\r\n\0"):
        raise ValueError("a request field holds a line break")  # would smuggle in a header
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class ResponseParser:
    """Feed bytes; take complete answers with next_response()."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._reset()

    def _reset(self) -> None:
        self._status: tuple[int, str] | None = None
        self._headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._body_length: int | None = None  # set once the headers are complete

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_response(self) -> Response | None:
        """The next complete answer, None if more bytes are needed; WireError if the
        bytes cannot be one."""
        while self._body_length is None:
            line = self._take_line()
            if line is None:
                return None
            self._on_line(line)
        if len(self._buffer) < self._body_length:
            return None
        body = bytes(self._buffer[: self._body_length])
        del self._buffer[: self._body_length]
        status, phrase = self._status
        response = Response(status, phrase, self._headers, body)
        self._reset()
        return response

    def _take_line(self) -> str | None:
        if self._status is None:
            self._check_looks_like_rtsp()
        end = self._buffer.find(b"\n", 0, MAX_LINE_BYTES + 1)
        if end < 0:
            if len(self._buffer) > MAX_LINE_BYTES:
                raise WireError(f"an answer line longer than {MAX_LINE_BYTES} bytes")
            return None
        self._header_bytes += end + 1
        if self._header_bytes > MAX_HEADER_BYTES:
            raise WireError(f"answer headers larger than {MAX_HEADER_BYTES} bytes")
        line = bytes(self._buffer[:end]).rstrip(b"\r").decode("latin-1")
        del self._buffer[: end + 1]
        return line

    def _check_looks_like_rtsp(self) -> None:
        # Fail on garbage at once, not after 8 KiB of it: an answer starts "RTSP/".
        while self._buffer[:1] in (b"\r", b"\n") and self._buffer[:2] != b"\r":  # blank lines between answers
            del self._buffer[:1]
        head = bytes(self._buffer[:5])
        if head and head != b"\r" and not b"RTSP/".startswith(head):
            raise WireError(f"not an RTSP answer: {printable(repr(bytes(self._buffer[:40])), 80)}")

    def _on_line(self, line: str) -> None:
        if self._status is None:
            match = _STATUS_LINE.match(line)
            if not match:
                raise WireError(f"not an RTSP status line: {printable(line, 80)!r}")
            self._status = (int(match.group(3)), (match.group(4) or "").strip())
            return
        if line == "":
            self._body_length = self._content_length()
            return
        if line[:1] in (" ", "\t") and self._headers:  # an obsolete folded continuation
            name, value = self._headers[-1]
            self._headers[-1] = (name, f"{value} {line.strip()}")
            return
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise WireError(f"a header line without a name: {printable(line, 80)!r}")
        if len(self._headers) >= MAX_HEADERS:
            raise WireError(f"more than {MAX_HEADERS} answer headers")
        self._headers.append((name.strip().lower(), value.strip()))

    def _content_length(self) -> int:
        raw = next((value for key, value in self._headers if key == "content-length"), None)
        if raw is None:
            return 0
        if not raw.isdigit():
            raise WireError(f"a Content-Length that is not a number: {printable(raw, 40)!r}")
        length = int(raw)
        if length > MAX_BODY_BYTES:
            raise WireError(f"an answer body of {length} bytes, more than the {MAX_BODY_BYTES} a stream description needs")
        return length
