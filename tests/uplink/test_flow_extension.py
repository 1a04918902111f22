"""camgate's per-connection flow control (pause/resume TEXT messages), end to end.

Each rule is tested on its own, without sockets, in test_connection.py; these tests
prove the wiring: that the messages really go on the wire (and nothing a reference peer
would not expect), and that the sessions really stop and start reading sockets. Both
ends are camgate unless a test says it plays a reference peer. Everything runs on
loopback with real sockets; the relay, the tunnel client, the cameras and the viewers
share one event loop, which makes the tunnel slower than in production, not faster.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import socket
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import WSMsgType

from camgate.uplink.protocol import (
    Forward,
    OpenFrame,
    build_extension,
    build_hello,
    decode_frame,
    encode_close,
    encode_data,
)
from camgate.uplink.flow import FlowLimits
from camgate.uplink.session import TunnelSession, _Leg

from .loopback import read_eof, spec_for, tunnel_up, wait_until

LIMITS = FlowLimits()


def download_bytes(size: int) -> bytes:
    """What the test camera's ``G`` mode sends for ``size``."""
    return random.Random(size).randbytes(size)


async def slow_socket_viewer(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, socket.socket]:
    """A viewer with a small receive buffer, so the kernel holds little of what it does
    not read and the relay's own buffer shows it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=32 * 1024)
    return reader, writer, sock


def thin_link(leg: _Leg, size: int = 32 * 1024) -> None:
    """Keep the kernel's send buffer of ``leg``'s socket small, as a thin link's
    bandwidth-delay product would: on loopback it grows to 4 MiB and would hide a slow
    reader from the relay for that long."""
    leg.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def relay_leg_of(session: TunnelSession, sock: socket.socket) -> _Leg:
    """The relay's leg for the viewer whose socket is ``sock``."""
    name = sock.getsockname()
    for channel in session.connection.table.values():
        leg = channel.socket
        if leg.transport is not None and leg.transport.get_extra_info("peername") == name:
            return leg
    raise AssertionError("the relay has no connection for this viewer")


async def flow_tunnel(relay, camera_port: int, camid: int, make_client, **client_kwargs):
    device, _ = relay.register_device(camid)
    client = make_client(spec_for(device.access_token, Forward("http", "http", "127.0.0.1", camera_port)),
                         **client_kwargs)
    await tunnel_up(client, relay, camid)
    return client, relay.tunnel(camid)


# --- negotiation ------------------------------------------------------------------


async def test_two_camgate_ends_turn_flow_control_on(relay, camera, make_client):
    cam = await camera()
    client, tunnel = await flow_tunnel(relay, cam.port, 2000, make_client)
    at_relay, at_client = tunnel.session.connection, client.session.connection
    await wait_until(lambda: at_relay.flow_active and at_client.flow_active, what="flow control on")
    # Both ends also agreed on 256 KiB D payloads, each way (the hello still says 4096).
    await wait_until(lambda: at_relay.send_payload_max == at_client.send_payload_max == 256 * 1024,
                     what="256 KiB payloads both ways")


async def test_client_offers_flow_to_a_reference_relay_which_ignores_it(camera, make_client, aiohttp_fake_relay):
    cam = await camera()
    client = make_client(
        spec_for(aiohttp_fake_relay.token, Forward("rtsp", "tcp", "127.0.0.1", cam.port), uplink=aiohttp_fake_relay.address)
    )
    ws = await aiohttp_fake_relay.tunnel()
    await ws.send_bytes(b"O\x01\x00\x00")
    await ws.send_bytes(encode_data(1, b"ping"))
    frame = decode_frame((await ws.receive()).data)
    assert frame.payload == b"ping"
    # The offer came right after the hello, as a TEXT the reference relay sets aside...
    assert [json.loads(t) for t in aiohttp_fake_relay.texts] == [{"camgate": 1, "flow": 1, "max_payload": 262144}]
    # ...and as that relay never offers flow control, the client does not use it.
    assert not client.session.connection.flow_active


async def test_client_that_does_not_offer_flow_sends_what_the_reference_agent_sends(camera, make_client,
                                                                                    aiohttp_fake_relay):
    cam = await camera()
    client = make_client(
        spec_for(aiohttp_fake_relay.token, Forward("rtsp", "tcp", "127.0.0.1", cam.port), uplink=aiohttp_fake_relay.address),
        limits=FlowLimits(announce_flow=False),
    )
    ws = await aiohttp_fake_relay.tunnel()
    # The relay offers flow control; a client that did not offer it must not use it.
    await ws.send_str(build_extension(flow=True))
    await ws.send_bytes(b"O\x01\x00\x00")
    await ws.send_bytes(encode_data(1, b"ping"))
    assert decode_frame((await ws.receive()).data).payload == b"ping"
    assert aiohttp_fake_relay.texts == [] and not client.session.connection.flow_active


async def test_relay_keeps_reference_behaviour_with_a_reference_agent(relay, caplog):
    """A client that never offers flow control (the reference agent) gets only spec
    frames from the relay: no pause, and a viewer that does not read is closed with C
    past per_connection_max, as before the extension."""
    device, _ = relay.register_device(2001)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            f"{relay.url}/ra-proxy", protocols=("ra-proxy",), headers={"Authorization": device.access_token}
        )
        await ws.send_str(build_hello([Forward("rtsp", "tcp", "10.0.0.1", 554)]))
        extension = json.loads((await ws.receive()).data)
        assert extension["camgate"] == 1 and extension["flow"] == 1  # offered, never taken up
        session = relay.tunnel(2001).session
        reader, writer, sock = await slow_socket_viewer(relay.tunnel(2001).ports["rtsp"])
        frame = decode_frame((await ws.receive()).data)
        assert isinstance(frame, OpenFrame)
        cid = frame.client_id
        thin_link(relay_leg_of(session, sock))
        chunk = os.urandom(64 * 1024)
        for _ in range(40):  # 2.5 MiB for a viewer that never reads
            await ws.send_bytes(encode_data(cid, chunk))
        messages = []
        async with asyncio.timeout(5):
            while True:
                msg = await ws.receive()
                messages.append(msg)
                if msg.type is not WSMsgType.BINARY or decode_frame(msg.data) == decode_frame(encode_close(cid)):
                    break
        assert all(m.type is WSMsgType.BINARY for m in messages)  # no TEXT: no pause
        at_relay = session.connection
        assert not at_relay.flow_active and at_relay.pauses_sent == 0 and at_relay.pauses > 0
        assert "reader is too slow" in caplog.text
        await ws.close()
    sock.close()


# --- pause and resume, one connection at a time --------------------------------------


async def test_pause_and_resume_reach_the_socket_and_die_with_the_id(camera, make_client, aiohttp_fake_relay):
    """The fake relay speaks the extension by hand: pause stops the client reading the
    camera's socket, resume starts it again, and an id reused after C starts unpaused."""
    cam = await camera()
    client = make_client(
        spec_for(aiohttp_fake_relay.token, Forward("rtsp", "tcp", "127.0.0.1", cam.port), uplink=aiohttp_fake_relay.address)
    )
    ws = await aiohttp_fake_relay.tunnel()
    await ws.send_str(build_extension(flow=True))

    async def echoed(cid: int, data: bytes) -> bytes:
        await ws.send_bytes(encode_data(cid, data))
        got = b""
        async with asyncio.timeout(2):
            while len(got) < len(data):
                frame = decode_frame((await ws.receive()).data)
                assert frame.client_id == cid
                got += frame.payload
        return got

    def camera_socket_read() -> bool:
        return client.session.connection.table.get(5).socket.transport.is_reading()

    await ws.send_bytes(b"O\x05\x00\x00")
    assert await echoed(5, b"a") == b"a"
    await wait_until(lambda: client.session.connection.flow_active, what="flow control on")

    await ws.send_str(build_extension(pause=[5]))
    await wait_until(lambda: not camera_socket_read(), what="the camera's socket paused")
    await ws.send_str(build_extension(resume=[5]))
    await wait_until(camera_socket_read, what="the camera's socket read again")
    assert await echoed(5, b"b") == b"b"

    await ws.send_str(build_extension(pause=[5]))
    await wait_until(lambda: not camera_socket_read(), what="the camera's socket paused")
    await ws.send_bytes(encode_close(5))
    await wait_until(lambda: cam.open_connections == 0, what="the camera connection to close")
    await ws.send_bytes(b"O\x05\x00\x00")  # the same id, a new connection: not paused
    assert await echoed(5, b"c") == b"c"
    assert camera_socket_read() and client.session.connection.pauses_received == 2


# --- a viewer that stops reading ------------------------------------------------------


async def test_stalled_viewer_is_paused_not_closed_and_costs_the_others_nothing(
    open_viewer, relay, camera, make_client, caplog
):
    cam = await camera("select")
    client, tunnel = await flow_tunnel(relay, cam.port, 2002, make_client)
    at_relay, at_client = tunnel.session.connection, client.session.connection
    await wait_until(lambda: at_relay.flow_active and at_client.flow_active, what="flow control on")
    port = tunnel.ports["http"]
    loop = asyncio.get_running_loop()

    other_reader, other_writer = await open_viewer(port)
    other_writer.write(b"S")  # the camera streams to this viewer as fast as it reads

    async def read_other(seconds: float) -> int:
        moved, started = 0, loop.time()
        while loop.time() - started < seconds:
            moved += len(await asyncio.wait_for(other_reader.read(1 << 20), 2))
        return moved

    alone = await read_other(1.0)

    # The stalled viewer asks for a large download, sent unpaced, and reads nothing.
    size = 24 * 1024 * 1024
    reader, writer, sock = await slow_socket_viewer(port)
    writer.write(b"G" + size.to_bytes(8, "big"))
    await wait_until(lambda: len(at_relay.table) == 2, what="the second connection")
    stalled = relay_leg_of(tunnel.session, sock)
    moved, peak, started = 0, 0, loop.time()
    while loop.time() - started < 3.0:
        moved += len(await asyncio.wait_for(other_reader.read(1 << 20), 2))
        peak = max(peak, stalled.buffered())
    print(f"other viewer: {alone / 1e6:.0f} MB alone in 1 s, {moved / 1e6:.0f} MB in the 3 s stall; "
          f"stalled viewer's buffer at the relay peaked at {peak / 1e6:.2f} MB")

    assert moved > 10_000_000 and moved / 3 > 0.25 * alone  # far from zero, near its own pace
    assert at_relay.pauses == 0 and at_client.pauses == 0  # no reader ever waited
    assert at_relay.pauses_sent >= 1 and at_client.pauses_received >= 1
    assert stalled.channel.live and not stalled.ended  # not closed
    assert stalled.channel.pause_sent and peak <= LIMITS.per_connection_max_negotiated
    assert at_relay.peak_connection_buffer <= LIMITS.per_connection_max_negotiated
    assert relay.buffered_bytes() < LIMITS.per_tunnel

    other_writer.transport.abort()
    digest, received = hashlib.sha256(), 0
    while received < size:  # the stalled viewer reads again: every byte, in order
        data = await asyncio.wait_for(reader.read(1 << 20), 5)
        assert data, f"download cut short after {received} bytes"
        digest.update(data)
        received += len(data)
    assert digest.digest() == hashlib.sha256(download_bytes(size)).digest()
    assert at_relay.resumes_sent >= 1
    assert "too slow" not in caplog.text
    writer.close()


# --- the other direction: a camera slower than its uploader -------------------------------


async def test_slow_camera_gets_a_whole_upload_with_the_extension(open_viewer, relay, camera, make_client, caplog):
    cam = await camera("select", rcvbuf=16 * 1024)
    client, tunnel = await flow_tunnel(relay, cam.port, 2004, make_client)
    at_relay, at_client = tunnel.session.connection, client.session.connection
    await wait_until(lambda: at_relay.flow_active and at_client.flow_active, what="flow control on")
    reader, writer = await open_viewer(tunnel.ports["http"])
    upload = os.urandom(6 * 1024 * 1024)
    writer.write(b"U" + len(upload).to_bytes(8, "big"))
    for start in range(0, len(upload), 65536):
        writer.write(upload[start : start + 65536])
        await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(32), 10) == hashlib.sha256(upload).digest()
    assert "too slow" not in caplog.text
    # The client asked the relay to pause the uploading viewer instead of stopping its reader.
    assert at_client.pauses == 0 and at_client.pauses_sent > 0 and at_client.resumes_sent > 0
    assert at_relay.pauses_received > 0
    assert at_client.peak_connection_buffer <= LIMITS.per_connection_max_negotiated


async def test_a_viewer_that_never_reads_again_is_given_up_and_frees_the_camera(
    open_viewer, make_relay, camera, make_client, caplog
):
    # A camera serves few RTSP sessions; a hung viewer must not hold one for ever.
    relay = await make_relay(limits=FlowLimits(stalled_close_after=1.0))
    cam = await camera("select")
    client, tunnel = await flow_tunnel(relay, cam.port, 2010, make_client)
    at_relay, at_client = tunnel.session.connection, client.session.connection
    await wait_until(lambda: at_relay.flow_active and at_client.flow_active, what="flow control on")
    reader, writer, sock = await slow_socket_viewer(tunnel.ports["http"])
    writer.write(b"S")  # the camera streams; this viewer never reads
    await wait_until(lambda: len(at_relay.table) == 1 and at_relay.table.values()[0].pause_sent,
                     what="the relay pauses the stalled viewer's camera")
    assert cam.open_connections == 1
    await wait_until(lambda: len(at_relay.table) == 0, timeout=5, what="the stalled viewer given up")
    await wait_until(lambda: cam.open_connections == 0, what="the camera's connection closed too")
    assert "nothing drained for 1 s" in caplog.text
    writer.transport.abort()


async def test_a_viewer_that_keeps_up_is_never_cut_whatever_was_on_its_way(open_viewer, make_relay, camera,
                                                                             make_client, caplog):
    """Issue 9 item 13. After a pause more can arrive than the relay's cap for one
    connection (kernel buffers hold it between the two ends); a tiny cap makes that
    happen on loopback. The relay must stop reading the tunnel until the viewer has
    read it, not close the connection."""
    tight = FlowLimits(per_connection=64 * 1024, per_connection_max_negotiated=128 * 1024)
    relay = await make_relay(limits=tight)
    cam = await camera("select")
    client, tunnel = await flow_tunnel(relay, cam.port, 2011, make_client)
    at_relay = tunnel.session.connection
    await wait_until(lambda: at_relay.flow_active, what="flow control on")
    reader, writer, sock = await slow_socket_viewer(tunnel.ports["http"])
    await wait_until(lambda: len(at_relay.table) == 1, what="the connection")
    thin_link(relay_leg_of(tunnel.session, sock))
    size = 8 * 1024 * 1024
    writer.write(b"G" + size.to_bytes(8, "big"))  # sent as fast as the camera can
    digest, received = hashlib.sha256(), 0
    while received < size:  # and read as fast as this viewer can
        data = await asyncio.wait_for(reader.read(1 << 20), 5)
        assert data, f"download cut short after {received} bytes: {caplog.text[-300:]}"
        digest.update(data)
        received += len(data)
    assert digest.digest() == hashlib.sha256(download_bytes(size)).digest()
    assert at_relay.pauses_sent > 0 and at_relay.peak_connection_buffer > tight.per_connection_max_negotiated
    writer.close()
