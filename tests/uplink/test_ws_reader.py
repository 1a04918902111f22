"""camgate's own WebSocket frame parser (uplink/ws_reader.py), fed as a socket would feed
it: frames aiohttp writes, cut anywhere, masked or not; and everything it must refuse."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import struct

import pytest
from aiohttp import WSMsgType
from aiohttp.http_websocket import WebSocketWriter

from camgate.uplink.ws_reader import DIRECT_FROM, DIRECT_UP_TO, STAGING_SIZE, TAIL, FrameReader, WebSocketProtocolError

from .test_ws_frames import Protocol, Recorder

MAX = 1024 * 1024


def aiohttp_frames(messages, masked: bool, seed: int = 0) -> bytes:
    """``(opcode, payload)`` pairs as aiohttp's writer sends them."""
    out = Recorder()
    writer = WebSocketWriter(Protocol(), out, use_mask=masked, random=random.Random(seed))

    async def write() -> None:
        for opcode, payload in messages:
            if opcode == WSMsgType.CLOSE:
                await writer.close(*payload)
            else:
                await writer.send_frame(payload, opcode)

    asyncio.run(write())
    return bytes(out.data)


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes = b"", first_bits: int = 0) -> bytes:
    """One frame, built by hand (for what aiohttp's writer never sends)."""
    first = (0x80 if fin else 0) | first_bits | opcode
    bit = 0x80 if mask else 0
    if len(payload) < 126:
        head = struct.pack("!BB", first, len(payload) | bit)
    elif len(payload) < 1 << 16:
        head = struct.pack("!BBH", first, 126 | bit, len(payload))
    else:
        head = struct.pack("!BBQ", first, 127 | bit, len(payload))
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + payload


def read_in_pieces(reader: FrameReader, data: bytes, sizes) -> list:
    """Feed ``data`` as reads of at most the next of ``sizes`` bytes each (as a socket
    returns what it has), through get_buffer/buffer_updated."""
    messages, view, sizes = [], memoryview(data), iter(sizes)
    while view:
        room = reader.get_buffer(-1)
        size = min(len(room), len(view), next(sizes))
        room[:size] = view[:size]
        view = view[size:]
        messages += reader.buffer_updated(size)
    return messages


def as_pairs(messages) -> list:
    return [(m.type, bytes(m.data) if isinstance(m.data, (bytes, bytearray, memoryview)) else m.data) for m in messages]


SIZES = [0, 1, 125, 126, 1023, 1024, 65535, 65536, 200_000, DIRECT_UP_TO + 1, 300_000]


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("cut", ["whole", "bytes", "random"])
def test_what_aiohttp_writes_is_read_back_however_it_is_cut(masked, cut):
    rng = random.Random(7)
    sent = [(WSMsgType.BINARY, os.urandom(size)) for size in SIZES]
    sent += [(WSMsgType.TEXT, "héllo".encode()), (WSMsgType.PING, b"p"), (WSMsgType.PONG, b""),
             (WSMsgType.BINARY, b"D\x01\x00x")]
    data = aiohttp_frames(sent, masked)
    if cut == "bytes":  # one byte per read up to past the second header, then as it comes
        sizes = [1] * 300 + [1 << 30] * len(data)
    elif cut == "random":
        sizes = [rng.choice([1, 2, 3, 7, 100, 5000, 70_000]) for _ in range(len(data))]
    else:
        sizes = [1 << 30] * len(data)
    got = as_pairs(read_in_pieces(FrameReader(MAX), data, sizes))
    expected = [(t, p.decode() if t == WSMsgType.TEXT else p) for t, p in sent]
    assert got == expected


def test_many_frames_in_one_read_come_out_in_order():
    sent = [(WSMsgType.BINARY, bytes([n]) * 10) for n in range(200)]
    reader = FrameReader(MAX)
    got = reader.feed(aiohttp_frames(sent, masked=True))
    assert as_pairs(got) == sent


def test_a_large_frame_is_read_into_its_own_buffer_and_handed_over_as_it_is():
    payload = os.urandom(100_000)
    data = frame(2, payload, mask=b"\x01\x02\x03\x04")
    reader = FrameReader(MAX)
    staging = reader.get_buffer(-1)
    assert len(staging) == STAGING_SIZE
    staging[:200] = data[:200]
    assert reader.buffer_updated(200) == []
    room = reader.get_buffer(-1)
    assert room.obj is not staging.obj and len(room) == len(data) - 200 + TAIL  # the rest goes straight there
    room[: len(data) - 200] = data[200:]
    [message] = reader.buffer_updated(len(data) - 200)
    assert message.type == WSMsgType.BINARY and message.data == payload
    assert message.data.obj is room.obj  # unmasked in place: the payload was never copied
    assert len(reader.get_buffer(-1)) == STAGING_SIZE  # and the next frame starts in staging again


def test_a_header_alone_never_makes_the_reader_take_more_than_it_received():
    payload = os.urandom(DIRECT_UP_TO + 5000)
    data = frame(2, payload, mask=b"\x09\x08\x07\x06") + frame(9, b"next")
    reader = FrameReader(MAX)
    assert read_in_pieces(reader, data[:20], [20]) == []
    assert len(reader.get_buffer(-1)) == STAGING_SIZE  # no buffer of the frame's size: it grows as bytes come
    got = read_in_pieces(reader, data[20:], [STAGING_SIZE] * len(data))
    assert as_pairs(got) == [(WSMsgType.BINARY, payload), (WSMsgType.PING, b"next")]


def test_a_payload_never_changes_once_handed_over():
    reader = FrameReader(MAX)
    first = reader.feed(frame(2, b"a" * 500))[0].data
    reader.feed(frame(2, b"b" * 500) + frame(2, b"c" * 2000))
    assert first == b"a" * 500


def test_readers_sharing_the_staging_buffer_keep_their_own_leftovers():
    one, two = FrameReader(MAX), FrameReader(MAX)
    a, b = frame(2, b"x" * 300, mask=b"abcd"), frame(1, "ü".encode() * 100)
    assert read_in_pieces(one, a[:150], [150]) == []
    assert read_in_pieces(two, b[:77], [77]) == []
    assert as_pairs(read_in_pieces(one, a[150:], [1000])) == [(WSMsgType.BINARY, b"x" * 300)]
    assert as_pairs(read_in_pieces(two, b[77:], [1000])) == [(WSMsgType.TEXT, "ü" * 100)]


def test_a_fragmented_message_is_put_back_together_around_control_frames():
    reader = FrameReader(MAX)
    data = (frame(2, b"one ", fin=False) + frame(9, b"ping") + frame(0, b"two " * 1000, fin=False, mask=b"mask")
            + frame(10, b"pong") + frame(0, b"three"))
    assert as_pairs(read_in_pieces(reader, data, [5] * len(data))) == [
        (WSMsgType.PING, b"ping"), (WSMsgType.PONG, b"pong"), (WSMsgType.BINARY, b"one " + b"two " * 1000 + b"three")]
    text = frame(1, "fragmented ".encode(), fin=False) + frame(0, "tëxt".encode())
    assert as_pairs(reader.feed(text)) == [(WSMsgType.TEXT, "fragmented tëxt")]


@pytest.mark.parametrize("payload, code, reason", [
    (b"", 0, ""),
    ((1000).to_bytes(2, "big"), 1000, ""),
    ((1008).to_bytes(2, "big") + "no hello".encode(), 1008, "no hello"),
    ((4000).to_bytes(2, "big"), 4000, ""),
])
def test_a_close_frame_gives_its_code_and_reason_and_ends_the_reading(payload, code, reason):
    reader = FrameReader(MAX)
    [message] = reader.feed(frame(8, payload, mask=b"\x00\xff\x00\xff") + frame(2, b"after the close"))
    assert (message.type, message.data, message.extra) == (WSMsgType.CLOSE, code, reason)
    assert reader.finished and reader.feed(frame(2, b"more")) == []


def test_aiohttps_close_frame_is_read():
    [message] = FrameReader(MAX).feed(aiohttp_frames([(WSMsgType.CLOSE, (1001, b"bye"))], masked=True))
    assert (message.type, message.data, message.extra) == (WSMsgType.CLOSE, 1001, "bye")


@pytest.mark.parametrize("data, code", [
    (frame(2, b"x", first_bits=0x40), 1002),  # RSV1: no extension was negotiated
    (frame(2, b"x", first_bits=0x10), 1002),
    (frame(3, b"x"), 1002),  # a reserved opcode
    (frame(9, b"x", fin=False), 1002),  # a fragmented ping
    (frame(9, b"x" * 126), 1002),  # a control frame over 125 bytes
    (frame(0, b"x"), 1002),  # a continuation of nothing
    (frame(2, b"a", fin=False) + frame(2, b"b"), 1002),  # a new message before the last ended
    (frame(1, b"\xff\xfe"), 1007),  # TEXT that is not UTF-8
    (frame(8, b"\x03"), 1002),  # a close payload of one byte
    (frame(8, (1005).to_bytes(2, "big")), 1002),  # a code no one may send
    (frame(8, (1000).to_bytes(2, "big") + b"\xff"), 1007),
    (frame(2, b"x" * 2000), 1009),  # over max_message (1000 here)
    (frame(2, b"x" * 600, fin=False) + frame(0, b"y" * 600), 1009),  # so, put together
    (struct.pack("!BBQ", 0x82, 127, 1 << 62), 1009),  # a length no one has the memory for
])
def test_bad_input_fails_with_aiohttps_close_code(data, code):
    reader = FrameReader(1000)
    with pytest.raises(WebSocketProtocolError) as failure:
        read_in_pieces(reader, data, [3] * len(data))
    assert failure.value.code == code
    assert reader.finished and reader.feed(frame(2, b"ignored")) == []


def test_a_small_frame_cut_short_waits_in_the_reader_for_its_end():
    data = frame(2, b"z" * (DIRECT_FROM - 1), mask=b"1234")
    reader = FrameReader(MAX)
    assert read_in_pieces(reader, data[:-1], [1 << 20]) == []
    assert len(reader.get_buffer(-1)) == STAGING_SIZE - (len(data) - 1)  # its start is kept in front
    assert as_pairs(read_in_pieces(reader, data[-1:], [1])) == [(WSMsgType.BINARY, b"z" * (DIRECT_FROM - 1))]


def test_a_read_has_room_for_several_64_kib_frames_and_more():
    # uvloop reads again whenever a read filled the buffer it offered: the frames a relay
    # gets (64 KiB payloads) come whole in one read that leaves room over.
    sent = [(WSMsgType.BINARY, os.urandom(65536 + 3)) for _ in range(3)]
    data = aiohttp_frames(sent, masked=True)
    reader = FrameReader(MAX)
    room = reader.get_buffer(-1)
    assert len(room) > len(data)
    room[: len(data)] = data
    assert as_pairs(reader.buffer_updated(len(data))) == sent


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("past", [1, 5, 14, 300, TAIL])
def test_a_read_that_ends_a_direct_frame_may_bring_the_next_frames_start(masked, past):
    # The read that ends a frame read straight into its buffer has TAIL bytes of room
    # more: what lands there (a header cut anywhere, small frames, a large frame's
    # start) is parsed as the next frames' bytes.
    sent = [(WSMsgType.BINARY, os.urandom(70_000)), (WSMsgType.PING, b"p"), (WSMsgType.BINARY, os.urandom(5)),
            (WSMsgType.BINARY, os.urandom(3000)), (WSMsgType.TEXT, "é".encode() * 700),
            (WSMsgType.BINARY, os.urandom(65539)), (WSMsgType.BINARY, os.urandom(1024))]
    pieces = [aiohttp_frames([message], masked, seed=n) for n, message in enumerate(sent)]
    data, ends = b"".join(pieces), list(itertools.accumulate(len(piece) for piece in pieces))
    reader, got, pos, view = FrameReader(MAX), [], 0, memoryview(data)
    while pos < len(data):
        room = reader.get_buffer(-1)
        if room.obj is reader._staging:
            size = 700  # large frames are cut: their rest goes straight into their buffer
        else:  # ends ``past`` bytes past the end of the frame it completes
            size = next(end for end in ends if end > pos) - pos + past
        size = min(size, len(room), len(data) - pos)
        room[:size] = view[pos : pos + size]
        pos += size
        got += reader.buffer_updated(size)
    expected = [(t, p.decode() if t == WSMsgType.TEXT else p) for t, p in sent]
    assert as_pairs(got) == expected


def test_a_direct_frame_read_to_its_end_leaves_room_so_the_read_is_short():
    data = frame(2, os.urandom(65539), mask=b"abcd")
    reader = FrameReader(MAX)
    assert read_in_pieces(reader, data[:5000], [5000]) == []
    room = reader.get_buffer(-1)
    assert len(room) > len(data) - 5000  # uvloop then does not read again to find nothing
