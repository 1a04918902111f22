"""Helpers for the uplink tests: real servers on loopback and ways to wait for them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import socket
from typing import Callable

from camgate.uplink.client import Backoff, SlowRetry, TunnelClient, TunnelSpec, TunnelState
from camgate.uplink.protocol import Forward
from camgate.uplink.relay import RelayServer
from camgate.uplink.tokens import encode_access_token

ADMIN_TOKEN = "test-admin-token"
FAST_BACKOFF = Backoff(first=(0.02, 0.05), cap=0.2)
FAST_SLOW_RETRY = SlowRetry(every=0.1, for_=0.3, then=0.5)


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def echo_through(port: int, size: int = 100_000) -> None:
    """Send ``size`` random bytes to a public port whose camera echoes; they must come back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        data = random.randbytes(size)
        writer.write(data)
        assert await asyncio.wait_for(reader.readexactly(size), 10) == data
    finally:
        writer.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Camera:
    """A TCP server standing in for a camera. Modes, chosen per connection by its first
    byte when ``mode`` is "select": ``E`` echo, ``S`` stream forever, ``N`` never read,
    ``U`` take an upload slowly (8-byte length, then the bytes; answers their SHA-256),
    ``G`` send a download (8-byte length in; that many seeded random bytes out)."""

    def __init__(self, mode: str = "echo", rcvbuf: int | None = None) -> None:
        self.mode = mode
        self.rcvbuf = rcvbuf  # a small one makes a slow reader visible past the kernel
        self.server: asyncio.Server | None = None
        self.port = 0
        self.accepted = 0
        self.closed = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    async def start(self, port: int = 0) -> Camera:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)  # accepted sockets inherit it
        sock.bind(("127.0.0.1", port))
        self.server = await asyncio.start_server(self._handle, sock=sock)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def open_connections(self) -> int:
        return self.accepted - self.closed

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        self._tasks.add(asyncio.current_task())
        try:
            mode = self.mode
            if mode == "select":
                modes = {b"E": "echo", b"S": "stream", b"N": "never-read", b"U": "upload", b"G": "download"}
                mode = modes[await reader.readexactly(1)]
            if mode == "echo":
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            elif mode == "stream":
                chunk = b"v" * 65536
                while True:
                    writer.write(chunk)
                    await writer.drain()
            elif mode == "never-read":
                await asyncio.Event().wait()
            elif mode == "upload":
                remaining = int.from_bytes(await reader.readexactly(8), "big")
                digest = hashlib.sha256()
                while remaining:
                    data = await reader.read(min(remaining, 32 * 1024))
                    digest.update(data)
                    remaining -= len(data)
                    await asyncio.sleep(0.004)  # a slow reader: about 8 MB/s at most
                writer.write(digest.digest())
                await writer.drain()
                await reader.read()
            elif mode == "download":
                size = int.from_bytes(await reader.readexactly(8), "big")
                writer.write(random.Random(size).randbytes(size))
                await writer.drain()
                await reader.read()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closed += 1
            self._writers.discard(writer)
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()






def spec_for(token: str, *forwards: Forward, **kwargs) -> TunnelSpec:
    kwargs.setdefault("key", "test device")
    kwargs.setdefault("tls", False)
    return TunnelSpec(token=token, forwards=forwards, **kwargs)


async def tunnel_up(client: TunnelClient, relay: RelayServer, camid: int, timeout: float = 5.0) -> None:
    await wait_until(
        lambda: client.status.state is TunnelState.UP and relay.tunnel(camid) is not None
        and client.status.endpoints,
        timeout,
        f"tunnel of camid {camid} to come up (client says {client.status.reason!r})",
    )


async def read_eof(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """Everything until the far end closes (reset counts as closed)."""
    chunks = []
    try:
        async with asyncio.timeout(timeout):
            while data := await reader.read(65536):
                chunks.append(data)
    except ConnectionError:
        pass
    return b"".join(chunks)


class _IgnoresText:
    """A relay's WebSocket as the reference relay treats it: a TEXT message after the
    hello (camgate's extension) is set aside, not handed to the test."""

    def __init__(self, ws, texts: list[str]) -> None:
        self._ws = ws
        self._texts = texts

    async def receive(self, *args, **kwargs):
        from aiohttp import WSMsgType

        while True:
            msg = await self._ws.receive(*args, **kwargs)
            if msg.type is not WSMsgType.TEXT:
                return msg
            self._texts.append(msg.data)

    def __getattr__(self, name):
        return getattr(self._ws, name)


class FakeRelay:
    """A bare aiohttp server playing the reference relay, to send a client whatever a
    test wants."""

    token = encode_access_token({"camid": 77, "cmngrid": 1, "uplink": "set-by-the-test.invalid"})

    def __init__(self) -> None:
        self.refuse_upgrade = False
        self.endpoint_status = 200
        self.provisioning_status = 200
        self.provisioning_requests = 0
        self.hello: str | None = None
        self.texts: list[str] = []  # TEXT messages after the hello, which it ignores
        self.address = ""
        self._tunnels: asyncio.Queue = asyncio.Queue()
        self._done = asyncio.Event()
        self._runner = None

    async def start(self) -> FakeRelay:
        from aiohttp import web

        app = web.Application()
        app.add_routes(
            [
                web.get("/v1/token", self._provision),
                web.get("/api/ws-endpoint", self._endpoint),
                web.get("/ra-proxy", self._tunnel),
            ]
        )
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.address = f"127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def _provision(self, request):
        from aiohttp import web

        self.provisioning_requests += 1
        if self.provisioning_status != 200:
            return web.Response(status=self.provisioning_status)
        return web.json_response({"access_token": self.token})

    async def _endpoint(self, request):
        from aiohttp import web

        assert request.headers["Authorization"] == self.token
        if self.endpoint_status != 200:
            return web.Response(status=self.endpoint_status)
        return web.json_response({"domain": self.address, "path": "/ra-proxy"})

    async def _tunnel(self, request):
        from aiohttp import web

        if self.refuse_upgrade:
            return web.Response(status=403)
        ws = web.WebSocketResponse(protocols=("ra-proxy",), autoping=False)
        await ws.prepare(request)
        self.hello = (await ws.receive()).data
        self._tunnels.put_nowait(_IgnoresText(ws, self.texts))
        await self._done.wait()
        return ws

    async def tunnel(self):
        """The next tunnel a client opens, after its hello."""
        return await asyncio.wait_for(self._tunnels.get(), 5)

    async def close(self) -> None:
        self._done.set()
        if self._runner is not None:
            await self._runner.cleanup()


def client_frame(opcode: int, payload: bytes, fin: bool) -> bytes:
    """One masked client-to-server WebSocket frame (RFC 6455), built by hand."""
    mask = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def upgrade_by_hand(port: int, token: str, then: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open the tunnel's WebSocket with a hand-written upgrade request (and ``then``
    right after it, in the same write); the connection once the 101 has come."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ra-proxy HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ra-proxy\r\n"
                  f"Authorization: {token}\r\n\r\n").encode() + then)
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101") and b"ra-proxy" in head, head
    return reader, writer
