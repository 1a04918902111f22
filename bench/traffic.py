"""The camera and the viewer of benchmarks 1, 2 and 4: an asyncio camera server whose
first byte picks what a connection does, and the viewer's transfers against it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass

BLOCK = 64 * 1024
WINDOW = 512 * 1024  # most bytes in flight in a windowed transfer: under the tunnel's 1 MiB bound
PAYLOAD = os.urandom(256 * 1024)  # a multiple of BLOCK
ACK = b"A"  # one per BLOCK received, from the receiving end of a transfer


class BenchCamera(asyncio.Protocol):
    """The camera end of one connection. Its first byte picks what it does:

    ``S`` + 8-byte length   stream that many bytes as fast as the socket takes them;
    ``W`` + 8-byte length   the same, but never more than WINDOW bytes ahead of the ACKs
                            the viewer sends (one per BLOCK it has received);
    ``U``                   swallow everything, sending one ACK per BLOCK (the camera
                            server records how much arrived and when the last byte did);
    ``E``                   echo.
    """

    def __init__(self, owner: "CameraServer") -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.header = b""
        self.mode = b""
        self.to_send = 0
        self.sent = 0
        self.acked = 0  # bytes the viewer has acknowledged (W)
        self.received = 0  # bytes received (U)
        self.paused = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.mode:
            self.header += data
            if self.header[:1] in (b"S", b"W") and len(self.header) < 9:
                return
            self.mode = self.header[:1]
            if self.mode in (b"S", b"W"):
                self.to_send = int.from_bytes(self.header[1:9], "big")
                data = self.header[9:]
            else:
                data = self.header[1:]
            if self.mode == b"U":
                self.owner.sink_bytes = 0
            self._send()
        if not data:
            return
        if self.mode == b"W":
            self.acked += data.count(ACK) * BLOCK
            self._send()
        elif self.mode == b"U":
            before = self.received // BLOCK
            self.received += len(data)
            self.owner.sink_bytes = self.received
            self.owner.sink_last = time.perf_counter()
            if self.received // BLOCK > before:
                self.transport.write(ACK * (self.received // BLOCK - before))
        elif self.mode == b"E":
            self.transport.write(data)

    def _send(self) -> None:
        windowed = self.mode == b"W"
        while self.to_send > 0 and not self.paused and not self.transport.is_closing():
            room = len(PAYLOAD)
            if windowed:
                room = min(room, WINDOW - (self.sent - self.acked))
                if room <= 0:
                    return
            piece = PAYLOAD[: min(room, self.to_send)]
            self.to_send -= len(piece)
            self.sent += len(piece)
            self.transport.write(piece)  # may call pause_writing at once

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._send()


class CameraServer:
    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.sink_bytes = 0
        self.sink_last = 0.0

    async def start(self, backlog: int = 100) -> "CameraServer":
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: BenchCamera(self), "127.0.0.1", 0, backlog=backlog)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


class _Viewer(asyncio.Protocol):
    """Counts what a download brings, acknowledging each BLOCK when ``ack`` is set."""

    def __init__(self, target: int, ack: bool) -> None:
        self.target = target
        self.ack = ack
        self.got = 0
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        before = self.got // BLOCK
        self.got += len(data)
        if self.ack and self.got // BLOCK > before:
            self.transport.write(ACK * (self.got // BLOCK - before))
        if self.got >= self.target and not self.done.done():
            self.done.set_result(time.perf_counter())

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"closed after {self.got} of {self.target} bytes"))


def _abort(transport: asyncio.BaseTransport) -> None:
    if not transport.is_closing():
        transport.abort()


@dataclass(frozen=True)
class Transfer:
    bytes: int  # delivered
    seconds: float  # from the request to the last byte delivered
    dropped: bool = False  # the connection was closed before the end

    @property
    def rate(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


async def download(port: int, size: int, cap: float, windowed: bool = True) -> Transfer:
    """camera -> viewer. Stops early (a shorter transfer, still valid) after ``cap`` s."""
    loop = asyncio.get_running_loop()
    transport, viewer = await loop.create_connection(lambda: _Viewer(size, windowed), "127.0.0.1", port)
    try:
        started = time.perf_counter()
        transport.write((b"W" if windowed else b"S") + size.to_bytes(8, "big"))
        try:
            ended = await asyncio.wait_for(asyncio.shield(viewer.done), cap)
        except asyncio.TimeoutError:
            ended = time.perf_counter()
        except ConnectionError:
            return Transfer(viewer.got, time.perf_counter() - started, dropped=True)
        return Transfer(min(viewer.got, size), ended - started)
    finally:
        _abort(transport)


async def upload(port: int, camera: CameraServer, size: int, cap: float) -> Transfer:
    """viewer -> camera, never more than WINDOW bytes ahead of the camera's ACKs."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        camera.sink_bytes = sent = acked = 0
        started = time.perf_counter()
        writer.write(b"U")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(cap):
                while sent < size:
                    while sent - acked >= WINDOW:
                        acks = await reader.read(4096)
                        if not acks:
                            raise ConnectionError(f"closed after {sent} bytes sent")
                        acked += acks.count(ACK) * BLOCK
                    piece = PAYLOAD[: min(size - sent, len(PAYLOAD), WINDOW - (sent - acked))]
                    writer.write(piece)
                    sent += len(piece)
                    await writer.drain()
        async with asyncio.timeout(30):
            while camera.sink_bytes < sent:
                await asyncio.sleep(0.002)
        return Transfer(camera.sink_bytes, camera.sink_last - started)
    finally:
        _abort(writer.transport)


async def ping_pong(port: int, rounds: int, warmup: int = 100, size: int = 64) -> list[float]:
    """Seconds per round trip of ``size`` bytes, after ``warmup`` unmeasured ones."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    message = os.urandom(size)
    samples = []
    try:
        async with asyncio.timeout(120):
            writer.write(b"E")
            for i in range(warmup + rounds):
                started = time.perf_counter()
                writer.write(message)
                echoed = await reader.readexactly(size)
                elapsed = time.perf_counter() - started
                if echoed != message:
                    raise RuntimeError("the echo differs from what was sent")
                if i >= warmup:
                    samples.append(elapsed)
    finally:
        _abort(writer.transport)
    return samples

