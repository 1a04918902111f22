"""The web front (camgate.front.server) on real loopback sockets, in front of a small
stand-in for gunicorn on a Unix socket that records what reaches it.

The front with the real gunicorn and Django behind it is tested in tests/web/test_served.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import replace

import pytest

from camgate.front.server import Front, FrontLimits, Listener

NOT_HUNG_S = 10.0  # a generous bound: only proves an answer came, not how fast


class App:
    """Reads one request (head, then Content-Length bytes), records it, answers."""

    def __init__(self, socket_path: str) -> None:
        self.path = socket_path
        self.requests: list[bytes] = []
        self.answer_size = 2
        self.hold = asyncio.Event()  # cleared: answers wait for it
        self.hold.set()
        self.answers_written = 0
        self.server = None

    async def start(self) -> "App":
        self.server = await asyncio.start_unix_server(self._serve, self.path)
        return self

    async def _serve(self, reader, writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        await self.hold.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % self.answer_size)
        writer.write(b"o" * self.answer_size)
        await writer.drain()
        self.answers_written += 1
        writer.close()


@pytest.fixture
async def app(tmp_path):
    app = await App(str(tmp_path / "app.sock")).start()
    yield app
    app.server.close()


async def start_front(app: App, **limits) -> tuple[Front, int, int]:
    front = Front(app.path, replace(FrontLimits(), **limits))
    main = await front.listen(Listener("127.0.0.1", 0))
    tunnel = await front.listen(Listener("127.0.0.1", 0, from_tunnel=True))
    return front, main.sockets[0].getsockname()[1], tunnel.sockets[0].getsockname()[1]


@pytest.fixture
async def front(app):
    front, main, tunnel = await start_front(app)
    yield front, main, tunnel
    await front.close(1)


async def exchange(port: int, data: bytes, read: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    if not read:
        return b""
    async with asyncio.timeout(NOT_HUNG_S):
        answer = await reader.read()
    writer.close()
    return answer


async def slow_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A slowloris: half a request head, and then nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: gw\r\n")
    await writer.drain()
    return reader, writer


async def test_hundreds_of_slow_clients_do_not_keep_a_normal_one_waiting(app, front):
    _, main, tunnel = front
    slow = [await slow_client(main) for _ in range(200)]
    slow += [await slow_client(tunnel) for _ in range(50)]
    for port in (main, tunnel):
        answer = await exchange(port, b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"oo")
    assert len(app.requests) == 2  # the slow ones never reached the app
    for _, writer in slow:
        writer.close()


async def test_the_app_gets_one_whole_request_naming_the_client(app, front):
    _, main, _ = front
    await exchange(main, b"POST /api/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhello")
    (request,) = app.requests
    first_line, request_line, *rest = request.split(b"\r\n")
    assert first_line.startswith(b"PROXY TCP4 127.0.0.1 127.0.0.1 ") and first_line.endswith(b" %d" % main)
    assert request_line == b"POST /api/x HTTP/1.1"
    assert rest == [b"Host: gw", b"Content-Length: 5", b"Connection: close", b"", b"hello"]


async def test_the_tunnel_listener_marks_requests_and_believes_no_forwarded_header(app, front):
    _, main, tunnel = front
    forged = b"GET / HTTP/1.1\r\nX-Forwarded-For: 198.51.100.1\r\nX-Camgate-Origin: lan\r\n\r\n"
    await exchange(tunnel, forged)
    await exchange(main, forged.replace(b"lan", b"tunnel"))
    from_tunnel, from_main = app.requests
    assert b"X-Camgate-Origin: tunnel\r\n" in from_tunnel and b"198.51.100.1" not in from_tunnel
    assert b"X-Camgate-Origin" not in from_main and b"X-Forwarded-For: 198.51.100.1\r\n" in from_main


async def test_a_chunked_body_reaches_the_app_with_its_length(app, front):
    _, main, _ = front
    await exchange(main, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n")
    (request,) = app.requests
    assert b"Transfer-Encoding" not in request
    assert request.endswith(b"Content-Length: 9\r\nConnection: close\r\n\r\nwikipedia")


async def test_expect_100_continue_is_answered_before_the_body(app, front):
    _, main, _ = front
    reader, writer = await asyncio.open_connection("127.0.0.1", main)
    writer.write(b"POST / HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    async with asyncio.timeout(NOT_HUNG_S):
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"body")
        assert (await reader.read()).startswith(b"HTTP/1.1 200 OK")
    assert b"Expect" not in app.requests[0] and app.requests[0].endswith(b"\r\n\r\nbody")


async def test_an_oversized_body_is_refused_before_it_is_read(app):
    front, main, _ = await start_front(app, max_body_bytes=1000)
    try:
        answer = await exchange(main, b"POST /api/add-camera/ HTTP/1.1\r\nContent-Length: 1001\r\n\r\n" + b"x" * 1001)
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"detail": "Request body is larger than 1000 bytes."}
        answer = await exchange(main, b"POST /login/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n" + b"x" * 1001)
        assert answer.startswith(b"HTTP/1.1 413 ") and answer.endswith(b"Request body is larger than 1000 bytes.")
        assert app.requests == []
    finally:
        await front.close(1)


async def test_a_head_too_slow_gets_408_and_a_silent_connection_is_closed(app):
    front, main, _ = await start_front(app, head_timeout=0.3)
    try:
        reader, writer = await slow_client(main)
        async with asyncio.timeout(NOT_HUNG_S):
            answer = await reader.read()
        assert answer.startswith(b"HTTP/1.1 408 ")
        reader, writer = await asyncio.open_connection("127.0.0.1", main)
        async with asyncio.timeout(NOT_HUNG_S):
            assert await reader.read() == b""
        assert front.counts["connections closed before a whole request head came"] == 2
    finally:
        await front.close(1)


async def test_a_body_that_stops_coming_gets_408(app):
    front, main, _ = await start_front(app, body_idle_timeout=0.3)
    try:
        answer = await exchange(main, b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nhalf")
        assert answer.startswith(b"HTTP/1.1 408 ") and app.requests == []
    finally:
        await front.close(1)


async def test_at_the_connection_cap_the_oldest_slow_client_gives_way(app):
    front, main, _ = await start_front(app, max_clients=5)
    try:
        slow = [await slow_client(main) for _ in range(5)]
        answer = await exchange(main, b"GET / HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK")
        oldest_reader, _ = slow[0]
        async with asyncio.timeout(NOT_HUNG_S):
            assert await oldest_reader.read() == b""  # dropped to make room
        assert front.counts["slow connections dropped to make room"] == 1
        assert front.clients <= 5
    finally:
        await front.close(1)


async def test_a_client_that_does_not_read_its_answer_does_not_hold_the_app(app):
    # More than the kernel holds between app and client (a 4 MiB send buffer at most,
    # the client's small receive buffer): the app is done only if the front holds the rest.
    app.answer_size = 6 * 1024 * 1024
    front, main, _ = await start_front(app, response_buffer=8 * 1024 * 1024)
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", main))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"GET /big HTTP/1.1\r\n\r\n")
        async with asyncio.timeout(NOT_HUNG_S):
            while app.answers_written == 0:
                await asyncio.sleep(0.01)
            received = await reader.read()
        assert received.endswith(b"o" * 1000) and len(received) > app.answer_size
    finally:
        await front.close(1)


async def test_an_answer_larger_than_the_front_holds_still_arrives_whole(app, front):
    app.answer_size = 3 * 1024 * 1024
    _, main, _ = front
    answer = await exchange(main, b"GET /big HTTP/1.1\r\n\r\n")
    assert answer.split(b"\r\n\r\n", 1)[1] == b"o" * app.answer_size


async def test_app_unreachable_or_silent_is_a_clear_5xx(app, tmp_path):
    front = Front(str(tmp_path / "nothing.sock"))
    port = (await front.listen(Listener("127.0.0.1", 0))).sockets[0].getsockname()[1]
    answer = await exchange(port, b"GET /api/cameras/ HTTP/1.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 502 ") and b'"detail": "The gateway web service is not answering' in answer
    await front.close(1)

    app.hold.clear()
    front, main, _ = await start_front(app, app_timeout=0.3)
    try:
        assert (await exchange(main, b"GET / HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 504 ")
    finally:
        app.hold.set()
        await front.close(1)


@pytest.mark.parametrize("data, status", [
    (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"400"),
    (b"NONSENSE\r\n\r\n", b"400"),
    (b"GET / HTTP/1.1\r\nX: " + b"y" * 40000 + b"\r\n\r\n", b"431"),
])
async def test_bad_requests_are_refused_by_the_front(app, front, data, status):
    _, main, _ = front
    assert (await exchange(main, data)).startswith(b"HTTP/1.1 " + status + b" ")
    assert app.requests == []


async def test_a_listener_of_its_own_capacity_lets_its_oldest_slow_client_go(app):
    # The tunnel's listener: the relay holds 256 connections per tunnel, so slow ones
    # must not pile up there, even while the front as a whole has room.
    front = Front(app.path)
    tunnel = (await front.listen(Listener("127.0.0.1", 0, from_tunnel=True, max_clients=3))).sockets[0].getsockname()[1]
    main = (await front.listen(Listener("127.0.0.1", 0))).sockets[0].getsockname()[1]
    try:
        slow_main = [await slow_client(main) for _ in range(5)]
        slow = [await slow_client(tunnel) for _ in range(3)]
        assert (await exchange(tunnel, b"GET / HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200 OK")
        async with asyncio.timeout(NOT_HUNG_S):
            assert await slow[0][0].read() == b""
        assert front.counts["slow connections dropped to make room"] == 1
        for reader, _ in slow_main:  # the other listener's clients were left alone
            assert not reader.at_eof()
    finally:
        await front.close(1)
