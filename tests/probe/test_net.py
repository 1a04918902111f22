"""The probe over real sockets on loopback, against peers that misbehave: nothing
listening, a listener that never answers, garbage, floods and loops. Each must end in
a health state with a reason, within the step timeout, having read a bounded amount."""

from __future__ import annotations

import asyncio
import socket

import pytest

from camgate.probe.net import ProbeTarget, parse_networks, probe_camera, probe_rtsp
from camgate.probe.result import HealthState
from tests.support.processes import free_port

STEP = 0.5  # the probe's step timeout in these tests (5 s in production)
FLOOD = 64 * 1024 * 1024
SDP = b"v=0\r\nm=video 0 RTP/AVP 26\r\na=x-dimensions:320,240\r\n"


class FakeCamera:
    """A loopback TCP server whose every connection runs ``behave(reader, writer)``."""

    def __init__(self, behave) -> None:
        self.behave = behave
        self.bytes_sent = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> "FakeCamera":
        async def on_connection(reader, writer):
            try:
                await self.behave(self, reader, writer)
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def read_request(self, reader) -> bytes:
        request = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(request)
        return request

    async def send(self, writer, data: bytes) -> None:
        writer.write(data)
        self.bytes_sent += len(data)
        await writer.drain()

    def target(self, **extra) -> ProbeTarget:
        return ProbeTarget("127.0.0.1", self.port, free_port(), rtsp_only=True, **extra)


def cseq(request: bytes) -> bytes:
    return next(line for line in request.split(b"\r\n") if line.startswith(b"CSeq")).split(b": ")[1]


async def well_behaved(camera, reader, writer):
    while True:
        request = await camera.read_request(reader)
        body = SDP if request.startswith(b"DESCRIBE") else b""
        await camera.send(writer, b"RTSP/1.0 200 OK\r\nCSeq: " + cseq(request) +
                          b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


async def test_a_well_behaved_camera_is_ok():
    async with FakeCamera(well_behaved) as camera:
        result = await probe_rtsp(camera.target(rtsp_path="/live"), STEP)
    assert (result.state, result.video.codec, result.video.width, result.video.height) == (HealthState.OK, "MJPEG", 320, 240)
    assert result.latency_ms is not None and result.latency_ms >= 0
    assert [r.split(b" ")[0] for r in camera.requests] == [b"OPTIONS", b"DESCRIBE"]
    assert camera.requests[1].startswith(b"DESCRIBE rtsp://127.0.0.1:%d/live RTSP/1.0" % camera.port)


async def test_nothing_listening_is_unreachable_refused():
    port = free_port()
    result = await probe_rtsp(ProbeTarget("127.0.0.1", port, port), STEP)
    assert (result.state, result.reason) == (HealthState.UNREACHABLE, f"connection refused (RTSP port {port})")


async def test_a_name_that_does_not_resolve_is_unreachable(monkeypatch):
    # The system's resolver is not asked: the test sends no query off this machine.
    real = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        if host == "no-such-camera.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    result = await probe_rtsp(ProbeTarget("no-such-camera.invalid", 554, 80), STEP)
    assert (result.state, result.reason) == (HealthState.UNREACHABLE, "name not resolved: no-such-camera.invalid")


async def test_addresses_outside_the_allowed_networks_are_never_connected_to():
    async with FakeCamera(well_behaved) as camera:
        networks = parse_networks("10.0.0.0/8, ::1")
        result = await probe_camera(ProbeTarget("127.0.0.1", camera.port, camera.port), STEP, networks)
        assert (result.state, result.reason) == (HealthState.UNKNOWN, "not probed: 127.0.0.1 is outside CAMGATE_PROBE_NETWORKS")
        assert camera.requests == []
        assert (await probe_rtsp(camera.target(), STEP, parse_networks("127.0.0.0/8"))).state is HealthState.OK


async def never_answers(camera, reader, writer):
    await asyncio.sleep(3600)


async def trickles(camera, reader, writer):
    await camera.read_request(reader)
    await camera.send(writer, b"RTSP/1.0 200 OK\r\n")
    while True:  # a header line, one byte at a time, for ever
        await camera.send(writer, b"x")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("behave, method", [(never_answers, "OPTIONS"), (trickles, "OPTIONS")])
async def test_a_camera_that_takes_the_connection_and_never_answers_is_unreachable(behave, method):
    async with FakeCamera(behave) as camera:
        result = await probe_rtsp(camera.target(), STEP)
    # For the trickle: one deadline for the whole answer, not one per byte received
    # (that would end, minutes later, in an "answer line too long" error instead).
    assert (result.state, result.reason) == (
        HealthState.UNREACHABLE, f"no answer in {STEP:g} s ({method} on RTSP port {camera.port})")


async def garbage(camera, reader, writer):
    await camera.send(writer, b"\x00\xffHELLO this is not RTSP at all\r\n\r\n")
    await asyncio.sleep(3600)


async def huge_sdp(camera, reader, writer):
    request = await camera.read_request(reader)
    await camera.send(writer, b"RTSP/1.0 200 OK\r\nCSeq: " + cseq(request) + b"\r\n\r\n")
    await camera.read_request(reader)
    await camera.send(writer, b"RTSP/1.0 200 OK\r\nContent-Length: 10485760\r\n\r\n")
    for _ in range(FLOOD // 65536):  # as fast as the probe takes it
        await camera.send(writer, b"a=x-junk:" + b"z" * 65525 + b"\r\n")


async def endless_header(camera, reader, writer):
    await camera.read_request(reader)
    await camera.send(writer, b"RTSP/1.0 200 OK\r\nX-Endless: ")
    for _ in range(FLOOD // 65536):
        await camera.send(writer, b"a" * 65536)


async def redirect_loop(camera, reader, writer):
    while True:
        request = await camera.read_request(reader)
        await camera.send(writer, b"RTSP/1.0 302 Moved\r\nCSeq: " + cseq(request) +
                          b"\r\nLocation: rtsp://127.0.0.1:%d/again\r\n\r\n" % camera.port)


async def closes_at_once(camera, reader, writer):
    await camera.read_request(reader)


@pytest.mark.parametrize("behave, reason", [
    (garbage, "not an RTSP answer"),
    (huge_sdp, "an answer body of 10485760 bytes, more than the 65536"),
    (endless_header, "an answer line longer than 8192 bytes"),
    (redirect_loop, "more than 3 redirects"),
    (closes_at_once, "the camera closed the connection without answering OPTIONS"),
])
async def test_hostile_answers_are_errors_with_a_reason_and_bounded_reads(behave, reason):
    async with FakeCamera(behave) as camera:
        result = await probe_rtsp(camera.target(), STEP)
    assert result.state is HealthState.ERROR and reason in result.reason
    # The probe stopped reading long before the flood ended (what it did not read is
    # at most what the kernel's socket buffers hold, a few MiB on loopback).
    assert camera.bytes_sent < FLOOD / 2


async def test_web_port_down_makes_a_working_stream_unreachable_with_the_reason():
    async with FakeCamera(well_behaved) as camera:
        http_port = free_port()
        result = await probe_camera(ProbeTarget("127.0.0.1", camera.port, http_port), STEP)
    assert result.state is HealthState.UNREACHABLE
    assert result.reason == f"connection refused (HTTP port {http_port}); the RTSP stream works"
    assert result.video.codec == "MJPEG"  # what is known about the stream is kept


async def test_any_http_status_means_the_web_port_is_reachable():
    async def forbidden(camera, reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        await camera.send(writer, b"HTTP/1.0 403 Forbidden\r\n\r\n")

    async with FakeCamera(well_behaved) as rtsp, FakeCamera(forbidden) as web:
        result = await probe_camera(ProbeTarget("127.0.0.1", rtsp.port, web.port), STEP)
    assert (result.state, result.reason) == (HealthState.OK, "")


async def test_an_https_web_port_is_reachable():
    async def tls_alert(camera, reader, writer):
        await reader.read(100)
        await camera.send(writer, b"\x15\x03\x01\x00\x02\x02\x46")  # TLS alert: protocol_version
        await asyncio.sleep(3600)  # and keeps the connection open

    async with FakeCamera(well_behaved) as rtsp, FakeCamera(tls_alert) as web:
        result = await probe_camera(ProbeTarget("127.0.0.1", rtsp.port, web.port), STEP)
    assert (result.state, result.reason) == (HealthState.OK, "")


async def test_a_web_port_answering_garbage_is_an_error():
    async with FakeCamera(well_behaved) as rtsp, FakeCamera(garbage) as web:
        result = await probe_camera(ProbeTarget("127.0.0.1", rtsp.port, web.port), STEP)
    assert result.state is HealthState.ERROR and f"HTTP port {web.port} answers, but not with HTTP" in result.reason


async def test_credentials_with_a_line_break_are_never_sent():
    async def asks_login(camera, reader, writer):
        request = await camera.read_request(reader)
        await camera.send(writer, b"RTSP/1.0 401 Unauthorized\r\nCSeq: " + cseq(request) +
                          b'\r\nWWW-Authenticate: Digest realm="r", nonce="n"\r\n\r\n')
        await camera.read_request(reader)

    async with FakeCamera(asks_login) as camera:
        result = await probe_rtsp(camera.target(username="admin\r\nX-Injected: 1", password="p"), STEP)
    assert result.state is HealthState.ERROR and "line break" in result.reason
    assert len(camera.requests) == 1
