"""WebSocket messages out of the bytes of one connection (RFC 6455, section 5), no I/O.

After aiohttp's handshake camgate reads each tunnel's WebSocket itself (ws_link.py): aiohttp's
reader copied every payload twice on its way to the tunnel, and woke a task for each message.
A :class:`FrameReader` is fed the way asyncio's BufferedProtocol is: :meth:`get_buffer` says
where the next bytes go, :meth:`buffer_updated` says how many came and returns the messages
they complete. The socket's bytes land

- in a staging buffer, shared by every reader of the thread, when a read may hold
  several frames: each payload is copied out of it once, and what is left of a frame
  that is not whole yet is kept (a few bytes, or one small frame). It is large (256 KiB,
  four 64 KiB frames) so that what the socket holds usually comes in one read that
  leaves room over: uvloop (libuv) reads again whenever a read filled the buffer it
  was offered, and with a 16 KiB buffer a relay made three reads of each 64 KiB frame
  (one of them finding nothing); now a read carries one frame or more. Copying a frame
  costs less than a read;
- straight in a frame's own payload buffer once its header is read, when the frame is
  ``DIRECT_FROM`` bytes or more and not whole yet: the rest of it is not copied at all.
  The buffer has ``TAIL`` bytes of room past the payload, for the start of what follows:
  a read that ends the frame is then short unless more is already there, and uvloop
  does not read again only to find nothing. What lands there is parsed as a staging
  read's bytes would be (a few bytes copied), and the message is a view of the payload.
  Past ``DIRECT_UP_TO`` (the largest D frame camgate sends) the buffer grows with what
  arrives instead, through the staging buffer: a header alone never makes the reader
  take more memory than the bytes it has received, as with aiohttp's reader.

A payload is unmasked in place (aiohttp's C websocket_mask), and a BINARY message's buffer
is never touched again once returned: the tunnel writes views of it to its sockets.

It checks what aiohttp's reader checks, and fails with the same close codes: reserved bits
(no extension is negotiated with a reader taking over), unknown opcodes, fragmented or
oversized control frames, continuation frames out of place, messages of ``max_message``
bytes or more (1009), TEXT that is not UTF-8 (1007), malformed CLOSE payloads. Masked and
unmasked frames are both taken, as aiohttp takes them. Fragmented messages are put back
together; control frames between their fragments are returned in order.
"""

from __future__ import annotations

import threading

from aiohttp import WSMessage, WSMsgType

try:  # aiohttp's masking, in C when compiled (see ws_frames.py)
    from aiohttp._websocket.helpers import websocket_mask
except ImportError:  # pragma: no cover - a later aiohttp moved it
    websocket_mask = None

STAGING_SIZE = 256 * 1024  # see the module's docstring: whole frames, and room over
DIRECT_FROM = 1024
DIRECT_UP_TO = 256 * 1024 + 3
TAIL = 1024  # room past a direct frame's payload (see the module's docstring); over a header

_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_OPCODES = {_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG}
_TYPES = {_TEXT: WSMsgType.TEXT, _BINARY: WSMsgType.BINARY, _PING: WSMsgType.PING, _PONG: WSMsgType.PONG}
# Close codes a peer may send (RFC 6455 section 7.4, as aiohttp's WSCloseCode lists them);
# 3000 and up are for applications.
_CLOSE_CODES = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
_new_message = tuple.__new__  # WSMessage without its NamedTuple constructor, as aiohttp does

NOTHING: list[WSMessage] = []  # never appended to: returned when a read completes nothing


class WebSocketProtocolError(Exception):
    """The peer broke RFC 6455; ``code`` is the close code to answer with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


_staging = threading.local()


def shared_staging() -> bytearray:
    """This thread's staging buffer. Readers share it: whatever a read leaves in it is
    parsed (or copied out) before the read's callback returns, and the next read of any
    reader starts from its own leftovers."""
    buffer = getattr(_staging, "buffer", None)
    if buffer is None:
        buffer = _staging.buffer = bytearray(STAGING_SIZE)
    return buffer


class FrameReader:
    """Parses one connection's WebSocket frames into aiohttp ``WSMessage`` tuples:
    BINARY (a bytes or bytearray payload, or a memoryview of one), TEXT (str), PING and
    PONG (bytes), and CLOSE (its code, 0 when it has none, and its reason as ``extra``).
    After a CLOSE, or an error, whatever else arrives is ignored."""

    def __init__(self, max_message: int, staging: bytearray | None = None) -> None:
        if websocket_mask is None:  # pragma: no cover - see ws_link.take_over
            raise RuntimeError("aiohttp's websocket_mask is not available")
        if max_message <= 0:
            raise ValueError("max_message must be positive")
        self.max_message = max_message
        self._staging = staging if staging is not None else shared_staging()
        self._rest = b""  # the start of a frame not whole yet (header, or a small frame)
        # A frame read straight into its own buffer: the payload so far, and its header.
        self._frame: bytearray | None = None
        self._filled = 0
        self._frame_size = 0  # its payload's (the buffer is larger: see TAIL)
        self._growing = False
        self._frame_fin = True
        self._frame_opcode = 0
        self._frame_mask = b""
        # A fragmented message being put back together.
        self._message_opcode: int | None = None
        self._fragments = bytearray()
        self.finished = False  # a CLOSE came, or the peer broke the protocol

    # --- BufferedProtocol's side ------------------------------------------------------

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next bytes read go."""
        if self._frame is not None and not self._growing:
            return memoryview(self._frame)[self._filled:]
        rest, staging = self._rest, self._staging
        if rest:
            staging[: len(rest)] = rest
        return memoryview(staging)[len(rest):]

    def buffer_updated(self, size: int) -> list[WSMessage]:
        """``size`` bytes were read into the last buffer: the messages they complete.
        Raises :class:`WebSocketProtocolError` when the peer broke the protocol."""
        if self.finished:
            self._rest, self._frame, self._growing = b"", None, False
            return NOTHING
        frame = self._frame
        if frame is None:
            end = len(self._rest) + size
            self._rest = b""
            return self._parse(memoryview(self._staging), 0, end)
        out: list[WSMessage] = []
        used = size
        if self._growing:
            used = min(size, self._frame_size - len(frame))
            frame += memoryview(self._staging)[:used]
            if len(frame) < self._frame_size:
                return NOTHING
            self._frame, self._growing = None, False
            if self._frame_mask:
                websocket_mask(self._frame_mask, frame)
            self._frame_done(out, self._frame_fin, self._frame_opcode, frame)
            if used < size:  # the read went on into the next frames
                out += self._parse(memoryview(self._staging), used, size)
            return out
        filled = self._filled = self._filled + size
        length = self._frame_size
        if filled < length:
            return NOTHING
        self._frame = None
        # What came past the payload (into TAIL) is the next frames' start: taken out
        # before unmasking, which runs over the whole buffer.
        after = bytes(memoryview(frame)[length:filled]) if filled > length else b""
        if self._frame_mask:
            websocket_mask(self._frame_mask, frame)
        self._frame_done(out, self._frame_fin, self._frame_opcode, memoryview(frame)[:length])
        if after:
            out += self._parse(memoryview(after), 0, len(after))
        return out

    def feed(self, data: bytes) -> list[WSMessage]:
        """Bytes already read (aiohttp's, tests'): the messages they complete."""
        out: list[WSMessage] = []
        data = memoryview(data)
        while data:
            with self.get_buffer() as room:
                size = min(len(room), len(data))
                room[:size] = data[:size]
            data = data[size:]
            out += self.buffer_updated(size)
        return out

    # --- parsing ---------------------------------------------------------------------

    def _parse(self, view: memoryview, pos: int, end: int) -> list[WSMessage]:
        out: list[WSMessage] = []
        while end - pos >= 2 and not self.finished:
            first, second = view[pos], view[pos + 1]
            fin, opcode, length = first & 0x80, first & 0x0F, second & 0x7F
            if first & 0x70:
                raise self._fail(1002, "Received frame with non-zero reserved bits")
            if opcode not in _OPCODES:
                raise self._fail(1002, f"Unexpected opcode={opcode!r}")
            if opcode > 0x7:
                if not fin:
                    raise self._fail(1002, "Received fragmented control frame")
                if length > 125:
                    raise self._fail(1002, "Control frame payload cannot be larger than 125 bytes")
            start = pos + 2
            if length == 126:
                if end - start < 2:
                    break
                length = view[start] << 8 | view[start + 1]
                start += 2
            elif length == 127:
                if end - start < 8:
                    break
                length = int.from_bytes(view[start : start + 8], "big")
                start += 8
            if opcode <= 0x7 and length + len(self._fragments) >= self.max_message:
                raise self._fail(1009, f"Message size {length + len(self._fragments)} exceeds limit {self.max_message}")
            mask = b""
            if second & 0x80:
                if end - start < 4:
                    break
                mask = bytes(view[start : start + 4])
                start += 4
            stop = start + length
            if stop <= end:
                if mask:
                    payload = bytearray(view[start:stop])
                    websocket_mask(mask, payload)
                else:
                    payload = bytes(view[start:stop])
                pos = stop
                self._frame_done(out, fin, opcode, payload)
                continue
            if length < DIRECT_FROM:
                break  # kept in _rest, whole header and all
            if length <= DIRECT_UP_TO:  # the rest of this frame goes straight into its own buffer
                frame = bytearray(length + TAIL)
                frame[: end - start] = view[start:end]
                self._frame, self._filled, self._frame_size = frame, end - start, length
            else:
                self._frame, self._frame_size, self._growing = bytearray(view[start:end]), length, True
            self._frame_fin, self._frame_opcode, self._frame_mask = bool(fin), opcode, mask
            pos = end
        if pos < end and not self.finished:
            self._rest = bytes(view[pos:end])
        return out

    def _frame_done(self, out: list[WSMessage], fin: int | bool, opcode: int, payload: bytes | bytearray) -> None:
        if opcode > 0x7:
            if opcode == _CLOSE:
                out.append(self._close_message(payload))
                self.finished = True
            else:
                out.append(_new_message(WSMessage, (_TYPES[opcode], bytes(payload), None)))
            return
        if opcode == _CONTINUATION:
            if self._message_opcode is None:
                raise self._fail(1002, "Continuation frame for non started message")
            self._fragments += payload
            if not fin:
                return
            opcode, payload = self._message_opcode, self._fragments
            self._message_opcode, self._fragments = None, bytearray()
        elif self._message_opcode is not None:
            raise self._fail(1002, f"The opcode in non-fin frame is expected to be zero, got {opcode!r}")
        elif not fin:
            self._message_opcode = opcode
            self._fragments = bytearray(payload)
            return
        if opcode == _TEXT:
            try:
                text = str(payload, "utf-8")  # a direct frame's is a view
            except UnicodeDecodeError:
                raise self._fail(1007, "Invalid UTF-8 text message") from None
            out.append(_new_message(WSMessage, (WSMsgType.TEXT, text, None)))
        else:
            out.append(_new_message(WSMessage, (WSMsgType.BINARY, payload, None)))

    def _close_message(self, payload: bytes | bytearray) -> WSMessage:
        if not payload:
            return _new_message(WSMessage, (WSMsgType.CLOSE, 0, ""))
        if len(payload) < 2:
            raise self._fail(1002, f"Invalid close frame: {bytes(payload)!r}")
        code = int.from_bytes(payload[:2], "big")
        if code < 3000 and code not in _CLOSE_CODES:
            raise self._fail(1002, f"Invalid close code: {code}")
        try:
            reason = bytes(payload[2:]).decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail(1007, "Invalid UTF-8 text message") from None
        return _new_message(WSMessage, (WSMsgType.CLOSE, code, reason))

    def _fail(self, code: int, reason: str) -> WebSocketProtocolError:
        self.finished = True
        self._rest, self._frame, self._growing = b"", None, False
        return WebSocketProtocolError(code, reason)
