"""camgate's per-connection flow control (pause/resume TEXT messages), end to end.

Both ends are camgate unless a test says it plays a reference peer. Everything runs on
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
from camgate.uplink.session import HELD_BY_PEER, HELD_BY_TUNNEL, FlowLimits, TunnelSession, _Leg

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
    for leg in session.table.values():
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
    await wait_until(lambda: tunnel.session.flow_active and client.session.flow_active, what="flow control on")
    # Both ends also agreed on 64 KiB D payloads, each way (the hello still says 4096).
    await wait_until(lambda: tunnel.session.send_payload_max == client.session.send_payload_max == 65536,
                     what="64 KiB payloads both ways")


async def test_relay_sends_a_reference_agent_only_what_its_hello_allows(relay, camera, make_client):
    cam = await camera()
    client, tunnel = await flow_tunnel(relay, cam.port, 2002, make_client, limits=FlowLimits(announce_flow=False))
    await wait_until(lambda: client.session.send_payload_max == 65536, what="the relay's offer taken")
    assert tunnel.session.send_payload_max == 4096


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
    assert [json.loads(t) for t in aiohttp_fake_relay.texts] == [{"camgate": 1, "flow": 1, "max_payload": 65536}]
    # ...and as that relay never offers flow control, the client does not use it.
    assert not client.session.flow_active


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
    assert aiohttp_fake_relay.texts == [] and not client.session.flow_active


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
        assert not session.flow_active and session.pauses_sent == 0 and session.pauses > 0
        assert "reader is too slow" in caplog.text
        await ws.close()
    sock.close()


# --- pause and resume, one connection at a time --------------------------------------


async def test_pause_and_resume_reach_the_socket_and_die_with_the_id(camera, make_client, aiohttp_fake_relay, caplog):
    """The fake relay speaks the extension by hand: pause stops the client reading the
    camera, resume starts it again, an unknown id is ignored, and an id reused after C
    starts unpaused."""
    caplog.set_level(logging.DEBUG, logger="camgate.uplink.session")
    cam = await camera()
    client = make_client(
        spec_for(aiohttp_fake_relay.token, Forward("rtsp", "tcp", "127.0.0.1", cam.port), uplink=aiohttp_fake_relay.address)
    )
    ws = await aiohttp_fake_relay.tunnel()
    await ws.send_str(build_extension(flow=True))

    async def echoed(cid: int, data: bytes, timeout: float = 2.0) -> bytes:
        got = b""
        async with asyncio.timeout(timeout):
            while len(got) < len(data):
                frame = decode_frame((await ws.receive()).data)
                assert frame.client_id == cid
                got += frame.payload
        return got

    await ws.send_bytes(b"O\x05\x00\x00")
    await ws.send_bytes(encode_data(5, b"a"))
    assert await echoed(5, b"a") == b"a"
    await wait_until(lambda: client.session.flow_active, what="flow control on")

    await ws.send_str(build_extension(pause=[5, 9]))  # 9 is not open: ignored
    await ws.send_bytes(encode_data(5, b"b"))
    with pytest.raises(TimeoutError):  # the camera echoed it, but its socket is not read
        await echoed(5, b"b", timeout=0.3)
    leg = client.session.table.get(5)
    assert leg.holds == {HELD_BY_PEER} and client.session.pauses_received == 1
    await ws.send_str(build_extension(resume=[5]))
    assert await echoed(5, b"b") == b"b"
    assert leg.holds == set()

    await ws.send_str(build_extension(pause=[5]))
    await ws.send_bytes(encode_close(5))
    await wait_until(lambda: cam.open_connections == 0, what="the camera connection to close")
    await ws.send_bytes(b"O\x05\x00\x00")  # the same id, a new connection: not paused
    await ws.send_bytes(encode_data(5, b"c"))
    assert await echoed(5, b"c") == b"c"

    await ws.send_str('{"camgate": 1, "pause": [70000]}')
    await ws.send_str('{"camgate": 1, "resume": "5"}')
    await ws.send_bytes(encode_data(5, b"d"))
    assert await echoed(5, b"d") == b"d"  # malformed messages changed nothing
    assert "id 9 is not open" in caplog.text
    assert "camgate extension message ignored: pause holds 70000" in caplog.text
    assert "camgate extension message ignored: resume is not a list" in caplog.text
    assert client.status.open_connections == 1


class _FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.reading = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return False


def test_a_socket_is_read_only_when_neither_the_peer_nor_the_tunnel_holds_it():
    leg = _Leg(None, 0, 1)  # hold and release do not need the session
    leg.transport = transport = _FakeTransport()
    leg.hold(HELD_BY_PEER)
    assert not transport.reading
    leg.hold(HELD_BY_TUNNEL)
    leg.release(HELD_BY_PEER)
    assert not transport.reading  # the full queue to the WebSocket still holds it
    leg.release(HELD_BY_PEER)  # twice is harmless
    assert not transport.reading
    leg.hold(HELD_BY_PEER)
    leg.release(HELD_BY_TUNNEL)
    assert not transport.reading  # the peer still holds it
    leg.release(HELD_BY_PEER)
    assert transport.reading


# --- a viewer that stops reading ------------------------------------------------------


async def test_stalled_viewer_is_paused_not_closed_and_costs_the_others_nothing(
    open_viewer, relay, camera, make_client, caplog
):
    cam = await camera("select")
    client, tunnel = await flow_tunnel(relay, cam.port, 2002, make_client)
    session = tunnel.session
    await wait_until(lambda: session.flow_active and client.session.flow_active, what="flow control on")
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
    await wait_until(lambda: len(session.table) == 2, what="the second connection")
    stalled = relay_leg_of(session, sock)
    moved, peak, started = 0, 0, loop.time()
    while loop.time() - started < 3.0:
        moved += len(await asyncio.wait_for(other_reader.read(1 << 20), 2))
        peak = max(peak, stalled.buffered())
    print(f"other viewer: {alone / 1e6:.0f} MB alone in 1 s, {moved / 1e6:.0f} MB in the 3 s stall; "
          f"stalled viewer's buffer at the relay peaked at {peak / 1e6:.2f} MB")

    assert moved > 10_000_000 and moved / 3 > 0.25 * alone  # far from zero, near its own pace
    assert session.pauses == 0 and client.session.pauses == 0  # no reader ever waited
    assert session.pauses_sent >= 1 and client.session.pauses_received >= 1
    assert session.table.get(stalled.client_id) is stalled and not stalled.ended  # not closed
    assert stalled.pause_sent and peak <= LIMITS.per_connection_max_negotiated
    assert session.peak_connection_buffer <= LIMITS.per_connection_max_negotiated
    assert relay.buffered_bytes() < LIMITS.per_tunnel

    other_writer.transport.abort()
    digest, received = hashlib.sha256(), 0
    while received < size:  # the stalled viewer reads again: every byte, in order
        data = await asyncio.wait_for(reader.read(1 << 20), 5)
        assert data, f"download cut short after {received} bytes"
        digest.update(data)
        received += len(data)
    assert digest.digest() == hashlib.sha256(download_bytes(size)).digest()
    assert session.resumes_sent >= 1
    assert "too slow" not in caplog.text
    writer.close()


# Shorter stalls, so that a viewer at a few hundred KB/s is too slow for the reference
# behaviour (it must drain half of per_connection, 128 KiB, within stall_timeout).
QUICK_GIVE_UP = FlowLimits(stall_timeout=0.2)


@pytest.mark.parametrize("flow", [True, False], ids=["extension", "reference-agent"])
async def test_slow_viewer_download(flow, open_viewer, make_relay, camera, make_client, caplog):
    """A viewer on a thin link (about 300 KB/s) downloads 2 MB. Without the extension it
    is closed once the relay holds per_connection_max (1 MiB) for it; with it, the
    camera is paused instead and the viewer gets everything."""
    relay = await make_relay(limits=QUICK_GIVE_UP)
    cam = await camera("select")
    client, tunnel = await flow_tunnel(relay, cam.port, 2003, make_client,
                                       limits=replace(QUICK_GIVE_UP, announce_flow=flow))
    session = tunnel.session
    if flow:
        await wait_until(lambda: session.flow_active, what="flow control on")
    reader, writer, sock = await slow_socket_viewer(tunnel.ports["http"])
    await wait_until(lambda: len(session.table) == 1, what="the connection")
    thin_link(relay_leg_of(session, sock))
    size = 2_000_000
    writer.write(b"G" + size.to_bytes(8, "big"))
    digest, received = hashlib.sha256(), 0
    try:
        while received < size:
            data = await asyncio.wait_for(reader.read(10 * 1024), 5)
            if not data:
                break
            digest.update(data)
            received += len(data)
            await asyncio.sleep(0.033)  # at most 10 KiB per 33 ms: about 300 KB/s
    except ConnectionError:
        pass
    finally:
        writer.close()
    if flow:
        assert received == size and digest.digest() == hashlib.sha256(download_bytes(size)).digest()
        assert "too slow" not in caplog.text
        assert session.pauses == 0 and session.pauses_sent > 0  # the camera was paused, not the tunnel
        assert session.peak_connection_buffer <= QUICK_GIVE_UP.per_connection_max_negotiated
    else:
        assert received < size and "its reader is too slow" in caplog.text
        assert session.pauses > 0 and session.pauses_sent == 0


# --- the other direction: a camera slower than its uploader -------------------------------


async def test_slow_camera_gets_a_whole_upload_with_the_extension(open_viewer, relay, camera, make_client, caplog):
    cam = await camera("select", rcvbuf=16 * 1024)
    client, tunnel = await flow_tunnel(relay, cam.port, 2004, make_client)
    await wait_until(lambda: client.session.flow_active and tunnel.session.flow_active, what="flow control on")
    reader, writer = await open_viewer(tunnel.ports["http"])
    upload = os.urandom(6 * 1024 * 1024)
    writer.write(b"U" + len(upload).to_bytes(8, "big"))
    for start in range(0, len(upload), 65536):
        writer.write(upload[start : start + 65536])
        await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(32), 10) == hashlib.sha256(upload).digest()
    assert "too slow" not in caplog.text
    session = client.session
    # The client asked the relay to pause the uploading viewer instead of stopping its reader.
    assert session.pauses == 0 and session.pauses_sent > 0 and session.resumes_sent > 0
    assert tunnel.session.pauses_received > 0
    assert session.peak_connection_buffer <= LIMITS.per_connection_max_negotiated


async def test_camera_that_stops_reading_is_paused_not_closed(open_viewer, relay, camera, make_client, caplog):
    cam = await camera("select")
    client, tunnel = await flow_tunnel(relay, cam.port, 2005, make_client)
    await wait_until(lambda: client.session.flow_active and tunnel.session.flow_active, what="flow control on")
    port = tunnel.ports["http"]

    flood_reader, flood_writer = await open_viewer(port)
    flood_writer.write(b"N")  # this camera connection never reads
    sent = 0

    async def flood() -> None:
        nonlocal sent
        chunk = b"f" * 65536
        while True:
            flood_writer.write(chunk)
            await flood_writer.drain()  # blocks for good once the relay stops reading us
            sent += len(chunk)

    flooding = asyncio.create_task(flood())
    try:
        reader, writer = await open_viewer(port)
        writer.write(b"E")
        loop = asyncio.get_running_loop()
        worst = 0.0
        for i in range(100):
            started = loop.time()
            message = b"abc%d" % i
            writer.write(message)
            assert await asyncio.wait_for(reader.readexactly(len(message)), 2) == message
            worst = max(worst, loop.time() - started)
            await asyncio.sleep(0.01)
        stuck_at = sent
        await asyncio.sleep(0.5)
        assert sent == stuck_at and not flooding.done()  # the viewer is paused, not closed
        assert worst < 0.5 and client.session.pauses == 0
        assert client.session.pauses_sent >= 1 and tunnel.session.pauses_received >= 1
        assert client.session.peak_connection_buffer <= LIMITS.per_connection_max_negotiated
        assert cam.open_connections == 2 and "too slow" not in caplog.text
    finally:
        flooding.cancel()
        flood_writer.transport.abort()
    assert await read_eof(flood_reader) == b""


async def test_a_viewer_that_never_reads_again_is_given_up_and_frees_the_camera(
    open_viewer, make_relay, camera, make_client, caplog
):
    # A camera serves few RTSP sessions; a hung viewer must not hold one for ever.
    relay = await make_relay(limits=FlowLimits(stalled_close_after=1.0))
    cam = await camera("select")
    client, tunnel = await flow_tunnel(relay, cam.port, 2010, make_client)
    session = tunnel.session
    await wait_until(lambda: session.flow_active and client.session.flow_active, what="flow control on")
    reader, writer, sock = await slow_socket_viewer(tunnel.ports["http"])
    writer.write(b"S")  # the camera streams; this viewer never reads
    await wait_until(lambda: len(session.table) == 1 and next(iter(session.table.values())).pause_sent,
                     what="the relay pauses the stalled viewer's camera")
    assert cam.open_connections == 1
    await wait_until(lambda: len(session.table) == 0, timeout=5, what="the stalled viewer given up")
    await wait_until(lambda: cam.open_connections == 0, what="the camera's connection closed too")
    assert "nothing drained for 1 s" in caplog.text
    writer.transport.abort()
