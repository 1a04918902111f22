"""The relay takes a tunnel's connection from aiohttp once the upgrade is answered
(ws_link.py reads it, relay.py lets aiohttp's request handler go): what aiohttp kept per
WebSocket goes, and the WebSocket behaves as aiohttp's did (pings, CLOSE both ways, a
message too big, text that is not UTF-8)."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from camgate.uplink import ws_link
from camgate.uplink.protocol import Forward, build_hello

from .loopback import client_frame, echo_through, spec_for, tunnel_up, upgrade_by_hand, wait_until

HELLO = build_hello([Forward("rtsp", "tcp", "127.0.0.1", 554)])


def aiohttp_tasks() -> list[str]:
    return [t.get_coro().__qualname__ for t in asyncio.all_tasks() if "RequestHandler" in t.get_coro().__qualname__]


async def open_tunnel(relay, camid: int, http: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
    device, _ = relay.register_device(camid)
    ws = await http.ws_connect(f"{relay.url}/ra-proxy", protocols=("ra-proxy",), autoping=False,
                               headers={"Authorization": device.access_token})
    await ws.send_str(HELLO)
    await wait_until(lambda: relay.tunnel(camid) is not None, what="the tunnel")
    return ws


async def test_aiohttp_keeps_nothing_of_a_tunnel_and_says_nothing(relay, make_client, camera, caplog):
    caplog.set_level(logging.WARNING)
    cam = await camera()
    device, _ = relay.register_device(1700)
    client = make_client(spec_for(device.access_token, Forward("rtsp", "tcp", "127.0.0.1", cam.port)))
    await tunnel_up(client, relay, 1700)
    await echo_through(relay.tunnel(1700).ports["rtsp"])
    assert aiohttp_tasks() == []  # its request handler and the handler's task are gone
    assert caplog.records == []


async def test_pings_are_answered_and_a_close_is_answered_with_a_close(relay):
    async with aiohttp.ClientSession() as http:
        ws = await open_tunnel(relay, 1701, http)
        await ws.ping(b"are you there")
        while (msg := await asyncio.wait_for(ws.receive(), 5)).type is not aiohttp.WSMsgType.PONG:
            pass  # the relay's extension message comes first
        assert msg.data == b"are you there"
        await ws.close()
        assert ws.close_code == 1000
        await wait_until(lambda: relay.tunnel(1701) is None, what="the tunnel to end")


@pytest.mark.parametrize(("frame", "code"), [
    (client_frame(0x2, b"x" * (1024 * 1024 + 1), True)[:14], 1009),  # the head of one over the relay's 1 MiB
    (client_frame(0x1, b"\xff\xfe", True), 1007),  # TEXT that is not UTF-8
], ids=["too-big", "not-utf8"])
async def test_a_bad_message_closes_the_tunnel_with_its_code(relay, frame, code):
    device, _ = relay.register_device(1702)
    reader, writer = await upgrade_by_hand(relay.port, device.access_token)
    writer.write(client_frame(0x1, HELLO.encode(), True))
    await wait_until(lambda: relay.tunnel(1702) is not None, what="the tunnel")
    writer.write(frame)
    answer = await asyncio.wait_for(reader.read(), 5)  # then the relay closes the connection
    close = answer[answer.index(b"\x88"):]  # FIN + CLOSE, after the extension message
    assert int.from_bytes(close[2:4], "big") == code
    writer.close()


async def test_closing_the_relay_closes_a_tunnel_still_waiting_for_its_hello(make_relay):
    relay = await make_relay()
    device, _ = relay.register_device(1703)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{relay.url}/ra-proxy", protocols=("ra-proxy",),
                                   headers={"Authorization": device.access_token})
        await asyncio.wait_for(relay.close(), 2)
        assert (await asyncio.wait_for(ws.receive(), 2)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_without_the_parts_it_needs_the_tunnel_stays_on_aiohttp(relay, make_client, camera, monkeypatch):
    monkeypatch.setattr(ws_link, "websocket_mask", None)  # as if a later aiohttp had moved it
    cam = await camera()
    device, _ = relay.register_device(1704)
    client = make_client(spec_for(device.access_token, Forward("rtsp", "tcp", "127.0.0.1", cam.port)))
    await tunnel_up(client, relay, 1704)
    await echo_through(relay.tunnel(1704).ports["rtsp"])
    assert "RequestHandler._handle_request" in aiohttp_tasks()


async def test_a_hello_sent_with_the_upgrade_request_is_not_lost(relay):
    """A client may not send frames before the 101 (RFC 6455, 4.1); if one does, they
    are read as aiohttp would have read them."""
    device, _ = relay.register_device(1705)
    _, writer = await upgrade_by_hand(relay.port, device.access_token, then=client_frame(0x1, HELLO.encode(), True))
    await wait_until(lambda: relay.tunnel(1705) is not None, what="the tunnel")
    writer.close()
