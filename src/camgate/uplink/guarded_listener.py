"""The relay's HTTP port, accepting connections itself so each is counted at once.

asyncio's own server accepts up to the listen backlog (128) connections at a time and
only later tells the protocol about them, several times over before a protocol can
close any: under a flood that alone passes a 256-file limit. Here each accepted socket
goes straight to the :class:`~.connection_guard.ConnectionGuard`, which counts it or
closes it on the spot, and accepting pauses every few connections so that those
accepted are served (or closed) first. When accept() finds no free descriptor it is
retried a second later, with one log line, not the hundreds a second asyncio writes.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

from aiohttp import web

from .connection_guard import ConnectionGuard
from .listen_sockets import listening_sockets

log = logging.getLogger(__name__)

ACCEPT_BATCH = 16  # connections accepted before the loop serves them
# Connections the kernel queues before accept(): a thousand devices reconnecting within a
# fraction of a second after a restart wait there. Past it their SYNs are dropped, and a
# device's kernel sends the next only a second later (then 3 s, 7 s). Linux caps it at
# net.core.somaxconn (4096 by default).
BACKLOG = 4096
RETRY_WITHOUT_DESCRIPTORS_S = 1.0
_OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class GuardedListener:
    """What an aiohttp site keeps as its server: the listening sockets, and close()."""

    def __init__(self, sockets: list[socket.socket], guard: ConnectionGuard) -> None:
        self.sockets = sockets
        self._guard = guard
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._accept_forever(sock)) for sock in sockets]

    async def _accept_forever(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            for _ in range(ACCEPT_BATCH):
                try:
                    conn, peer = await loop.sock_accept(sock)
                except OSError as error:
                    if error.errno in _OUT_OF_DESCRIPTORS:
                        log.error("cannot accept connections: %s; trying again in %g s",
                                  error.strerror, RETRY_WITHOUT_DESCRIPTORS_S)
                        await asyncio.sleep(RETRY_WITHOUT_DESCRIPTORS_S)
                    else:  # that peer gave up before we took it: on to the next
                        await asyncio.sleep(0.01)
                    continue
                self._guard.accept(conn, peer)
            await asyncio.sleep(0)

    def close(self) -> None:
        for task, sock in zip(self._tasks, self.sockets):
            task.cancel()
            # Closed once the task has let go of it: closing it while asyncio still
            # watches its descriptor could unwatch a new socket given the same number.
            task.add_done_callback(lambda _task, sock=sock: sock.close())

    async def wait_closed(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)


class GuardedSite(web.BaseSite):
    """An aiohttp TCP site whose connections all go through ``guard`` (TLS included)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard) -> None:
        super().__init__(runner, backlog=BACKLOG)
        self._host = host
        self._port = port
        self._guard = guard

    @property
    def name(self) -> str:
        scheme = "https" if self._guard.ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._guard.handler_factory = server
        sockets = await listening_sockets(self._host, self._port, self._backlog)
        self._server = GuardedListener(sockets, self._guard)  # type: ignore[assignment]
