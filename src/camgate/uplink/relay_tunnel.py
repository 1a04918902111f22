"""One device's live tunnel on the relay, and the hello that opens it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from aiohttp import WSMsgType, web

from .protocol import Hello, ProtocolError, parse_hello
from .session import TunnelSession

HELLO_TIMEOUT = 10.0


class RelayTunnel:
    """One device's live tunnel: its WebSocket session and its public listeners."""

    def __init__(self, camid: int, hello: Hello, session: TunnelSession) -> None:
        self.camid = camid
        self.hello = hello
        self.session = session
        self.proxy_id = uuid.uuid4().hex
        self.listeners: dict[str, asyncio.Server] = {}
        self.ports: dict[str, int] = {}
        # Done once the tunnel is down (a future: an Event's waiter queue costs 0.8 KiB).
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def ended(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)

    def close_listeners(self) -> None:
        for server in self.listeners.values():
            server.close()

    async def stop(self, timeout: float = 5.0) -> None:
        """Close listeners at once (so a successor can bind the same ports), then the rest."""
        self.close_listeners()
        self.session.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.finished), timeout)


async def receive_hello(ws: web.WebSocketResponse) -> Hello | None:
    """The first TEXT message, parsed; None when the client went away first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HELLO_TIMEOUT
    while True:
        msg = await asyncio.wait_for(ws.receive(), max(0.0, deadline - loop.time()))
        if msg.type is WSMsgType.TEXT:
            return parse_hello(msg.data)
        if msg.type is WSMsgType.PING:
            await ws.pong(msg.data)
        elif msg.type is WSMsgType.BINARY:
            raise ProtocolError("a binary frame came before the hello")
        elif msg.type is not WSMsgType.PONG:
            return None
