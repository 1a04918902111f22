"""The sans-I/O tunnel connection: every protocol decision, with no socket and no clock."""

from __future__ import annotations

import json

import pytest

from camgate.uplink.connection import LocalProtocolError, Role, TunnelConnection
from camgate.uplink.flow import Channel, FlowLimits
from camgate.uplink import events as ev
from camgate.uplink.client_ids import TableFull
from camgate.uplink.protocol import (
    DataFrame,
    Forward,
    Hello,
    PublicEndpoint,
    build_extension,
    decode_frame,
    encode_close,
    encode_data,
    encode_open,
)

KIB, MIB = 1024, 1024 * 1024
LIMITS = FlowLimits()
RTSP = Forward("rtsp", "tcp", "10.0.0.1", 554)
OFFER = build_extension(flow=True)


def connection(role: Role, *, size: int = 4096, forwards=(RTSP,), **limits) -> TunnelConnection:
    return TunnelConnection(role, Hello(tuple(forwards), size), limits=FlowLimits(**limits))


def frames(events) -> list:
    """What the events put on the WebSocket: decoded frames, and TEXT as JSON."""
    return [json.loads(e.message) if isinstance(e.message, str) else decode_frame(e.message)
            for e in events if isinstance(e, ev.Send)]


def others(events) -> list:
    return [e for e in events if not isinstance(e, ev.Send)]


def negotiated(role: Role = Role.RELAY, **limits) -> TunnelConnection:
    conn = connection(role, **limits)
    conn.announce()
    conn.receive_text(OFFER)
    assert conn.flow_active
    return conn


def wait(conn: TunnelConnection, now: float, sizes) -> tuple[bool, list]:
    """One look of the waiting WebSocket reader: still waiting?, and what to do."""
    waiting, events = conn.check_wait(now, sizes)
    return waiting, list(events)


def viewer(conn: TunnelConnection) -> Channel:
    channel, _ = conn.open_viewer(0)
    return channel


def camera(conn: TunnelConnection, client_id: int = 5) -> Channel:
    (opened,) = conn.receive_binary(encode_open(client_id, 0))
    return opened.channel


# --- negotiation and payload sizes ----------------------------------------------------


@pytest.mark.parametrize("peer_first", [False, True])
def test_flow_control_is_used_once_both_ends_offered_it(peer_first):
    conn = connection(Role.RELAY)
    if peer_first:
        assert conn.receive_text(OFFER) == [ev.FlowOffered(1, used=True)]
        assert not conn.flow_active
    conn.announce()
    if not peer_first:
        assert not conn.flow_active  # a reference agent never offers: it stays off
        conn.receive_text(OFFER)
    assert conn.flow_active


def test_the_client_offers_flow_and_256_kib_payloads_right_after_its_hello():
    conn = connection(Role.CLIENT)
    assert frames(conn.announce()) == [{"camgate": 1, "flow": 1, "max_payload": 262144}]


def test_a_client_that_does_not_offer_flow_says_nothing_and_never_uses_it():
    conn = connection(Role.CLIENT, announce_flow=False)
    assert not conn.announce()  # exactly what the reference agent sends
    conn.receive_text(OFFER)
    assert not conn.flow_active


def test_the_relay_says_its_ports_its_payload_and_its_offer():
    conn = connection(Role.RELAY)
    ports = (PublicEndpoint("rtsp", "relay.example", 20001),)
    assert frames(conn.announce(ports)) == [{
        "camgate": 1, "flow": 1, "max_payload": 262144,
        "forwards": [{"name": "rtsp", "proxy_host": "relay.example", "proxy_port": 20001}],
    }]
    client = connection(Role.CLIENT)
    assert client.receive_text(build_extension(endpoints=ports)) == [ev.Endpoints(ports)]
    assert not connection(Role.RELAY).receive_text(build_extension(endpoints=ports))  # only a relay says them


def test_an_offer_of_another_flow_version_is_not_used():
    conn = connection(Role.RELAY)
    conn.announce()
    assert conn.receive_text('{"camgate": 1, "flow": 2}') == [ev.FlowOffered(2, used=False)]
    assert not conn.flow_active


def test_misuse_by_this_end_is_a_local_error():
    conn = connection(Role.CLIENT)
    with pytest.raises(LocalProtocolError):
        conn.open_viewer(0)  # only the relay opens connections
    with pytest.raises(LocalProtocolError):
        conn.announce((PublicEndpoint("rtsp", "h", 1),))
    conn.announce()
    with pytest.raises(LocalProtocolError):
        conn.announce()
    with pytest.raises(LocalProtocolError):
        connection(Role.RELAY).open_viewer(1)  # the hello names one forward


def test_relay_sends_at_most_what_the_hello_allows_and_never_over_64_kib():
    small = connection(Role.RELAY, size=1000)
    channel = viewer(small)
    assert [len(f.payload) for f in frames(small.send_data(channel, b"x" * 2500))] == [1000, 1000, 500]
    big = connection(Role.RELAY, size=1 << 20)
    assert big.send_payload_max == 64 * KIB


def test_the_peers_max_payload_raises_the_size_to_256_kib_at_most_and_never_shrinks_it():
    conn = connection(Role.CLIENT)  # its hello said 4096
    conn.receive_text(build_extension(max_payload=1000))
    assert conn.send_payload_max == 4096
    conn.receive_text(build_extension(max_payload=70_000))
    assert conn.send_payload_max == 70_000
    conn.receive_text(build_extension(max_payload=1 << 20))
    assert conn.send_payload_max == 256 * KIB
    channel = camera(conn)
    sizes = [len(f.payload) for f in frames(conn.send_data(channel, b"y" * 300_000))]
    assert sizes == [256 * KIB, 300_000 - 256 * KIB]


def test_a_read_made_in_a_d_frames_place_is_sent_as_that_frame():
    conn = connection(Role.RELAY)
    channel = viewer(conn)
    frame = bytearray(b"...read bytes")  # what a socket read left after a D header's room
    [send] = conn.send_read(channel, frame)
    assert send.message is frame  # sent as it is, its header filled in
    assert decode_frame(frame) == DataFrame(channel.client_id, b"read bytes")
    assert conn.bytes_to_peer == len(b"read bytes")
    conn.socket_lost(channel)
    assert conn.send_read(channel, bytearray(b"...late")) == ()


def test_a_d_payload_received_is_a_view_of_the_message_not_a_copy():
    conn = connection(Role.RELAY)
    channel = viewer(conn)
    message = bytearray(encode_data(channel.client_id, b"payload"))
    [data] = conn.receive_binary(message)
    assert data.payload == b"payload" and data.payload.obj is message
    assert conn.bytes_from_peer == len(b"payload")


# --- frames and ids -------------------------------------------------------------------


def test_client_opens_delivers_and_closes_a_connection():
    conn = connection(Role.CLIENT)
    assert conn.receive_binary(encode_open(5, 0)) == [ev.Opened(5, 0)]
    assert conn.receive_binary(encode_data(5, b"hi")) == [ev.Data(5, b"hi")]
    assert conn.receive_binary(encode_close(5)) == [ev.Closed(5)]
    assert conn.bytes_from_peer == 2 and conn.open_connections == 0


def test_c_goes_out_at_most_once_whoever_closes_first():
    conn = connection(Role.RELAY)
    first, second = viewer(conn), viewer(conn)
    conn.receive_binary(encode_close(first.client_id))
    assert not conn.socket_lost(first)  # the peer closed it: no C back
    assert frames(conn.socket_lost(second)) == [decode_frame(encode_close(second.client_id))]
    assert not conn.socket_lost(second)
    # The peer's own C crossed ours on the wire: expected, so only a quiet note.
    assert conn.receive_binary(encode_close(second.client_id)) == [
        ev.Ignored(f"C ignored: id {second.client_id} was closed recently (frame crossed a C)", expected=True)
    ]


def test_frames_that_break_the_format_or_name_no_open_id_are_ignored():
    conn = connection(Role.RELAY)
    for wire in (b"", b"X\x00\x00", b"O\x00\x00", b"C\x00", b"D\x05\x00"):
        (event,) = conn.receive_binary(wire)
        assert isinstance(event, ev.Ignored) and event.reason.startswith("malformed frame ignored")
    assert conn.receive_binary(encode_data(9, b"lost")) == [ev.Ignored("D ignored: id 9 is not open")]
    assert conn.receive_binary(encode_open(1, 0)) == [ev.Ignored("O frame from a client ignored (id 1)")]


def test_client_refuses_an_o_for_a_forward_the_hello_did_not_name():
    conn = connection(Role.CLIENT)
    events = conn.receive_binary(encode_open(5, 7))
    assert others(events) == [ev.Ignored("O for forward 7, which the hello did not name; refused")]
    assert frames(events) == [decode_frame(encode_close(5))]


def test_client_refuses_connections_beyond_its_table_and_keeps_a_live_id():
    conn = TunnelConnection(Role.CLIENT, Hello((RTSP,)), max_connections=1)
    camera(conn, 1)
    events = conn.receive_binary(encode_open(2, 0))
    assert others(events) == [ev.Ignored("O for id 2 refused: 1 connections already open")]
    assert frames(events) == [decode_frame(encode_close(2))]
    assert frames(conn.receive_binary(encode_open(1, 9))) == []  # id 1 is live: no C for it


def test_relay_reusing_a_live_id_drops_the_old_connection_without_c():
    conn = connection(Role.CLIENT)
    old = camera(conn, 5)
    events = conn.receive_binary(encode_open(5, 0))
    assert events == [ev.Dropped(5, "the relay opened its id again"), ev.Opened(5, 0)]
    assert events[0].channel is old and events[1].channel is not old
    assert not conn.socket_lost(old)


def test_relay_refuses_a_viewer_beyond_its_table():
    conn = TunnelConnection(Role.RELAY, Hello((RTSP,)), max_connections=1)
    channel, events = conn.open_viewer(0)
    assert frames(events) == [decode_frame(encode_open(channel.client_id, 0))]
    with pytest.raises(TableFull):
        conn.open_viewer(0)


# --- the peer's pause and resume ---------------------------------------------------------


def test_a_pause_is_honoured_only_if_this_end_offered_flow_control():
    conn = connection(Role.CLIENT, announce_flow=False)
    camera(conn)
    assert conn.receive_text(build_extension(pause=[5])) == [
        ev.Ignored("pause/resume ignored: this end did not offer flow control")
    ]
    offered = connection(Role.CLIENT)
    offered.announce()
    camera(offered)
    assert offered.receive_text(build_extension(pause=[5])) == [ev.PauseRequested(5)]
    assert offered.receive_text(build_extension(resume=[5])) == [ev.ResumeRequested(5)]
    assert offered.pauses_received == 1


def test_a_pause_for_an_id_not_open_is_ignored_and_a_reused_id_starts_unpaused():
    conn = negotiated(Role.CLIENT)
    camera(conn)
    assert conn.receive_text(build_extension(pause=[5, 9])) == [
        ev.PauseRequested(5), ev.Ignored("pause ignored: id 9 is not open", expected=True)
    ]
    conn.receive_binary(encode_close(5))
    new = camera(conn)  # the same id, a new connection
    assert not new.held_by_peer
    assert not conn.socket_connected(new, 0)  # nothing holds it: it is read


@pytest.mark.parametrize("text, reason", [
    ('{"camgate": 1, "pause": [70000]}', "pause holds 70000"),
    ('{"camgate": 1, "resume": "5"}', "resume is not a list"),
])
def test_a_malformed_extension_message_is_ignored_whole(text, reason):
    conn = negotiated(Role.CLIENT)
    camera(conn)
    (event,) = conn.receive_text(text)
    assert isinstance(event, ev.Ignored) and reason in event.reason
    assert conn.receive_text("a TEXT after the hello") == [ev.Ignored("TEXT message after the hello ignored")]


def test_a_socket_is_read_only_when_neither_the_peer_nor_the_tunnel_holds_it():
    conn = negotiated(Role.CLIENT, to_websocket=4 * KIB)
    held, free = camera(conn, 1), camera(conn, 2)
    assert conn.receive_text(build_extension(pause=[1])) == [ev.PauseRequested(1)]
    # Our queue to the WebSocket fills up: every socket not yet held stops.
    events = conn.send_data(free, b"z" * 5000)
    assert others(events) == [ev.PauseRequested(2)]
    assert not conn.receive_text(build_extension(resume=[1]))  # the full queue still holds it
    assert not conn.receive_text(build_extension(pause=[1]))
    assert conn.sent(conn.queued_to_websocket) == [ev.ResumeRequested(2)]  # the peer still holds 1
    assert conn.receive_text(build_extension(resume=[1])) == [ev.ResumeRequested(1)]
    assert not held.held_by_peer


def test_a_full_queue_to_the_websocket_stops_every_socket_until_it_is_half_empty():
    conn = connection(Role.RELAY, to_websocket=10 * KIB)
    first = viewer(conn)
    assert others(conn.send_data(first, b"a" * 8 * KIB)) == []
    events = conn.send_data(first, b"b" * 4 * KIB)
    assert others(events) == [ev.PauseRequested(first.client_id)]
    second, events = conn.open_viewer(0)  # a viewer arriving meanwhile waits too
    assert others(events) == [ev.PauseRequested(second.client_id)]
    assert not conn.sent(4 * KIB)  # 8 KiB left: not yet half
    assert conn.sent(4 * KIB) == [ev.ResumeRequested(first.client_id), ev.ResumeRequested(second.client_id)]


# --- bounds on what waits for one socket ---------------------------------------------------


def test_with_flow_past_the_mark_the_peer_is_asked_to_pause_once_and_to_resume_when_drained():
    conn = negotiated()
    channel = viewer(conn)
    assert not conn.socket_buffered(channel, LIMITS.per_connection)
    events = conn.socket_buffered(channel, LIMITS.per_connection + 1)
    assert frames(events) == [{"camgate": 1, "pause": [channel.client_id]}]
    assert not conn.socket_buffered(channel, 2 * MIB)  # once
    assert not conn.reader_must_wait  # nothing else waits for it
    assert frames(conn.socket_drained(channel, LIMITS.per_connection // 2)) == [
        {"camgate": 1, "resume": [channel.client_id]}
    ]
    assert conn.pauses_sent == conn.resumes_sent == 1


def test_flow_turning_on_pauses_the_sockets_already_over_the_mark():
    conn = connection(Role.RELAY)
    conn.announce()
    channel = viewer(conn)
    conn.socket_buffered(channel, LIMITS.per_connection + 1)
    assert conn.reader_must_wait  # no flow control yet: the reader waits, as the spec says
    assert frames(conn.receive_text(OFFER)) == [{"camgate": 1, "pause": [channel.client_id]}]
    assert not conn.reader_must_wait


def test_a_camera_that_connects_with_little_pending_resumes_its_viewer():
    conn = negotiated(Role.CLIENT)
    channel = camera(conn)
    conn.socket_buffered(channel, LIMITS.per_connection + 1)  # bytes pile up while it connects
    assert channel.pause_sent
    assert frames(conn.socket_connected(channel, 1000)) == [{"camgate": 1, "resume": [5]}]


def test_a_reader_that_keeps_up_is_never_cut_whatever_was_on_its_way():
    """Issue 9 item 13: a viewer draining at 335 MB/s after a long pause was closed with
    "8419966 bytes waiting, over the 8388608-byte bound". What the peer sent before our
    pause reached it may be more than the cap (the kernel's buffers between the ends
    held 16 MB); the reader must then wait for the socket, not close it."""
    conn = negotiated(stall_timeout=1.0)
    channel, other = viewer(conn), viewer(conn)
    cap = LIMITS.per_connection_max_negotiated
    for episode in range(3):
        now = 10.0 * episode
        assert frames(conn.socket_buffered(channel, LIMITS.per_connection + 1)) == [
            {"camgate": 1, "pause": [channel.client_id]}
        ]
        events = conn.socket_buffered(channel, 8_419_966)  # still on its way when the pause arrived
        assert not events and conn.reader_must_wait  # TCP holds the rest back meanwhile
        assert wait(conn, now, [(channel, 8_419_966), (other, 0)]) == (True, [])
        assert wait(conn, now + 0.02, [(channel, cap // 2), (other, 0)]) == (True, [])
        drained = [(channel, LIMITS.per_connection // 2), (other, 0)]
        assert wait(conn, now + 0.025, drained) == (False, [])  # 8 MB read in 25 ms
        assert frames(conn.socket_drained(channel, LIMITS.per_connection // 2)) == [
            {"camgate": 1, "resume": [channel.client_id]}
        ]
    assert channel.live and conn.pauses == 3


def test_with_flow_a_connection_over_the_cap_that_does_not_drain_in_time_is_closed():
    conn = negotiated(stall_timeout=1.0)
    channel = viewer(conn)
    over = LIMITS.per_connection_max_negotiated + 1
    conn.socket_buffered(channel, LIMITS.per_connection + 1)
    assert not conn.socket_buffered(channel, over)
    assert wait(conn, 0.0, [(channel, over)]) == (True, [])
    assert wait(conn, 1.0, [(channel, over)]) == (True, [ev.StoppedWaiting(channel.client_id)])
    assert wait(conn, 1.0, [(channel, over)]) == (False, [])
    events = conn.socket_buffered(channel, over + 65536)  # the next frame for it
    assert frames(events) == [decode_frame(encode_close(channel.client_id))]
    assert others(events) == [ev.Dropped(channel.client_id, "its reader is too slow: 8454145 bytes waiting, "
                                                            "over the 8388608-byte bound, not drained within 1 s")]


def test_reference_peer_the_reader_waits_then_gives_up_then_closes_past_the_cap():
    conn = connection(Role.RELAY, stall_timeout=1.0)
    channel, other = viewer(conn), viewer(conn)
    assert not conn.socket_buffered(channel, LIMITS.per_connection + 1)
    assert conn.reader_must_wait
    sizes = [(channel, LIMITS.per_connection + 1), (other, 0)]
    assert wait(conn, 10.0, sizes) == (True, [])
    assert wait(conn, 10.9, sizes) == (True, [])
    assert wait(conn, 11.0, sizes) == (True, [ev.StoppedWaiting(channel.client_id)])
    assert wait(conn, 11.0, sizes) == (False, [])
    assert conn.pauses == 1
    assert not conn.socket_buffered(channel, 600 * KIB)  # given up: no more waiting for it
    assert not conn.reader_must_wait
    events = conn.socket_buffered(channel, LIMITS.per_connection_max + 1)
    assert others(events) == [ev.Dropped(channel.client_id, "its reader is too slow: 1048577 bytes waiting, "
                                                         "over the 1048576-byte bound")]
    assert frames(events) == [decode_frame(encode_close(channel.client_id))]


def test_reference_peer_a_socket_that_drains_in_time_ends_the_wait():
    conn = connection(Role.RELAY)
    channel = viewer(conn)
    conn.socket_buffered(channel, LIMITS.per_connection + 1)
    assert wait(conn, 0.0, [(channel, LIMITS.per_connection + 1)]) == (True, [])
    assert wait(conn, 0.5, [(channel, LIMITS.per_connection // 2)]) == (False, [])
    assert not channel.given_up


def test_a_tunnel_holding_too_much_waits_then_closes_the_connection_holding_most():
    conn = connection(Role.RELAY, per_tunnel=4 * MIB, per_connection_max=4 * MIB, stall_timeout=1.0)
    small, big, closing = viewer(conn), viewer(conn), viewer(conn)
    conn.receive_binary(encode_close(closing.client_id))  # closed by the peer, still flushing: it counts
    conn.socket_buffered(closing, 1 * MIB)
    conn.socket_buffered(small, 1 * MIB)
    conn.socket_buffered(big, 3 * MIB)
    assert conn.reader_must_wait
    sizes = [(small, 1 * MIB), (big, 3 * MIB), (closing, 1 * MIB)]
    assert wait(conn, 0.0, sizes) == (True, [])
    waiting, events = wait(conn, 1.0, sizes)
    assert waiting and frames(events) == [decode_frame(encode_close(big.client_id))]
    assert [e for e in others(events) if isinstance(e, ev.Dropped)] == [
        ev.Dropped(big.client_id, f"its reader is too slow: tunnel stalled with {5 * MIB} bytes waiting")
    ]
    assert wait(conn, 1.0, [(small, 1 * MIB), (closing, 1 * MIB)]) == (False, [])


def test_a_paused_connection_that_never_drains_is_closed_after_stalled_close_after():
    conn = negotiated(stalled_close_after=120.0)
    channel = viewer(conn)
    conn.socket_buffered(channel, LIMITS.per_connection + 1)
    assert not conn.poll(1000.0)  # the pause is timed from here
    assert not conn.poll(1120.0)
    events = conn.poll(1120.5)
    assert others(events) == [ev.Dropped(channel.client_id, "its reader is too slow: nothing drained for 120 s")]
    assert frames(events) == [decode_frame(encode_close(channel.client_id))]


def test_a_connection_that_drains_is_never_given_up_however_long_it_lives():
    conn = negotiated()
    channel = viewer(conn)
    for second in range(0, 1000, 10):
        conn.socket_buffered(channel, LIMITS.per_connection + 1)
        assert not conn.poll(float(second))
        conn.socket_drained(channel, 0)


def test_deeply_nested_text_after_the_hello_is_ignored():
    # Issue 9 item 10: it used to raise RecursionError and end the tunnel.
    conn = negotiated(Role.CLIENT)
    deep = "[" * 100_000 + "]" * 100_000
    assert conn.receive_text(deep) == [ev.Ignored("TEXT message after the hello ignored")]
    assert conn.receive_text('{"camgate": 1, "pause": ' + deep + "}") == [
        ev.Ignored("TEXT message after the hello ignored")
    ]
