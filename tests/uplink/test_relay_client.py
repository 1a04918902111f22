"""Relay and tunnel client end to end, over real loopback sockets."""

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

from camgate.uplink.client import TunnelState
from camgate.uplink.protocol import Forward, build_hello, decode_frame, encode_close, encode_data, OpenFrame
from camgate.uplink.flow import FlowLimits
from camgate.uplink.tokens import encode_access_token

from .loopback import (
    ADMIN_TOKEN, client_frame, free_port, read_eof, spec_for, tunnel_up, upgrade_by_hand, wait_until,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def hand_driven_tunnel(http, relay, token, hello: bool = True):
    """A device's WebSocket to the relay, driven by the test (its hello sent, unless not)."""
    ws = await http.ws_connect(f"{relay.url}/ra-proxy", protocols=("ra-proxy",), headers={"Authorization": token})
    if hello:
        await ws.send_str(build_hello([Forward("rtsp", "tcp", "10.0.0.1", 554)]))
    return ws


async def lookup(relay, camid):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{relay.url}/api/device/{camid}", headers=ADMIN) as resp:
            return resp.status, await resp.json()


async def test_viewer_data_round_trips_through_the_tunnel(open_viewer, relay, camera, make_client):
    cam = await camera()
    device, _ = relay.register_device(1001, 1)
    forwards = (Forward("http", "http", "127.0.0.1", cam.port), Forward("rtsp", "tcp", "127.0.0.1", cam.port))
    client = make_client(spec_for(device.access_token, *forwards))
    await tunnel_up(client, relay, 1001)

    tunnel = relay.tunnel(1001)
    status, body = await lookup(relay, 1001)
    assert status == 200
    assert body["camid"] == 1001 and body["proxy_id"] == tunnel.proxy_id
    http, rtsp = body["forwards"]
    assert (http["name"], http["protocol"], http["port"]) == ("http", "http", cam.port)
    assert http["proxy_host"] == "127.0.0.1" and http["proxy_port"] == tunnel.ports["http"]
    assert http["proxy_url"] == f"http://127.0.0.1:{tunnel.ports['http']}/"
    assert "proxy_url" not in rtsp and rtsp["proxy_port"] == tunnel.ports["rtsp"]
    assert {(e.name, e.proxy_port) for e in client.status.endpoints} == set(tunnel.ports.items())
    assert client.status.camid == 1001

    reader, writer = await open_viewer(tunnel.ports["rtsp"])
    data = os.urandom(3_000_000)
    writer.write(data)
    assert await reader.readexactly(len(data)) == data
    assert client.status.open_connections == 1
    writer.close()
    await wait_until(lambda: client.status.open_connections == 0 and cam.open_connections == 0, what="close")
    status = client.status
    assert status.bytes_to_cloud == status.bytes_from_cloud == len(data)


async def test_two_hundred_concurrent_viewers(open_viewer, relay, camera, make_client):
    cam = await camera()
    device, _ = relay.register_device(1002)
    client = make_client(spec_for(device.access_token, Forward("rtsp", "tcp", "127.0.0.1", cam.port)))
    await tunnel_up(client, relay, 1002)
    port = relay.tunnel(1002).ports["rtsp"]

    async def viewer(seed: int) -> None:
        rng = random.Random(seed)
        data = rng.randbytes(rng.randint(1, 40_000))
        reader, writer = await open_viewer(port)
        for start in range(0, len(data), 7000):  # several writes, so frames interleave
            writer.write(data[start : start + 7000])
            await asyncio.sleep(0)
        echoed = await reader.readexactly(len(data))
        assert hashlib.sha256(echoed).digest() == hashlib.sha256(data).digest()
        writer.close()

    await asyncio.gather(*(viewer(i) for i in range(200)))
    await wait_until(lambda: client.status.open_connections == 0, what="all connections closed")
    assert relay.tunnel(1002).session.connection.open_connections == 0
    assert cam.accepted == 200


async def test_viewers_beyond_the_connection_limit_are_refused(open_viewer, make_relay, camera, make_client):
    relay = await make_relay(max_connections=2)
    cam = await camera()
    device, _ = relay.register_device(1003)
    client = make_client(spec_for(device.access_token, Forward("rtsp", "tcp", "127.0.0.1", cam.port)))
    await tunnel_up(client, relay, 1003)
    port = relay.tunnel(1003).ports["rtsp"]
    first = [await open_viewer(port) for _ in range(2)]
    for reader, writer in first:
        writer.write(b"hi")
        assert await reader.readexactly(2) == b"hi"
    reader, writer = await open_viewer(port)
    assert await read_eof(reader) == b""
    first[0][1].close()
    await wait_until(lambda: relay.tunnel(1003).session.connection.open_connections == 1, what="a free slot")
    reader, writer = await open_viewer(port)
    writer.write(b"ok")
    assert await reader.readexactly(2) == b"ok"


async def test_camera_down_closes_the_viewer_and_the_tunnel_stays_up(open_viewer, relay, camera, make_client):
    cam_port = free_port()
    device, _ = relay.register_device(1004)
    client = make_client(spec_for(device.access_token, Forward("rtsp", "tcp", "127.0.0.1", cam_port)))
    await tunnel_up(client, relay, 1004)
    tunnel = relay.tunnel(1004)
    port = tunnel.ports["rtsp"]

    reader, writer = await open_viewer(port)
    writer.write(b"OPTIONS rtsp://x RTSP/1.0\r\n\r\n")  # buffered while the client tries to connect
    assert await read_eof(reader) == b""
    await wait_until(lambda: tunnel.session.connection.open_connections == 0, what="the id to be freed")
    assert client.status.state is TunnelState.UP and relay.tunnel(1004) is tunnel

    await camera(port=cam_port)
    reader, writer = await open_viewer(port)
    writer.write(b"back")
    assert await reader.readexactly(4) == b"back"
    assert relay.tunnel(1004) is tunnel and client.status.tunnels_opened == 1


async def test_data_sent_before_the_camera_answers_arrives_in_order(open_viewer, relay, camera, make_client):
    cam = await camera()
    device, _ = relay.register_device(1005)
    client = make_client(spec_for(device.access_token, Forward("rtsp", "tcp", "127.0.0.1", cam.port)))
    await tunnel_up(client, relay, 1005)
    reader, writer = await open_viewer(relay.tunnel(1005).ports["rtsp"])
    parts = [bytes([i]) * 1000 for i in range(50)]
    for part in parts:  # written at once, before the client can have connected the camera
        writer.write(part)
    assert await reader.readexactly(50_000) == b"".join(parts)


async def test_rtsp_only_tunnel_has_one_listener(relay, camera, make_client):
    cam = await camera()
    device, _ = relay.register_device(1006)
    client = make_client(spec_for(device.access_token, Forward("rtsp", "tcp", "127.0.0.1", cam.port)))
    await tunnel_up(client, relay, 1006)
    tunnel = relay.tunnel(1006)
    assert list(tunnel.listeners) == ["rtsp"]
    status, body = await lookup(relay, 1006)
    assert status == 200 and [f["name"] for f in body["forwards"]] == ["rtsp"]


async def test_relay_restart_keeps_public_ports(open_viewer, make_relay, camera, make_client):
    relay = await make_relay()
    cam = await camera()
    device, _ = relay.register_device(1007)
    forwards = (Forward("http", "http", "127.0.0.1", cam.port), Forward("rtsp", "tcp", "127.0.0.1", cam.port))
    client = make_client(spec_for(device.access_token, *forwards))
    await tunnel_up(client, relay, 1007)
    ports = dict(relay.tunnel(1007).ports)
    relay_port = relay.port
    reader, writer = await open_viewer(ports["rtsp"])
    writer.write(b"x")
    assert await reader.readexactly(1) == b"x"

    await relay.close()
    await wait_until(lambda: client.status.state is not TunnelState.UP, what="the client to notice")
    # Both ends close every tunnelled connection when the WebSocket goes.
    assert await read_eof(reader) == b""
    await wait_until(lambda: cam.open_connections == 0, what="the camera connection to close")
    relay = await make_relay(port=relay_port)  # same state file
    await tunnel_up(client, relay, 1007)
    assert relay.tunnel(1007).ports == ports
    assert client.status.tunnels_opened == 2
    reader, writer = await open_viewer(ports["http"])
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    assert await reader.readexactly(18) == b"GET / HTTP/1.0\r\n\r\n"


async def test_new_tunnel_replaces_the_old_one_at_once(open_viewer, relay, camera, make_client):
    cam = await camera()
    device, _ = relay.register_device(1008)
    client = make_client(spec_for(device.access_token, Forward("rtsp", "tcp", "127.0.0.1", cam.port)))
    await tunnel_up(client, relay, 1008)
    old = relay.tunnel(1008)
    port = old.ports["rtsp"]
    reader, writer = await open_viewer(port)
    writer.write(b"x")
    assert await reader.readexactly(1) == b"x"

    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            f"{relay.url}/ra-proxy", protocols=("ra-proxy",), headers={"Authorization": device.access_token}
        )
        await ws.send_str(build_hello([Forward("rtsp", "tcp", "127.0.0.1", cam.port)]))
        await wait_until(lambda: relay.tunnel(1008) not in (None, old), what="the replacement")
        assert await read_eof(reader) == b""  # the old tunnel's viewer is closed
        new = relay.tunnel(1008)
        assert new.ports["rtsp"] == port
        assert new.proxy_id != old.proxy_id
        await ws.close()
    # The replaced client reconnects by itself and takes the tunnel back.
    await wait_until(lambda: client.status.tunnels_opened == 2, what="the client to reconnect")
    await tunnel_up(client, relay, 1008)


async def test_invalid_token_fails_and_stops_retrying(relay, make_client):
    forged = encode_access_token({"camid": 1009, "cmngrid": 1, "uplink": relay.public_address, "token": "nope"})
    statuses = []
    client = make_client(spec_for(forged, Forward("rtsp", "tcp", "127.0.0.1", 554)), on_status=statuses.append)
    await wait_until(lambda: client.status.state is TunnelState.FAILED, what="failure")
    assert client.status.reason == "invalid token"
    await asyncio.sleep(0.3)  # many backoff periods: nothing more happens
    assert client._task.done()
    assert client.status.state is TunnelState.FAILED and client.status.retry_at is None
    assert sum(1 for s in statuses if s.reason == "finding the relay") == 1

    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(f"{relay.url}/ra-proxy", protocols=("ra-proxy",), headers={"Authorization": forged})
        assert info.value.status == 403


async def test_unreachable_relay_is_retried(make_client):
    port = free_port()
    token = encode_access_token({"camid": 1, "cmngrid": 1, "uplink": f"127.0.0.1:{port}"})
    client = make_client(spec_for(token, Forward("rtsp", "tcp", "127.0.0.1", 554)))
    await wait_until(lambda: client.status.last_error.startswith("relay unreachable"), what="an error")
    assert client.status.state is TunnelState.CONNECTING and not client._task.done()
    assert token not in repr(client.status) and token not in client.status.last_error


async def test_malformed_frames_from_a_client_are_ignored(open_viewer, relay, caplog):
    caplog.set_level(logging.INFO)
    device, _ = relay.register_device(1010)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            f"{relay.url}/ra-proxy", protocols=("ra-proxy",), headers={"Authorization": device.access_token}
        )
        await ws.send_str(build_hello([Forward("rtsp", "tcp", "10.0.0.1", 554)], websocket_buffer_size=1000))
        extension = json.loads((await ws.receive()).data)  # camgate's relay says its ports
        assert extension["camgate"] == 1 and extension["forwards"][0]["name"] == "rtsp"
        for junk in (b"", b"X\x00\x00", b"O\x00\x00\x00", b"O\x00\x00", b"C\x00", b"C\x00\x00\x00",
                     b"D\x05\x00", encode_data(9, b"lost"), encode_close(7)):
            await ws.send_bytes(junk)
        await ws.send_str("a TEXT after the hello")

        port = relay.tunnel(1010).ports["rtsp"]
        reader, writer = await open_viewer(port)
        frame = decode_frame((await ws.receive()).data)
        assert isinstance(frame, OpenFrame) and frame.index == 0
        cid = frame.client_id
        big = os.urandom(70_000)  # more than 64 KiB in one D: a relay must take it
        await ws.send_bytes(encode_data(cid, big))
        assert await reader.readexactly(len(big)) == big
        writer.write(b"y" * 2500)
        received = b""
        while len(received) < 2500:
            frame = decode_frame((await ws.receive()).data)
            assert frame.client_id == cid and len(frame.payload) <= 1000  # our buffer size
            received += frame.payload
        await ws.send_bytes(encode_close(cid))
        assert await read_eof(reader) == b""
        await ws.close()
    text = caplog.text
    assert "unknown command" in text and "O frame from a client" in text and "not 3" in text
    assert "no payload" in text and "TEXT message after the hello" in text and "id 9 is not open" in text
    assert device.access_token not in text


async def test_malformed_frames_from_a_relay_are_ignored(camera, make_client, caplog, aiohttp_fake_relay):
    caplog.set_level(logging.INFO)
    cam = await camera()
    client = make_client(
        spec_for(aiohttp_fake_relay.token, Forward("rtsp", "tcp", "127.0.0.1", cam.port), uplink=aiohttp_fake_relay.address)
    )
    ws = await aiohttp_fake_relay.tunnel()
    hello = json.loads(aiohttp_fake_relay.hello)
    assert hello["forwards"][0]["port"] == cam.port and hello["websocket_buffer_size"] == 4096
    for junk in (b"Z", b"O\x01\x00", b"C\x01\x00\x00", b"D\x01\x00", encode_data(3, b"x"), encode_close(4)):
        await ws.send_bytes(junk)
    await ws.send_str("{not json")
    await ws.send_bytes(b"O\x05\x00\x07")  # forward 7 does not exist: refused with C
    assert (await ws.receive()).data == encode_close(5)

    await ws.send_bytes(b"O\x08\x00\x00")
    await ws.send_bytes(encode_data(8, b"ping"))
    frame = decode_frame((await ws.receive()).data)
    assert frame.client_id == 8 and frame.payload == b"ping"
    await ws.send_bytes(encode_close(8))
    await wait_until(lambda: cam.open_connections == 0 and client.status.open_connections == 0, what="close")
    assert client.status.state is TunnelState.UP and client.status.tunnels_opened == 1
    assert "unknown command" in caplog.text and "not 4" in caplog.text and "did not name" in caplog.text


async def test_a_closing_relay_takes_no_new_connection(relay):
    device, _ = relay.register_device(1019)
    async with aiohttp.ClientSession() as http:
        # A device that never answers the relay's close: closing waits for it (a second).
        ws = await hand_driven_tunnel(http, relay, device.access_token)
        await wait_until(lambda: relay.tunnel(1019) is not None, what="the tunnel")
        closing = asyncio.create_task(relay.close())
        await asyncio.sleep(0.2)
        assert not closing.done()
        # Refused, so the device retries soon, rather than taken into a relay that is going.
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", relay.port)
        await closing
        await ws.close()


async def test_a_handshake_in_flight_does_not_hold_up_closing_the_relay(make_relay, monkeypatch):
    monkeypatch.setattr("camgate.uplink.relay.CLOSE_GRACE_S", 0.2)
    relay = await make_relay()
    device, _ = relay.register_device(1018)
    async with aiohttp.ClientSession() as http:
        # No hello: the relay is still waiting for it when it closes.
        ws = await hand_driven_tunnel(http, relay, device.access_token, hello=False)
        await asyncio.wait_for(relay.close(), 3)
        await ws.close()


DEEP = "[" * 100_000 + "]" * 100_000  # JSON nested past Python's recursion limit


async def test_relay_refuses_a_deeply_nested_hello_with_1008(relay):
    device, _ = relay.register_device(1020)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            f"{relay.url}/ra-proxy", protocols=("ra-proxy",), headers={"Authorization": device.access_token}
        )
        await ws.send_str('{"forwards": ' + DEEP + "}")
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1008
        await ws.close()
    assert relay.tunnel(1020) is None


async def test_relay_ignores_deeply_nested_text_after_the_hello(relay, open_viewer):
    device, _ = relay.register_device(1021)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            f"{relay.url}/ra-proxy", protocols=("ra-proxy",), headers={"Authorization": device.access_token}
        )
        await ws.send_str(build_hello([Forward("rtsp", "tcp", "10.0.0.1", 554)]))
        await ws.receive()  # the relay's extension message
        await ws.send_str(DEEP)
        await ws.send_str('{"camgate": 1, "pause": ' + DEEP + "}")
        reader, writer = await open_viewer(relay.tunnel(1021).ports["rtsp"])  # the tunnel still works
        frame = decode_frame((await asyncio.wait_for(ws.receive(), 5)).data)
        assert isinstance(frame, OpenFrame)
        await ws.send_bytes(encode_data(frame.client_id, b"still here"))
        assert await reader.readexactly(10) == b"still here"
        await ws.close()


async def test_client_ignores_deeply_nested_text_from_the_relay(camera, make_client, aiohttp_fake_relay):
    cam = await camera()
    client = make_client(
        spec_for(aiohttp_fake_relay.token, Forward("rtsp", "tcp", "127.0.0.1", cam.port), uplink=aiohttp_fake_relay.address)
    )
    ws = await aiohttp_fake_relay.tunnel()
    await ws.send_str(DEEP)
    await ws.send_str('{"camgate": 1, "forwards": ' + DEEP + "}")
    await ws.send_bytes(b"O\x01\x00\x00")
    await ws.send_bytes(encode_data(1, b"ping"))
    assert decode_frame((await asyncio.wait_for(ws.receive(), 5)).data).payload == b"ping"
    assert client.status.state is TunnelState.UP and client.status.tunnels_opened == 1


async def test_relay_refusing_the_upgrade_means_invalid_token(make_client, aiohttp_fake_relay):
    aiohttp_fake_relay.refuse_upgrade = True
    client = make_client(
        spec_for(aiohttp_fake_relay.token, Forward("rtsp", "tcp", "127.0.0.1", 554), uplink=aiohttp_fake_relay.address)
    )
    await wait_until(lambda: client.status.state is TunnelState.FAILED, what="failure")
    assert client.status.reason == "invalid token"


async def test_client_drops_a_relay_that_stops_answering(camera, make_client, aiohttp_fake_relay):
    from camgate.uplink.session import LivenessTimes

    client = make_client(
        spec_for(aiohttp_fake_relay.token, Forward("rtsp", "tcp", "127.0.0.1", 554), uplink=aiohttp_fake_relay.address),
        liveness=LivenessTimes(ping_after=0.2, dead_after=0.5),
    )
    await aiohttp_fake_relay.tunnel()  # then never reads again, so never answers a ping
    await wait_until(lambda: client.status.state is TunnelState.UP, what="up")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await wait_until(lambda: client.status.state is not TunnelState.UP, timeout=3, what="the client to give up")
    assert 0.4 < loop.time() - started < 2


async def test_relay_drops_a_client_that_stops_answering(make_relay):
    from camgate.uplink.session import LivenessTimes

    relay = await make_relay(liveness=LivenessTimes(ping_after=0.2, dead_after=0.5))
    device, _ = relay.register_device(1011)
    async with aiohttp.ClientSession() as http:
        ws = await hand_driven_tunnel(http, relay, device.access_token)
        await wait_until(lambda: relay.tunnel(1011) is not None, what="up")
        # Never calling receive() means aiohttp never answers the relay's pings.
        await wait_until(lambda: relay.tunnel(1011) is None, timeout=3, what="the relay to give up")
        await ws.close()


async def test_idle_tunnel_with_live_peers_stays_up(make_relay, make_client, camera):
    from camgate.uplink.session import LivenessTimes

    quick = LivenessTimes(ping_after=0.1, dead_after=0.3)
    relay = await make_relay(liveness=quick)
    device, _ = relay.register_device(1012)
    client = make_client(spec_for(device.access_token, Forward("rtsp", "tcp", "127.0.0.1", 554)), liveness=quick)
    await tunnel_up(client, relay, 1012)
    tunnel = relay.tunnel(1012)
    await asyncio.sleep(1.0)  # several dead_after periods with no frames, only pings
    assert relay.tunnel(1012) is tunnel and client.status.tunnels_opened == 1


async def test_viewer_that_stops_reading_does_not_stall_another(open_viewer, make_relay, camera, make_client, caplog):
    # Without the flow extension: the client plays a reference agent (it never offers it).
    limits = FlowLimits(per_connection=128 * 1024, per_connection_max=512 * 1024, per_tunnel=4 * 1024 * 1024,
                        to_websocket=256 * 1024, stall_timeout=0.3)
    relay = await make_relay(limits=limits)
    cam = await camera("select")
    device, _ = relay.register_device(1013)
    client = make_client(spec_for(device.access_token, Forward("rtsp", "tcp", "127.0.0.1", cam.port)),
                         limits=replace(limits, announce_flow=False))
    await tunnel_up(client, relay, 1013)
    port = relay.tunnel(1013).ports["rtsp"]
    session = relay.tunnel(1013).session
    assert not session.connection.flow_active and not client.session.connection.flow_active

    stalled_reader, stalled_writer = await open_viewer(port)
    stalled_writer.write(b"S")  # the camera streams as fast as it can; this viewer never reads
    reader, writer = await open_viewer(port)
    writer.write(b"E")
    loop = asyncio.get_running_loop()
    worst = 0.0
    for i in range(200):
        started = loop.time()
        message = i.to_bytes(4, "big") * 256
        writer.write(message)
        assert await asyncio.wait_for(reader.readexactly(len(message)), 2) == message
        worst = max(worst, loop.time() - started)
        await asyncio.sleep(0.005)
    # The stalled viewer may hold the tunnel for one stall_timeout, no more.
    assert worst < limits.stall_timeout + 0.5
    await wait_until(lambda: "reader is too slow" in caplog.text, what="the slow viewer to be closed")
    # What the relay held for the stalled viewer stayed near its bound (plus at most one
    # D payload, of the size the two camgate ends agreed), and the client never queued
    # much more than its bound for the relay.
    assert session.connection.peak_connection_buffer <= limits.per_connection_max + client.session.connection.send_payload_max
    assert client.session.connection.peak_queued_to_websocket <= limits.to_websocket + 300 * 1024
    assert relay.buffered_bytes() < limits.per_tunnel
    await wait_until(lambda: cam.open_connections == 1, what="the camera stream to be closed")
    stalled_writer.transport.abort()


async def test_camera_that_stops_reading_does_not_stall_another(open_viewer, make_relay, camera, make_client, caplog):
    # Without the flow extension: the relay plays a reference relay (it never offers it).
    limits = FlowLimits(per_connection=128 * 1024, per_connection_max=512 * 1024, stall_timeout=0.3)
    relay = await make_relay(limits=FlowLimits(announce_flow=False))
    cam = await camera("select")
    device, _ = relay.register_device(1014)
    client = make_client(spec_for(device.access_token, Forward("rtsp", "tcp", "127.0.0.1", cam.port)), limits=limits)
    await tunnel_up(client, relay, 1014)
    port = relay.tunnel(1014).ports["rtsp"]
    assert not relay.tunnel(1014).session.connection.flow_active and not client.session.connection.flow_active

    flood_reader, flood_writer = await open_viewer(port)
    flood_writer.write(b"N")

    async def flood() -> None:
        chunk = b"f" * 65536
        try:
            for _ in range(400):  # 25 MiB, far more than socket buffers hold
                flood_writer.write(chunk)
                await flood_writer.drain()
        except ConnectionError:
            pass

    flooding = asyncio.create_task(flood())
    reader, writer = await open_viewer(port)
    writer.write(b"E")
    for i in range(100):
        writer.write(b"abc%d" % i)
        expected = b"abc%d" % i
        assert await asyncio.wait_for(reader.readexactly(len(expected)), limits.stall_timeout + 0.5) == expected
    await wait_until(lambda: "reader is too slow" in caplog.text, what="the camera connection to be dropped")
    assert await read_eof(flood_reader) == b""
    await asyncio.wait_for(flooding, 5)
    # Per-connection bound plus at most one D payload (of the size the client announced).
    relay_payload = relay.tunnel(1014).session.connection.send_payload_max
    assert client.session.connection.peak_connection_buffer <= limits.per_connection_max + relay_payload


SMALL = FlowLimits(per_connection=128 * 1024, per_connection_max=512 * 1024, stall_timeout=0.5)


async def test_slow_camera_gets_a_whole_upload(open_viewer, make_relay, camera, make_client, caplog):
    # Without the flow extension: the relay plays a reference relay.
    relay = await make_relay(limits=replace(SMALL, announce_flow=False))
    cam = await camera("select", rcvbuf=16 * 1024)
    device, _ = relay.register_device(1017)
    client = make_client(spec_for(device.access_token, Forward("http", "http", "127.0.0.1", cam.port)), limits=SMALL)
    await tunnel_up(client, relay, 1017)
    assert not client.session.connection.flow_active
    reader, writer = await open_viewer(relay.tunnel(1017).ports["http"])
    upload = os.urandom(6 * 1024 * 1024)  # 12 times the bound at which a reader is dropped
    writer.write(b"U" + len(upload).to_bytes(8, "big"))
    for start in range(0, len(upload), 65536):
        writer.write(upload[start : start + 65536])
        await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(32), 10) == hashlib.sha256(upload).digest()
    assert "too slow" not in caplog.text
    assert client.session.connection.pauses > 0  # the camera really was the bottleneck
    assert client.session.connection.peak_connection_buffer <= SMALL.per_connection_max


async def test_slow_viewer_gets_a_whole_download(open_viewer, make_relay, camera, make_client, caplog):
    # Without the flow extension: the client plays a reference agent.
    relay = await make_relay(limits=SMALL)
    cam = await camera("select")
    device, _ = relay.register_device(1018)
    client = make_client(spec_for(device.access_token, Forward("http", "http", "127.0.0.1", cam.port)),
                         limits=replace(SMALL, announce_flow=False))
    await tunnel_up(client, relay, 1018)
    session = relay.tunnel(1018).session
    assert not session.connection.flow_active
    # A small receive buffer, so the kernel holds little and the relay sees the slowness.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect(("127.0.0.1", relay.tunnel(1018).ports["http"]))
    reader, writer = await asyncio.open_connection(sock=sock, limit=32 * 1024)
    size = 6 * 1024 * 1024
    writer.write(b"G" + size.to_bytes(8, "big"))
    digest, received = hashlib.sha256(), 0
    try:
        while received < size:
            data = await asyncio.wait_for(reader.read(32 * 1024), 5)
            assert data, f"download cut short after {received} bytes"
            digest.update(data)
            received += len(data)
            await asyncio.sleep(0.004)  # a viewer on a slow link
    finally:
        writer.close()
    assert digest.digest() == hashlib.sha256(random.Random(size).randbytes(size)).digest()
    assert "too slow" not in caplog.text
    assert session.connection.pauses > 0  # the viewer really was the bottleneck
    assert session.connection.peak_connection_buffer <= SMALL.per_connection_max


async def test_reissued_token_ends_the_live_tunnel(relay, make_client):
    device, _ = relay.register_device(1015)
    client = make_client(spec_for(device.access_token, Forward("rtsp", "tcp", "127.0.0.1", 554)))
    await tunnel_up(client, relay, 1015)
    relay.register_device(1015)  # a new token: the old one, and its tunnel, are gone
    await wait_until(lambda: client.status.state is TunnelState.FAILED, what="failure")
    assert client.status.reason == "invalid token" and relay.tunnel(1015) is None


async def test_fragmented_messages_are_reassembled(relay, open_viewer):
    device, _ = relay.register_device(1016)
    _, writer = await upgrade_by_hand(relay.port, device.access_token)
    hello = build_hello([Forward("rtsp", "tcp", "10.0.0.1", 554)]).encode()
    # The hello in three fragments: TEXT, continuation, final continuation.
    writer.write(client_frame(0x1, hello[:10], False) + client_frame(0x0, hello[10:20], False)
                 + client_frame(0x0, hello[20:], True))
    await wait_until(lambda: relay.tunnel(1016) is not None, what="the tunnel")

    viewer_reader, viewer_writer = await open_viewer(relay.tunnel(1016).ports["rtsp"])
    await wait_until(lambda: relay.tunnel(1016).session.connection.open_connections == 1, what="the viewer's id")
    (cid,) = [cid for cid, _ in relay.tunnel(1016).session.connection.table.items()]
    frame = encode_data(cid, b"fragmented payload")
    writer.write(client_frame(0x2, frame[:2], False) + client_frame(0x0, frame[2:9], False)
                 + client_frame(0x0, frame[9:], True))
    assert await viewer_reader.readexactly(18) == b"fragmented payload"
    writer.close()


async def test_run_relay_shuts_down_on_sigterm(tmp_path):
    import signal
    import sys

    from .loopback import free_port

    port = free_port()
    code = (
        "import logging; logging.basicConfig(level=logging.INFO);"
        # What the collector was set to while the relay ran (collector.py).
        "import atexit, gc, sys; atexit.register(lambda: print('collector', gc.get_threshold()[0],"
        " gc.get_freeze_count() > 1000, file=sys.stderr));"
        "from camgate.uplink.relay import RelayConfig, run_relay;"
        f"run_relay(RelayConfig(port={port}, port_range=None, admin_token='x', state_path={str(tmp_path / 's.json')!r}))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with aiohttp.ClientSession() as http:
            async def answering() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/api/ws-endpoint") as resp:
                        return resp.status == 403
                except aiohttp.ClientError:
                    return False

            for _ in range(200):
                if await answering():
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("relay did not start")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 5) == 0
        stderr = (await process.stderr.read()).decode()
        assert "relay shutting down" in stderr
        assert "collector 7000 True" in stderr  # started: its modules' objects frozen, young ones collected less often
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_relay_keeps_no_lock_for_a_device_whose_tunnel_is_gone(relay):
    async with aiohttp.ClientSession() as http:
        for camid in (1500, 1501):
            device, _ = relay.register_device(camid)
            ws = await http.ws_connect(
                f"{relay.url}/ra-proxy", protocols=("ra-proxy",), headers={"Authorization": device.access_token}
            )
            await ws.send_str(build_hello([Forward("rtsp", "tcp", "127.0.0.1", 554)]))
            await wait_until(lambda: relay.tunnel(camid) is not None, what="the tunnel")
            await ws.close()
            await wait_until(lambda: relay.tunnel(camid) is None, what="the tunnel to end")
    assert len(relay.device_locks) == 0



async def test_a_device_lock_lets_one_tunnel_in_at_a_time_and_goes_with_the_last():
    from camgate.uplink.relay_tunnel import DeviceLocks

    locks, order = DeviceLocks(), []

    async def tunnel(name: str) -> None:
        async with locks.hold(7):
            order.append(f"{name} in")
            await asyncio.sleep(0.01)
            order.append(f"{name} out")

    first = asyncio.create_task(tunnel("a"))
    await asyncio.sleep(0)
    given_up = asyncio.create_task(tunnel("c"))  # cancelled while it waits
    await asyncio.sleep(0)
    given_up.cancel()
    await asyncio.gather(first, tunnel("b"))
    with pytest.raises(asyncio.CancelledError):
        await given_up
    assert order == ["a in", "a out", "b in", "b out"]
    assert len(locks) == 0


async def test_an_idle_tunnel_runs_no_session_task_on_either_end(relay, make_client):
    """Thousands of idle tunnels sit on a relay: no reader, writer, liveness or stop task
    each (camgate's own WebSocket hands messages over in its read callback)."""
    device, _ = relay.register_device(1502)
    client = make_client(spec_for(device.access_token, Forward("rtsp", "tcp", "127.0.0.1", 554)))
    await tunnel_up(client, relay, 1502)

    def session_tasks(label: str) -> list[str]:
        return sorted(n for t in asyncio.all_tasks() if (n := t.get_name()).startswith("uplink-") and n.endswith(label))

    await wait_until(lambda: not session_tasks("relay camid 1502"), what="the relay's writer to finish")
    assert session_tasks("tunnel test device") == []
