"""Both ends read their WebSocket themselves after aiohttp's handshake (uplink/ws_link.py):
over plain TCP and TLS, on asyncio's loop and uvloop's; and aiohttp keeps it when
camgate cannot take it over."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from itertools import accumulate

import aiohttp
import pytest
import uvloop
from aiohttp import WSMsgType

from camgate.uplink.client import TunnelClient
from camgate.uplink.protocol import SUBPROTOCOL, Forward, build_hello
from camgate.uplink.relay import TUNNEL_PATH, start_relay
from camgate.uplink.ws_frames import frame_header
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


class _CountingLink(WebSocketLink):
    """A link that counts the bytes it read, and the reads that went on past the end of
    a frame read straight into its own buffer."""

    received = past_end = 0

    def buffer_updated(self, nbytes: int) -> None:
        reader = self._reader
        if reader._frame is not None and not reader._growing and reader._filled + nbytes > reader._frame_size:
            self.past_end += 1
        self.received += nbytes
        super().buffer_updated(nbytes)


class _Connection(asyncio.Protocol):
    """aiohttp's protocol's place: a link takes the connection over as it is made."""

    def __init__(self, links: list) -> None:
        self.links = links

    def connection_made(self, transport) -> None:
        transport.pause_reading()
        link = _CountingLink(transport, self, masked=False, max_message=1 << 20, close_timeout=1.0)
        transport.set_protocol(link)
        transport.resume_reading()
        self.links.append(link)

    def connection_lost(self, exc) -> None:
        pass


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"])
def test_reads_that_end_past_a_large_frame_bring_the_next_frames_on_both_loops(loop_factory):
    # A large frame's rest is read into its own buffer with room past its end: the
    # loop's buffer is still held while the link parses what landed there.
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(send_cut_past_frame_ends())


async def send_cut_past_frame_ends() -> None:
    sent = [os.urandom(70_000), b"small", os.urandom(3000), os.urandom(65539), b"end"]
    frames = [frame_header(len(payload), b"mask") + mask(payload, b"mask") for payload in sent]
    data, cuts = b"".join(frames), []
    for start, end in zip(accumulate([0] + [len(f) for f in frames]), accumulate(len(f) for f in frames)):
        if end - start > 1000:  # a large frame's start alone, then its rest and what follows
            cuts += [start + 600, min(end + 20, len(data) - 1)]
    links: list = []
    got: list = []
    server = await asyncio.get_running_loop().create_server(lambda: _Connection(links), "127.0.0.1", 0)
    _, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        await wait_until(lambda: links, what="the connection")
        link = links[0]
        link.set_receiver(lambda message: got.append(bytes(message.data)) or True)
        for start, end in zip([0] + cuts, cuts + [len(data)]):
            writer.write(data[start:end])
            await wait_until(lambda: link.received == end, what="the link to read what was sent")
        assert got == sent
        assert link.past_end >= 1
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


def mask(payload: bytes, key: bytes) -> bytes:
    return bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
