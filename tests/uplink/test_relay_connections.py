"""Connections to the relay's HTTP port that carry no tunnel cannot hold it: header and
idle timeouts close them, and past a cap per address the oldest idle one makes room, so
tunnels, API calls and viewers are still served. Real sockets on loopback."""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
from pathlib import Path

import aiohttp
import pytest

from camgate.uplink.connection_guard import ConnectionLimits, address_key
from camgate.uplink.protocol import Forward

from .loopback import ADMIN_TOKEN, read_eof, spec_for, tunnel_up, wait_until

FAST = ConnectionLimits(header_timeout=0.3, idle_timeout=0.5, body_timeout=0.3)
REQUEST = b"GET /api/devices HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer " + ADMIN_TOKEN.encode() + b"\r\n\r\n"


async def closed_by_relay(reader: asyncio.StreamReader, timeout: float = 5.0) -> bool:
    """True once the relay closes the connection (what it sent before is ignored)."""
    await read_eof(reader, timeout)
    return reader.at_eof() or reader.exception() is not None


async def api_answers(relay) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        async with http.get(f"{relay.url}/api/devices", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
            return resp.status


async def test_a_connection_that_sends_nothing_is_closed(make_relay):
    relay = await make_relay(connections=FAST)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    assert await closed_by_relay(reader)
    assert await reader.read() == b""  # not even an error page: it asked nothing
    writer.close()


async def test_headers_sent_a_byte_at_a_time_are_cut_off(make_relay):
    relay = await make_relay(connections=FAST)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    writer.write(b"GET /api/devices HTTP/1.1\r\n")

    async def trickle() -> None:
        try:
            while True:
                writer.write(b"X")  # one more byte of a header that never ends
                await asyncio.sleep(0.02)
        except (ConnectionError, RuntimeError):
            pass

    trickler = asyncio.create_task(trickle())
    try:
        assert await closed_by_relay(reader)
    finally:
        trickler.cancel()
        writer.close()


async def test_a_kept_alive_connection_gets_its_answers_and_then_is_closed_when_idle(make_relay):
    relay = await make_relay(connections=FAST)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    for _ in range(2):  # two requests on one connection: keep-alive still works
        writer.write(REQUEST)
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await reader.readuntil(b"]")  # the (empty) device list
    assert await closed_by_relay(reader)
    writer.close()


async def test_a_body_that_never_comes_is_a_408(make_relay):
    relay = await make_relay(connections=FAST)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    writer.write(b"POST /api/devices HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer " + ADMIN_TOKEN.encode()
                 + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"camid\"")
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)).startswith(b"HTTP/1.1 408")
    writer.close()
    assert relay.store.state.devices() == []


async def test_a_tls_handshake_that_never_starts_is_closed_and_tls_still_works(make_relay, certificate):
    cert, key = certificate
    relay = await make_relay(connections=FAST, tls_cert=cert, tls_key=key)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)  # plain TCP, then silence
    context = ssl.create_default_context(cafile=cert)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{relay.url}/api/devices", ssl=context,
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
            assert resp.status == 200
    assert await closed_by_relay(reader)
    writer.close()


async def test_many_idle_connections_from_one_address_lose_their_oldest_not_the_service(
    make_relay, camera, make_client, open_viewer
):
    relay = await make_relay(connections=ConnectionLimits(per_address=8, young=0.0))
    cam = await camera()
    device, _ = relay.register_device(3001)
    forward = Forward("rtsp", "tcp", "127.0.0.1", cam.port)
    early = make_client(spec_for(device.access_token, forward, key="before the flood"))
    await tunnel_up(early, relay, 3001)

    idle = []
    for opened in range(1, 21):
        idle.append(await asyncio.open_connection("127.0.0.1", relay.port))
        await wait_until(lambda: relay.guard.evicted == max(0, opened - 8) and relay.guard.counted() == min(opened, 8),
                         what=f"the relay to count connection {opened}")
    for reader, _ in idle[:12]:
        assert await closed_by_relay(reader)
    assert relay.guard.counted("127.0.0.1") == 8  # the newest ones

    assert await api_answers(relay) == 200
    other, _ = relay.register_device(3002)
    late = make_client(spec_for(other.access_token, forward, key="after the flood"))
    await tunnel_up(late, relay, 3002)
    assert early.status.tunnels_opened == 1  # a tunnel is not counted, so never pushed out
    viewer_reader, viewer_writer = await open_viewer(relay.tunnel(3001).ports["rtsp"])
    viewer_writer.write(b"still viewing")
    assert await viewer_reader.readexactly(13) == b"still viewing"
    for _, writer in idle:
        writer.close()


async def test_a_burst_of_new_connections_from_one_address_is_not_pushed_out(make_relay):
    # A site's cameras, all behind one address, reconnecting at once after a relay restart.
    relay = await make_relay(connections=ConnectionLimits(per_address=4, young=60.0))
    burst = [await asyncio.open_connection("127.0.0.1", relay.port) for _ in range(10)]
    await wait_until(lambda: relay.guard.counted("127.0.0.1") == 10, what="all ten to be counted")
    assert relay.guard.evicted == 0
    for _, writer in burst:
        writer.close()


async def test_a_reconnect_storm_waits_in_the_listen_queue_while_the_relay_is_busy(relay):
    # Devices reconnecting at once after a restart, while the relay's loop is busy (here:
    # this test holds it): the kernel queues them all. Past a short queue it drops their
    # SYNs, and a device's kernel sends the next only a second later.
    if int(Path("/proc/sys/net/core/somaxconn").read_text()) < 300:
        pytest.skip("the kernel caps listen queues below 300 (net.core.somaxconn)")
    storm = [socket.socket() for _ in range(300)]
    try:
        for sock in storm:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", relay.port))
        _, connected, _ = select.select([], storm, [], 0.5)
        assert len(connected) == len(storm)
    finally:
        for sock in storm:
            sock.close()


async def test_a_cap_over_all_addresses_pushes_out_the_oldest_idle_one(make_relay):
    relay = await make_relay(connections=ConnectionLimits(per_address=100, total=4))
    idle = [await asyncio.open_connection("127.0.0.1", relay.port) for _ in range(4)]
    await wait_until(lambda: relay.guard.counted() == 4, what="four counted connections")
    assert await api_answers(relay) == 200  # a fifth: the oldest idle one made room
    assert await closed_by_relay(idle[0][0])
    for _, writer in idle:
        writer.close()


@pytest.mark.parametrize("peer, key", [
    (("192.0.2.7", 5000), "192.0.2.7"),
    (("2001:db8:1:2:aaaa::1", 5000, 0, 0), "2001:db8:1:2::/64"),
    (("2001:db8:1:2:bbbb::9", 5001, 0, 0), "2001:db8:1:2::/64"),
    (("::ffff:192.0.2.7", 5000, 0, 0), "192.0.2.7"),
    ("/run/socket", "/run/socket"),
])
def test_an_ipv6_host_counts_as_its_64(peer, key):
    assert address_key(peer) == key
