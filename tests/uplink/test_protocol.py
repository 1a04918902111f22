"""The sans-I/O uplink core: frames, forwards, hello, id table, liveness."""

import json

import pytest

from camgate.uplink.client_ids import ConnectionTable, TableFull
from camgate.uplink.liveness import Liveness
from camgate.uplink.protocol import (
    LIMITS,
    CloseFrame,
    DataFrame,
    Extension,
    Forward,
    Hello,
    MalformedExtension,
    MalformedFrame,
    OpenFrame,
    ProtocolError,
    PublicEndpoint,
    build_extension,
    build_hello,
    decode_frame,
    encode_close,
    encode_data,
    encode_open,
    format_forward,
    parse_extension,
    parse_forward,
    parse_hello,
    split_payload,
)

# --- frames -------------------------------------------------------------------


@pytest.mark.parametrize("client_id", [0, 1, 255, 256, 0x1234, 65535])
@pytest.mark.parametrize("index", [0, 1, 9, 255])
def test_open_round_trip(client_id, index):
    wire = encode_open(client_id, index)
    assert len(wire) == 4 and wire[:1] == b"O"
    assert decode_frame(wire) == OpenFrame(client_id, index)


def test_client_id_is_little_endian():
    assert encode_open(0x1234, 9) == b"O\x34\x12\x09"
    assert encode_close(1) == b"C\x01\x00"
    assert encode_data(65535, b"x") == b"D\xff\xffx"
    assert decode_frame(b"D\x02\x01abc") == DataFrame(0x0102, b"abc")


@pytest.mark.parametrize("client_id", [0, 65535])
def test_close_round_trip(client_id):
    wire = encode_close(client_id)
    assert len(wire) == 3
    assert decode_frame(wire) == CloseFrame(client_id)


@pytest.mark.parametrize("size", [1, 4096, 65536])
@pytest.mark.parametrize("client_id", [0, 65535])
def test_data_round_trip(size, client_id):
    payload = bytes(i % 251 for i in range(size))
    wire = encode_data(client_id, payload)
    assert len(wire) == 3 + size
    frame = decode_frame(wire)
    assert frame == DataFrame(client_id, payload)
    assert "bytes" in repr(frame) and str(size) in repr(frame)


def test_decode_accepts_bytearray_and_memoryview():
    assert decode_frame(bytearray(b"C\x05\x00")) == CloseFrame(5)
    assert decode_frame(memoryview(b"D\x05\x00z")) == DataFrame(5, b"z")


def test_a_payload_never_changes_with_the_buffer_it_came_from():
    buffer = bytearray(b"D\x05\x00abc")
    frame = decode_frame(buffer)
    buffer[3:6] = b"xyz"
    assert frame.payload == b"abc"
    assert decode_frame(b"D\x05\x00abc").payload == b"abc"


@pytest.mark.parametrize(
    "wire, reason",
    [
        (b"", "empty"),
        (b"X\x00\x00", "unknown command"),
        (b"o\x00\x00\x00", "unknown command"),  # commands are case-sensitive
        (b"O", "not 4"),
        (b"O\x00\x00", "not 4"),
        (b"O\x00\x00\x00\x00", "not 4"),
        (b"C", "not 3"),
        (b"C\x00", "not 3"),
        (b"C\x00\x00\x00", "not 3"),
        (b"D", "no payload"),
        (b"D\x00\x00", "no payload"),
    ],
)
def test_malformed_frames(wire, reason):
    with pytest.raises(MalformedFrame) as info:
        decode_frame(wire)
    assert reason in info.value.reason
    assert isinstance(info.value, ProtocolError)


@pytest.mark.parametrize("bad", [-1, 65536])
def test_encoders_reject_ids_out_of_range(bad):
    for encode in (lambda: encode_open(bad, 0), lambda: encode_data(bad, b"x"), lambda: encode_close(bad)):
        with pytest.raises(ValueError):
            encode()


def test_encoders_reject_bad_index_and_empty_payload():
    with pytest.raises(ValueError):
        encode_open(0, 256)
    with pytest.raises(ValueError):
        encode_open(0, -1)
    with pytest.raises(ValueError):
        encode_data(0, b"")


def test_split_payload_respects_max_and_order():
    data = bytes(range(256)) * 40  # 10240 bytes
    frames = [bytes(f) for f in split_payload(7, data, 4096)]
    assert [len(f) - 3 for f in frames] == [4096, 4096, 2048]
    decoded = [decode_frame(f) for f in frames]
    assert all(f.client_id == 7 for f in decoded)
    assert b"".join(f.payload for f in decoded) == data
    assert [bytes(f) for f in split_payload(1, b"abc", 1)] == [b"D\x01\x00a", b"D\x01\x00b", b"D\x01\x00c"]


# --- forwards -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("http:http:192.168.1.20:80", Forward("http", "http", "192.168.1.20", 80)),
        ("rtsp:tcp:[192.168.1.20]:554", Forward("rtsp", "tcp", "192.168.1.20", 554)),
        ("ssh:tcp:[::1]:22", Forward("ssh", "tcp", "::1", 22)),
        ("ssh:tcp:::1:22", Forward("ssh", "tcp", "::1", 22)),
        ("web:https:[fe80::1%eth0]:443", Forward("web", "https", "fe80::1%eth0", 443)),
        ("cam:http:camera.local:8080", Forward("cam", "http", "camera.local", 8080)),
        ("a:tcp:h:1", Forward("a", "tcp", "h", 1)),
        ("a:tcp:h:65535", Forward("a", "tcp", "h", 65535)),
        (" a:tcp:h:1 \n", Forward("a", "tcp", "h", 1)),
    ],
)
def test_parse_forward(text, expected):
    assert parse_forward(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("http:http:80", "name:protocol:host:port"),
        ("http", "name:protocol:host:port"),
        ("http:ftp:h:21", "protocol"),
        ("http:HTTP:h:80", "protocol"),
        (":http:h:80", "name is empty"),
        ("x" * 51 + ":tcp:h:1", "longer than 50"),
        ("a:tcp::80", "host is empty"),
        ("a:tcp:[]:80", "host is empty"),
        ("a:tcp:" + "h" * 256 + ":80", "longer than 255"),
        ("a:tcp:h:0", "not in 1..65535"),
        ("a:tcp:h:65536", "not in 1..65535"),
        ("a:tcp:h:-1", "numeric port"),
        ("a:tcp:h:", "numeric port"),
        ("a:tcp:h:8o", "numeric port"),
        ("a:tcp:not:ipv6:80", "IPv6"),
        ("a:tcp:[h]x:80", "not a host"),
    ],
)
def test_parse_forward_rejects(text, message):
    with pytest.raises(ProtocolError) as info:
        parse_forward(text)
    assert message in str(info.value)


def test_forward_limits_at_the_boundary():
    assert parse_forward("x" * 50 + ":tcp:h:1").name == "x" * 50
    assert len(parse_forward("a:tcp:" + "h" * 255 + ":1").host) == 255


def test_format_forward_round_trips():
    for forward in (Forward("rtsp", "tcp", "10.0.0.1", 554), Forward("ssh", "tcp", "::1", 22)):
        text = format_forward(forward)
        assert text.count("[") == 1
        assert parse_forward(text) == forward
    assert format_forward(Forward("http", "http", "::1", 80)) == "http:http:[::1]:80"


def test_forward_json():
    forward = Forward("http", "http", "192.168.1.20", 80)
    assert forward.to_json() == {"name": "http", "protocol": "http", "host": "192.168.1.20", "port": 80}
    assert Forward.from_json(forward.to_json()) == forward
    assert Forward.from_json({"name": "s", "protocol": "tcp", "host": "[::1]", "port": 22}).host == "::1"
    for bad in (
        [],
        {"name": "a", "protocol": "tcp", "host": "h"},
        {"name": "a", "protocol": "tcp", "host": "h", "port": "80"},
        {"name": "a", "protocol": "tcp", "host": "h", "port": True},
        {"name": 1, "protocol": "tcp", "host": "h", "port": 80},
    ):
        with pytest.raises(ProtocolError):
            Forward.from_json(bad)


# --- hello --------------------------------------------------------------------

FORWARDS = [Forward("http", "http", "192.168.1.20", 80), Forward("rtsp", "tcp", "192.168.1.20", 554)]


def test_build_hello_matches_the_spec_example():
    data = json.loads(build_hello(FORWARDS, agent_version="0.1.2"))
    assert data == {
        "websocket_buffer_size": 4096,
        "agent_version": "0.1.2",
        "forwards": [
            {"name": "http", "protocol": "http", "host": "192.168.1.20", "port": 80},
            {"name": "rtsp", "protocol": "tcp", "host": "192.168.1.20", "port": 554},
        ],
    }


def test_hello_round_trip_keeps_order_and_extras():
    hello = parse_hello(build_hello(FORWARDS, websocket_buffer_size=65536, agent_version="x"))
    assert hello == Hello(tuple(FORWARDS), 65536, "x")
    text = json.dumps({"forwards": [f.to_json() for f in FORWARDS], "future": 1})
    hello = parse_hello(text)
    assert hello.websocket_buffer_size == 4096  # the reference default when absent
    assert hello.agent_version is None
    assert hello.extra == {"future": 1}
    assert parse_hello(text.encode()).forwards == tuple(FORWARDS)


def test_hello_forward_limits():
    ten = [Forward(f"f{i}", "tcp", "h", 1000 + i) for i in range(10)]
    assert len(parse_hello(build_hello(ten)).forwards) == 10
    with pytest.raises(ProtocolError, match="at most 10"):
        build_hello(ten + [Forward("f10", "tcp", "h", 1)])
    with pytest.raises(ProtocolError, match="at least one"):
        build_hello([])
    with pytest.raises(ProtocolError, match="unique"):
        build_hello([Forward("a", "tcp", "h", 1), Forward("a", "tcp", "h", 2)])
    with pytest.raises(ProtocolError):
        build_hello(FORWARDS, websocket_buffer_size=0)


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        ("[]", "not a JSON object"),
        ("{}", "no forwards list"),
        ('{"forwards": {}}', "no forwards list"),
        ('{"forwards": []}', "at least one"),
        ('{"forwards": [1]}', "JSON object"),
        ('{"forwards": [{"name": "a", "protocol": "ftp", "host": "h", "port": 1}]}', "protocol"),
        (
            '{"forwards": [{"name": "a", "protocol": "tcp", "host": "h", "port": 1}], "websocket_buffer_size": 0}',
            "websocket_buffer_size",
        ),
        (
            '{"forwards": [{"name": "a", "protocol": "tcp", "host": "h", "port": 1}], "websocket_buffer_size": "4096"}',
            "websocket_buffer_size",
        ),
    ],
)
def test_parse_hello_rejects(text, message):
    with pytest.raises(ProtocolError) as info:
        parse_hello(text)
    assert message in str(info.value)


DEEP = "[" * 100_000 + "]" * 100_000  # JSON nested past Python's recursion limit
NESTED_PORT = '{"forwards": [{"name": "a", "protocol": "tcp", "host": "h", "port": ' + "[" * 900 + "]" * 900 + "}]}"


@pytest.mark.parametrize("text", [DEEP, '{"forwards": ' + DEEP + "}", NESTED_PORT], ids=["array", "forwards", "port"])
def test_a_deeply_nested_hello_is_refused_with_a_short_reason(text):
    with pytest.raises(ProtocolError) as info:
        parse_hello(text)
    assert len(str(info.value)) < 100


# --- connection table -----------------------------------------------------------


def test_table_allocates_round_robin_and_reuses_after_close():
    table = ConnectionTable(capacity=3)
    a, b, c = (table.allocate(name) for name in "abc")
    assert (a, b, c) == (0, 1, 2)
    with pytest.raises(TableFull):
        table.allocate("d")
    assert table.close_local(b) == "b"
    # The freed id is not handed out again at once (a C for it may be in flight).
    assert table.allocate("d") == 3
    assert len(table) == 3 and table.get(3) == "d"


def test_table_allocation_wraps_and_skips_live_ids():
    table = ConnectionTable(capacity=4)
    table._next_id = 65535
    assert table.allocate("x") == 65535
    assert table.allocate("y") == 0
    table.close_local(65535)
    table._next_id = 65535
    assert table.allocate("z") == 65535
    table._next_id = 0
    assert table.allocate("w") == 1  # 0 is live, skipped


def test_close_at_most_once_per_id_whoever_closes_first():
    table = ConnectionTable()
    cid = table.allocate("viewer")
    assert table.close_remote(cid) == "viewer"  # peer's C: close our end, no C back
    assert table.close_local(cid) is None  # our socket then closes: must not send C
    cid = table.allocate("viewer2")
    assert table.close_local(cid) == "viewer2"  # we close first: send C once
    assert table.close_local(cid) is None
    assert table.close_remote(cid) is None  # the peer's crossing C is ignored


def test_table_client_side_and_unknown_ids():
    table = ConnectionTable(capacity=2)
    assert table.register(5, "leg") is None
    assert table.get(5) == "leg"
    assert table.get(6) is None
    assert "not open" in table.why_unknown(6)
    table.close_remote(5)
    assert 5 not in table and table.was_recently_closed(5)
    assert "closed recently" in table.why_unknown(5)
    assert table.register(5, "again") is None  # reuse after C


def test_table_register_replaces_a_reused_live_id_and_honours_capacity():
    table = ConnectionTable(capacity=1)
    table.register(1, "old")
    assert table.register(1, "new") == "old"
    assert table.get(1) == "new"
    with pytest.raises(TableFull):
        table.register(2, "over")
    assert table.items() == [(1, "new")] and table.values() == ["new"]


def test_table_default_capacity_is_the_reference_limit():
    table = ConnectionTable()
    for i in range(LIMITS.max_connections):
        table.allocate(i)
    with pytest.raises(TableFull):
        table.allocate("one too many")


# --- liveness -------------------------------------------------------------------


def test_liveness_pings_once_then_declares_dead():
    clock = Liveness(now=0.0)
    assert clock.poll(29.9) is None
    assert clock.poll(30.0) == Liveness.PING
    assert clock.poll(45.0) is None  # one ping per silent spell
    assert clock.poll(60.0) == Liveness.DEAD


def test_liveness_resets_on_traffic():
    clock = Liveness(now=0.0, ping_after=1, dead_after=2)
    assert clock.poll(1.5) == Liveness.PING
    clock.heard(1.6)
    assert clock.poll(2.5) is None
    assert clock.poll(2.6) == Liveness.PING
    assert clock.poll(3.6) == Liveness.DEAD
    with pytest.raises(ValueError):
        Liveness(now=0, ping_after=2, dead_after=1)


# --- camgate's extension messages (TEXT after the hello) -------------------------


def test_flow_offer_is_one_small_json_object():
    text = build_extension(flow=True)
    assert json.loads(text) == {"camgate": 1, "flow": 1}
    assert parse_extension(text) == Extension(flow=1)


def test_relay_extension_round_trips_with_the_flow_offer():
    endpoints = (PublicEndpoint("http", "relay.example.com", 41080), PublicEndpoint("rtsp", "relay.example.com", 41554))
    text = build_extension(flow=True, max_payload=65536, endpoints=endpoints)
    assert json.loads(text) == {
        "camgate": 1, "flow": 1, "max_payload": 65536,
        "forwards": [{"name": "http", "proxy_host": "relay.example.com", "proxy_port": 41080},
                     {"name": "rtsp", "proxy_host": "relay.example.com", "proxy_port": 41554}],
    }
    assert parse_extension(text) == Extension(flow=1, max_payload=65536, endpoints=endpoints)
    # Without the offer: exactly the relay's message from before the extension.
    assert "flow" not in json.loads(build_extension(max_payload=65536, endpoints=endpoints))


@pytest.mark.parametrize("ids", [[0], [65535], [0, 1, 2, 65535], list(range(256))])
def test_pause_and_resume_round_trip(ids):
    pause = build_extension(pause=ids)
    assert json.loads(pause) == {"camgate": 1, "pause": ids}
    assert parse_extension(pause) == Extension(pause=tuple(ids))
    resume = build_extension(resume=ids)
    assert parse_extension(resume) == Extension(resume=tuple(ids))


def test_a_message_may_pause_some_ids_and_resume_others():
    assert parse_extension('{"camgate": 1, "pause": [1, 2], "resume": [3]}') == Extension(pause=(1, 2), resume=(3,))
    assert parse_extension('{"camgate": 1, "pause": [4, 4, 5, 4]}').pause == (4, 5)  # each id once
    assert parse_extension('{"camgate": 1, "pause": []}') == Extension()


@pytest.mark.parametrize("ids", [[-1], [65536], [1, 70000], [True], [1.0], ["1"], [None], [[1]]])
def test_building_with_bad_ids_is_refused(ids):
    with pytest.raises(ValueError):
        build_extension(pause=ids)
    with pytest.raises(ValueError):
        build_extension(resume=ids)


def test_building_a_pause_and_resume_of_one_id_is_refused():
    with pytest.raises(ValueError):
        build_extension(pause=[1], resume=[1])


def test_unknown_keys_are_ignored():
    text = '{"camgate": 1, "pause": [7], "window": 65536, "future": {"x": [1]}}'
    assert parse_extension(text) == Extension(pause=(7,))


@pytest.mark.parametrize(
    "text",
    [
        "a TEXT after the hello",
        "{not json",
        "[1, 2]",
        '"camgate"',
        '{"flow": 1}',  # not camgate's: no marker
        '{"camgate": 2, "flow": 1}',  # another version of the extension
        '{"camgate": "1", "pause": [1]}',
        '{"camgate": true, "pause": [1]}',
        '{"camgate": 1.0, "pause": [1]}',
        pytest.param(DEEP, id="deep"),
        pytest.param('{"camgate": 1, "pause": ' + DEEP + "}", id="deep-in-camgates"),
    ],
)
def test_text_that_is_not_camgates_is_ignored(text):
    assert parse_extension(text) is None


@pytest.mark.parametrize(
    "text",
    [
        '{"camgate": 1, "pause": [65536]}',
        '{"camgate": 1, "pause": [-1]}',
        '{"camgate": 1, "pause": [1.5]}',
        '{"camgate": 1, "pause": [true]}',
        '{"camgate": 1, "pause": ["3"]}',
        '{"camgate": 1, "pause": 3}',
        '{"camgate": 1, "resume": {"3": 1}}',
        '{"camgate": 1, "resume": null}',
        '{"camgate": 1, "pause": [1], "resume": [1]}',
        '{"camgate": 1, "flow": 0}',
        '{"camgate": 1, "flow": true}',
        '{"camgate": 1, "flow": "1"}',
    ],
)
def test_malformed_extension_is_refused_whole(text):
    with pytest.raises(MalformedExtension) as info:
        parse_extension(text)
    assert info.value.reason  # said, so the session can log it


def test_flow_version_is_read_as_given():
    # A later version is not mistaken for this one: the session uses flow only at 1.
    assert parse_extension('{"camgate": 1, "flow": 2}').flow == 2


def test_relay_parts_are_read_leniently():
    # As before the extension grew flow control: a bad max_payload or forward is skipped.
    ext = parse_extension(
        '{"camgate": 1, "max_payload": -5, "forwards": [{"name": "rtsp", "proxy_host": "h", "proxy_port": 5}, '
        '{"name": "http"}, 7, {"name": "x", "proxy_host": "h", "proxy_port": "nope"}]}'
    )
    assert ext.max_payload is None and ext.endpoints == (PublicEndpoint("rtsp", "h", 5),)
    assert parse_extension('{"camgate": 1, "max_payload": true}').max_payload is None
    assert parse_extension('{"camgate": 1, "forwards": "x"}').endpoints == ()
    nested = "[" * 900 + "]" * 900  # parses, but printing it may recurse too deep
    ext = parse_extension('{"camgate": 1, "forwards": [{"name": ' + nested + ', "proxy_host": "h", "proxy_port": 5}]}')
    assert ext.endpoints == ()
    assert parse_extension('{"camgate": 1, "pause": [1]}').endpoints is None  # says nothing about ports
