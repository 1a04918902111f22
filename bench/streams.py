"""Byte-exact camera streams for the chaos run and the soak.

A viewer connects to a camera's public port and asks, in 24 bytes, for a stream: a seed,
a length and a pace (bytes per second; 0: as fast as the socket takes them). The camera
sends that many bytes of a pattern that depends on the seed and the offset, and keeps the
sha256 of what it wrote. The viewer hashes what it receives: a stream that arrives whole
is intact when both digests match. A stream that ends early was cut (a kill closed it):
its prefix is checked against the pattern, and the viewer asks for a new one.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import struct
from collections import Counter
from dataclasses import dataclass, field

REQUEST = struct.Struct("!QQQ")  # seed, length, bytes per second (0: unpaced)
CHUNK = 64 * 1024
PATTERN_SIZE = (1 << 20) - 1  # odd, so the pattern never lines up with the chunks
_PATTERN = random.Random(20240917).randbytes(PATTERN_SIZE)
_WRAPPED = memoryview(_PATTERN + _PATTERN[:CHUNK])  # any CHUNK-long slice without wrapping
STALL_S = 20.0  # a viewer that gets nothing for this long gives up: the relay never told it


def stream_piece(seed: int, offset: int, size: int) -> memoryview:
    """Bytes ``offset`` to ``offset + size`` (``size`` up to CHUNK) of stream ``seed``."""
    start = (seed * 7919 + offset) % PATTERN_SIZE
    return _WRAPPED[start:start + size]


def stream_digest(seed: int, length: int) -> str:
    digest = hashlib.sha256()
    for offset in range(0, length, CHUNK):
        digest.update(stream_piece(seed, offset, min(CHUNK, length - offset)))
    return digest.hexdigest()


class _NoDigest:
    def update(self, data) -> None:
        pass

    def hexdigest(self) -> str:
        return ""


class PacedCamera:
    """The camera: one asyncio server, any number of streams at once. ``hashed=False``
    skips the sha256 (the digest is then ""), for viewers that compare every byte with
    the pattern instead: sha256 costs a core at a few hundred MB/s."""

    def __init__(self, hashed: bool = True) -> None:
        self.hashed = hashed
        self.server: asyncio.Server | None = None
        self.port = 0
        self._waiting: dict[int, asyncio.Future[tuple[int, str]]] = {}

    async def start(self) -> "PacedCamera":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def expect(self, seed: int) -> asyncio.Future[tuple[int, str]]:
        """What the camera will have sent for ``seed``: (bytes, sha256 hex), once it stops."""
        return self._waiting.setdefault(seed, asyncio.get_running_loop().create_future())

    def forget(self, seed: int) -> None:
        self._waiting.pop(seed, None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        sent, digest = 0, hashlib.sha256() if self.hashed else _NoDigest()
        seed = None
        try:
            async with asyncio.timeout(30):
                seed, length, rate = REQUEST.unpack(await reader.readexactly(REQUEST.size))
            started = loop.time()
            while sent < length:
                piece = stream_piece(seed, sent, min(CHUNK, length - sent))
                writer.write(piece)
                digest.update(piece)
                sent += len(piece)
                await writer.drain()
                ahead = sent / rate - (loop.time() - started) if rate else 0
                if ahead > 0:
                    await asyncio.sleep(ahead)
            # close, not abort: the transport may still hold the stream's last bytes
            # (drain returns below its high-water mark), and abort would drop them.
            writer.close()
        except (OSError, asyncio.IncompleteReadError):  # TimeoutError is an OSError
            pass  # the tunnel went away under the stream: the viewer sees it cut
        finally:
            waiting = self._waiting.get(seed)
            if waiting is not None and not waiting.done():
                waiting.set_result((sent, digest.hexdigest()))
            if not writer.transport.is_closing():
                writer.transport.abort()


INTACT, CORRUPT, CUT, NO_STREAM, STALLED = "intact", "corrupt", "cut", "no stream", "stalled"


@dataclass
class Tally:
    """What a group of viewers saw: streams by outcome, bytes, and the first few oddities."""

    outcomes: Counter = field(default_factory=Counter)
    bytes: int = 0
    cut_prefix_intact: int = 0  # cut streams whose bytes so far were the camera's
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.notes) < 5:
            self.notes.append(text)


async def view(port: int, camera: PacedCamera, seed: int, length: int, rate: int, tally: Tally) -> str:
    """One stream through ``port``; returns its outcome, also counted in ``tally``."""
    sent = camera.expect(seed)
    digest, got, ended = hashlib.sha256(), 0, CUT
    try:
        try:
            async with asyncio.timeout(10):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:  # TimeoutError included
            tally.outcomes[NO_STREAM] += 1
            return NO_STREAM
        try:
            writer.write(REQUEST.pack(seed, length, rate))
            while got < length:
                async with asyncio.timeout(STALL_S):
                    chunk = await reader.read(4 * CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                got += len(chunk)
                tally.bytes += len(chunk)
        except TimeoutError:
            ended = STALLED
            tally.note(f"port {port}: nothing for {STALL_S:.0f} s after {got} of {length} bytes")
        except OSError:
            pass
        finally:
            writer.transport.abort()
        if got == 0 and ended != STALLED:
            ended = NO_STREAM  # closed before the first byte: the tunnel was not there
        elif got == length:
            try:
                async with asyncio.timeout(10):
                    camera_sent = await sent
            except TimeoutError:
                camera_sent = None  # a viewer got a whole stream the camera never finished
            ended = INTACT if camera_sent == (length, digest.hexdigest()) else CORRUPT
        elif got > length:
            ended = CORRUPT
        if ended == CORRUPT:
            tally.note(f"port {port}: stream {seed} of {length} bytes arrived with {got} bytes, sha256 differs")
        if ended == CUT and stream_digest(seed, got) == digest.hexdigest():
            tally.cut_prefix_intact += 1
        tally.outcomes[ended] += 1
        return ended
    finally:
        camera.forget(seed)


async def keep_viewing(port: int, camera: PacedCamera, seeds, length: int, rate: int, tally: Tally) -> None:
    """One viewer, stream after stream (seeds from the shared ``seeds`` iterator), until
    cancelled; a stream that could not start is asked for again soon, as a player does."""
    while True:
        if await view(port, camera, next(seeds), length, rate, tally) not in (INTACT, CORRUPT):
            await asyncio.sleep(0.2)


async def stop_viewers(tasks: list[asyncio.Task]) -> None:
    """Cancel ``tasks`` and wait for them. A cancel that lands just as an awaited call
    completes can be lost on older Pythons (asyncio.wait_for before 3.12 swallows it; a
    soak once hung so), and the viewer would stream on: cancel until every task ends."""
    while tasks:
        for task in tasks:
            task.cancel()
        _, pending = await asyncio.wait(tasks, timeout=1)
        tasks = list(pending)
