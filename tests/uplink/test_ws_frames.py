"""The WebSocket frames a session writes itself (uplink/ws_frames.py) are aiohttp's own,
byte for byte, masked (client) or not (relay); and a live tunnel writes them so."""

from __future__ import annotations

import asyncio
import os
import random

import pytest
from aiohttp import WSMsgType
from aiohttp.http_websocket import WebSocketWriter

from camgate.uplink.protocol import Forward
from camgate.uplink.ws_frames import DirectFrames
from tests.uplink.test_relay_client import spec_for, tunnel_up


class Recorder:
    """A transport that keeps what it is given."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data) -> None:
        self.data += data

    def writelines(self, parts) -> None:
        for part in parts:
            self.data += part

    def is_closing(self) -> bool:
        return False


class Protocol:
    writing_paused = False
    _paused = False


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("size", [1, 125, 126, 65535, 65536, 200_000])
def test_a_frame_is_the_one_aiohttp_writes(size, masked):
    message = os.urandom(size)
    ours, theirs = Recorder(), Recorder()
    DirectFrames(ours, Protocol(), masked, masks=random.Random(size)).write(bytearray(message))
    writer = WebSocketWriter(Protocol(), theirs, use_mask=masked, random=random.Random(size))
    asyncio.run(writer.send_frame(message, WSMsgType.BINARY))
    assert ours.data == theirs.data


def test_each_masked_frame_draws_a_new_mask():
    out = Recorder()
    frames = DirectFrames(out, Protocol(), masked=True)
    frames.write(b"x" * 10)
    first = bytes(out.data[2:6])
    frames.write(b"x" * 10)
    assert bytes(out.data[18:22]) != first


def test_not_writable_while_the_transport_is_full():
    protocol = Protocol()
    frames = DirectFrames(Recorder(), protocol, masked=False)
    assert frames.writable
    protocol.writing_paused = True
    assert not frames.writable


async def test_both_ends_of_a_tunnel_write_their_frames_themselves(make_relay, camera, make_client, open_viewer):
    relay = await make_relay()
    cam = await camera()
    device, _ = relay.register_device(4101)
    client = make_client(spec_for(device.access_token, Forward("rtsp", "tcp", "127.0.0.1", cam.port)))
    await tunnel_up(client, relay, 4101)
    assert client.session._direct is not None and relay.tunnel(4101).session._direct is not None
    reader, writer = await open_viewer(relay.tunnel(4101).ports["rtsp"])
    writer.write(b"hello" * 30000)  # echoed: both directions, reads past one 64 KiB frame
    assert await asyncio.wait_for(reader.readexactly(5 * 30000), 10) == b"hello" * 30000
    writer.close()
