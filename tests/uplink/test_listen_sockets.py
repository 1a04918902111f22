"""The relay's public listeners (listen_sockets.py): bound in the step that asks for them."""

from __future__ import annotations

import asyncio
import socket

import pytest
import uvloop

from camgate.uplink.listen_sockets import PublicListeners

from tests.support.processes import free_port


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def echoes(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    try:
        return await reader.readexactly(4)
    finally:
        writer.close()


def bound_without_a_loop_step(listeners: PublicListeners, port: int) -> asyncio.Server:
    """listen() run to its end in one step: StopIteration at the first send, not a wait.

    After a relay restart a thousand devices' forwards are bound within a second or two;
    a listener that waits for a step of the loop (as create_server(host, port) does for
    its host's addresses) waits behind every other device's work in that step."""
    step = listeners.listen(Echo, port)
    with pytest.raises(StopIteration) as done:
        step.send(None)
    return done.value.value


async def test_a_public_listener_is_bound_on_the_port_asked_for_and_frees_it_on_close():
    listeners = PublicListeners("127.0.0.1")
    port = free_port()
    server = await listeners.listen(Echo, port)
    try:
        assert server.sockets[0].getsockname() == ("127.0.0.1", port)
        assert await echoes(port) == b"ping"
        with pytest.raises(OSError):  # a port in use: the caller picks another
            await listeners.listen(Echo, port)
    finally:
        server.close()
    again = await listeners.listen(Echo, port)  # free again at once (SO_REUSEADDR)
    again.close()


def test_on_uvloop_a_public_listener_is_bound_without_a_loop_step_once_the_host_is_resolved():
    async def main():
        listeners = PublicListeners("127.0.0.1")
        first = await listeners.listen(Echo, 0)  # the host's addresses resolved here, once
        second = bound_without_a_loop_step(listeners, 0)
        try:
            assert await echoes(second.sockets[0].getsockname()[1]) == b"ping"
        finally:
            first.close()
            second.close()

    uvloop.run(main())


async def test_every_interface_is_a_listener_on_each_of_its_addresses():
    port = free_port()
    server = await PublicListeners("").listen(Echo, port)
    try:
        assert {sock.getsockname()[1] for sock in server.sockets} == {port}
        assert await echoes(port) == b"ping"
        assert all(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) for sock in server.sockets)
    finally:
        server.close()
