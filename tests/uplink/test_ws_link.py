"""Both ends read their WebSocket themselves after aiohttp's handshake (uplink/ws_link.py):
over plain TCP and TLS, on asyncio's loop and uvloop's; and aiohttp keeps it when
camgate cannot take it over."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import aiohttp
import pytest
import uvloop
from aiohttp import WSMsgType

from camgate.uplink.client import TunnelClient
from camgate.uplink.protocol import SUBPROTOCOL, Forward, build_hello
from camgate.uplink.relay import TUNNEL_PATH, start_relay
from camgate.uplink.ws_link import WebSocketLink

from .loopback import FAST_BACKOFF, Camera, spec_for, tunnel_up, wait_until


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"])
def test_a_tunnel_is_read_by_camgate_at_both_ends(loop_factory, tls, relay_config, certificate):
    cert, key = certificate
    config = replace(relay_config, **({"tls_cert": cert, "tls_key": key} if tls else {}))
    with asyncio.Runner(loop_factory=loop_factory) as runner:  # the loop the relay and agent run on
        runner.run(carry_and_close(config, tls, cert))


async def carry_and_close(config, tls: bool, cert: str) -> None:
    relay, cam = await start_relay(config), await Camera().start()
    client = None
    try:
        device, _ = relay.register_device(4301)
        client = TunnelClient(spec_for(device.access_token, Forward("rtsp", "tcp", "127.0.0.1", cam.port), tls=tls,
                                       cafile=cert if tls else None), backoff=FAST_BACKOFF)
        client.start()
        await tunnel_up(client, relay, 4301)
        ours, theirs = client.session._ws, relay.tunnel(4301).session._ws
        assert isinstance(ours, WebSocketLink) and isinstance(theirs, WebSocketLink)

        reader, writer = await asyncio.open_connection("127.0.0.1", relay.tunnel(4301).ports["rtsp"])
        data = os.urandom(2_000_000)  # echoed: frames of every size both ways, masked and not
        writer.write(data)
        assert await asyncio.wait_for(reader.readexactly(len(data)), 10) == data
        writer.close()

        await client.stop()  # its CLOSE, the relay's answer, and both connections closed
        await wait_until(lambda: relay.tunnel(4301) is None, what="the relay to end the tunnel")
        assert ours.closed and ours.close_code == 1000
        assert theirs.closed and theirs.close_code == 1000
    finally:
        if client is not None:
            await client.stop()
        await cam.stop()
        await relay.close()


async def connect_raw(relay, token: str, **kwargs):
    http = aiohttp.ClientSession()
    ws = await http.ws_connect(f"ws://127.0.0.1:{relay.port}{TUNNEL_PATH}", protocols=(SUBPROTOCOL,),
                               headers={"Authorization": token}, autoping=False, **kwargs)
    await ws.send_str(build_hello((Forward("rtsp", "tcp", "127.0.0.1", 9),), 4096, "test"))
    return http, ws


async def test_a_client_that_negotiated_compression_keeps_aiohttps_reader(make_relay):
    relay = await make_relay()
    device, _ = relay.register_device(4302)
    http, ws = await connect_raw(relay, device.access_token, compress=15)
    try:
        assert ws.compress  # the relay agreed
        await wait_until(lambda: relay.tunnel(4302) is not None, what="the tunnel")
        assert relay.tunnel(4302).session._link is None
        message = await asyncio.wait_for(ws.receive(), 5)  # the relay's extension message, compressed
        assert message.type is WSMsgType.TEXT and "camgate" in message.data
    finally:
        await ws.close()
        await http.close()


async def test_a_frame_that_breaks_rfc_6455_closes_the_tunnel_with_1002(make_relay):
    relay = await make_relay()
    device, _ = relay.register_device(4303)
    http, ws = await connect_raw(relay, device.access_token)
    try:
        await wait_until(lambda: relay.tunnel(4303) is not None, what="the tunnel")
        assert relay.tunnel(4303).session._link is not None
        ws._writer.transport.write(b"\xc2\x81abcdx")  # RSV1 set: no extension was negotiated
        while (message := await asyncio.wait_for(ws.receive(), 5)).type is WSMsgType.TEXT:
            pass
        assert message.type is WSMsgType.CLOSE and message.data == 1002
        await wait_until(lambda: relay.tunnel(4303) is None, what="the relay to end the tunnel")
    finally:
        await ws.close()
        await http.close()
