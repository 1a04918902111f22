"""The relay's listening sockets: its HTTP port, and a public port per forward.

Made here as asyncio's create_server would make them (SO_REUSEADDR; an IPv6 socket
takes IPv6 only, its IPv4 sibling the rest). The public listeners are bound from
addresses resolved once: loop.create_server(host, port) resolves the host for every
listener, a task and a step of the event loop each, and binding the forwards of a
thousand devices reconnecting after a restart took 0.3 s of the relay's CPU that way
(bench/recovery.py's profile), where a socket handed to create_server takes a tenth.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Callable

PUBLIC_BACKLOG = 100  # asyncio's default for create_server: viewers, a few at a time

AddressInfo = tuple[int, int, int, tuple]  # family, type, proto, socket address


async def resolve_passive(host: str | None, port: int) -> list[AddressInfo]:
    """The addresses to listen on for ``host`` ("" or None: every interface), distinct."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return [(family, kind, proto, address) for family, kind, proto, _, address in dict.fromkeys(infos)]


def listening_socket(info: AddressInfo, backlog: int, port: int | None = None) -> socket.socket:
    """A bound, listening, non-blocking socket for ``info`` (on ``port`` instead of its
    own, when given); the OSError of a port in use as bind raised it."""
    family, kind, proto, address = info
    if port is not None:
        address = (address[0], port, *address[2:])
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # the IPv4 socket takes IPv4
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def listening_sockets(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for ``host`` (every address it names;
    "" or None for every interface)."""
    sockets: list[socket.socket] = []
    try:
        for info in await resolve_passive(host, port):
            try:
                sockets.append(listening_socket(info, backlog))
            except OSError as error:
                address = info[3]
                raise OSError(error.errno, f"cannot listen on {address[0]}:{address[1]}: {error.strerror}") from None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class PublicListeners:
    """Listeners on the relay's ``host``, one port each, its addresses resolved once."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._addresses: list[AddressInfo] | None = None

    async def listen(self, protocol_factory: Callable[[], asyncio.Protocol], port: int) -> asyncio.Server:
        """A server on ``port`` (0: an ephemeral one); OSError when it cannot be bound."""
        loop = asyncio.get_running_loop()
        if self._addresses is None:
            self._addresses = await resolve_passive(self.host, 0)
        if len(self._addresses) != 1:
            # Several addresses (every interface: IPv4 and IPv6) need a server with a
            # socket each, and one port for all: asyncio's create_server sees to that.
            return await loop.create_server(protocol_factory, self.host, port, reuse_address=True,
                                            backlog=PUBLIC_BACKLOG)
        sock = listening_socket(self._addresses[0], PUBLIC_BACKLOG, port)
        try:
            return await loop.create_server(protocol_factory, sock=sock)
        except BaseException:
            sock.close()
            raise
