"""Hostile requests to the relay get a 4xx (or "invalid token"), never a 500 or a
traceback: bytes that are not UTF-8 in Authorization, JSON nested deeply inside a token
or a body, camids of thousands of digits. Sent as raw bytes over a real socket, since
an HTTP client library would refuse to send most of them."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import struct

import pytest

from .loopback import ADMIN_TOKEN, wait_until

# Deeper than Python's recursion limit, yet within aiohttp's 8190-byte header line.
NESTED_TOKEN = base64.b64encode(b'{"camid": 1, "x": ' + b"[" * 2500 + b"]" * 2500 + b"}")
MAX_CAMID = 2**63 - 1  # the gateway's camid column is a signed 64-bit integer
NOT_UTF8 = [b"\xff\xfe", b"Bearer \xff\xfe", b"\xed\xa0\x80"]  # the last: a UTF-16 surrogate


async def raw_request(port: int, method: bytes, target: bytes, headers: dict[bytes, bytes], body: bytes = b""):
    """Send one request as bytes; the status and the JSON body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = b"%s %s HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n" % (method, target)
        head += b"".join(b"%s: %s\r\n" % item for item in headers.items())
        if body:
            head += b"Content-Length: %d\r\n" % len(body)
        writer.write(head + b"\r\n" + body)
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(payload) if payload.startswith(b"{") else payload


@pytest.fixture
def no_tracebacks(caplog):
    """Fails the test if anything logged an exception (aiohttp logs a 500's traceback)."""
    caplog.set_level(logging.WARNING)
    yield
    assert [r for r in caplog.records if r.exc_info] == []


@pytest.mark.parametrize("open_enrollment", [False, True])
@pytest.mark.parametrize("authorization", [*NOT_UTF8, NESTED_TOKEN, b"Bearer " + NESTED_TOKEN],
                         ids=["ff-fe", "bearer-ff-fe", "surrogate", "nested-token", "bearer-nested-token"])
async def test_tunnel_routes_refuse_a_bad_token_with_a_403(make_relay, no_tracebacks, open_enrollment, authorization):
    relay = await make_relay(open_enrollment=open_enrollment)
    auth = {b"Authorization": authorization}
    assert await raw_request(relay.port, b"GET", b"/api/ws-endpoint", auth) == (403, {"error": "invalid token"})
    upgrade = {**auth, b"Upgrade": b"websocket", b"Connection": b"Upgrade", b"Sec-WebSocket-Version": b"13",
               b"Sec-WebSocket-Key": b"dGhlIHNhbXBsZSBub25jZQ==", b"Sec-WebSocket-Protocol": b"ra-proxy"}
    assert await raw_request(relay.port, b"GET", b"/ra-proxy", upgrade) == (403, {"error": "invalid token"})
    assert relay.store.state.devices() == []  # nothing was enrolled on the strength of it


@pytest.mark.parametrize("open_enrollment", [False, True])
@pytest.mark.parametrize("authorization", NOT_UTF8, ids=["ff-fe", "bearer-ff-fe", "surrogate"])
async def test_provisioning_refuses_a_password_that_is_not_utf8_with_a_401(
    make_relay, no_tracebacks, open_enrollment, authorization
):
    relay = await make_relay(open_enrollment=open_enrollment)
    status, _ = await raw_request(relay.port, b"GET", b"/v1/token?serial_id=CAM1", {b"Authorization": authorization})
    assert status == 401
    assert relay.store.state.devices() == []


@pytest.mark.parametrize("authorization", NOT_UTF8, ids=["ff-fe", "bearer-ff-fe", "surrogate"])
async def test_admin_api_refuses_an_authorization_that_is_not_utf8(relay, no_tracebacks, authorization):
    for method, target in ((b"GET", b"/api/devices"), (b"GET", b"/api/device/1"), (b"DELETE", b"/api/devices/1")):
        status, body = await raw_request(relay.port, method, target, {b"Authorization": authorization})
        assert status == 401 and "admin token" in body["error"], target


@pytest.mark.parametrize("body", [
    b"[" * 60_000,
    b'{"camid": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001,
    b'{"camid": ' + b"9" * 5000 + b"}",  # past Python's 4300-digit int-from-text limit
], ids=["arrays", "objects", "5000-digit camid"])
async def test_admin_api_refuses_json_it_cannot_read_with_a_400_on_body(relay, no_tracebacks, body):
    admin = {b"Authorization": b"Bearer " + ADMIN_TOKEN.encode(), b"Content-Type": b"application/json"}
    status, answer = await raw_request(relay.port, b"POST", b"/api/devices", admin, body)
    assert status == 400 and answer["field"] == "body"
    assert relay.store.state.devices() == []


@pytest.mark.parametrize("camid", [b"1" * 5000, b"9" * 4301, str(MAX_CAMID + 1).encode()],
                         ids=["5000 digits", "4301 digits", "2^63"])
async def test_admin_api_refuses_a_camid_past_64_bits_in_the_path(relay, no_tracebacks, camid):
    admin = {b"Authorization": b"Bearer " + ADMIN_TOKEN.encode()}
    for method, target in ((b"GET", b"/api/device/"), (b"DELETE", b"/api/devices/")):
        status, body = await raw_request(relay.port, method, target + camid, admin)
        assert status == 400 and body["field"] == "camid" and str(MAX_CAMID) in body["error"]


async def test_admin_api_refuses_a_camid_past_64_bits_in_the_body_and_takes_the_largest(relay, no_tracebacks):
    admin = {b"Authorization": b"Bearer " + ADMIN_TOKEN.encode(), b"Content-Type": b"application/json"}
    status, body = await raw_request(relay.port, b"POST", b"/api/devices", admin, b'{"camid": %d}' % (MAX_CAMID + 1))
    assert status == 400 and body["field"] == "camid"
    status, body = await raw_request(relay.port, b"POST", b"/api/devices", admin, b'{"camid": %d}' % MAX_CAMID)
    assert status == 201 and body["camid"] == MAX_CAMID
    status, body = await raw_request(relay.port, b"GET", b"/api/device/%d" % MAX_CAMID, admin)
    assert status == 404  # known, but no tunnel: the path's camid was read


async def test_a_device_that_leaves_during_the_websocket_handshake_is_one_quiet_line(relay, no_tracebacks, caplog):
    caplog.set_level(logging.INFO)
    device, _ = relay.register_device(1300)
    upgrade = (b"GET /ra-proxy HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               b"Sec-WebSocket-Protocol: ra-proxy\r\nAuthorization: %s\r\n\r\n" % device.access_token.encode())
    with socket.create_connection(("127.0.0.1", relay.port)) as sock:
        sock.sendall(upgrade)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
    await wait_until(lambda: "left during the WebSocket handshake" in caplog.text, what="the relay to notice")
    await asyncio.sleep(0.1)  # what aiohttp does with the handler's answer comes next
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
