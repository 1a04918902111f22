"""Reading a device that is not a working ONVIF camera: real HTTP servers on loopback
that are something else, answer too much, or never answer; each a clear OnvifError."""

from __future__ import annotations

import asyncio
import gc
import http.server
import logging
import socket
import threading
from contextlib import contextmanager

import pytest

from camgate.onvif.device import NOT_ONVIF, UNREACHABLE, OnvifError, read_device
from camgate.onvif.onvif_client import MAX_RESPONSE_BYTES

SECRET = "s3cret-Pa55"


@contextmanager
def http_server(handler_class):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass


class NotOnvif(Quiet):
    """A web server with no ONVIF service: a page for GET, 404 for the SOAP POST."""

    def do_POST(self):
        self.send_error(404)


class Endless(Quiet):
    """Answers with XML that never ends, chunked (no length up front): a reader without
    a bound reads until its time is up, and holds all of it."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/soap+xml")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"<x>" + b"A" * 65_536 + b"</x>"
        try:
            while True:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            self.close_connection = True  # the client stopped reading: what it is meant to do


class Announced(Quiet):
    """Says up front that it will send more than a camera ever does."""

    def do_POST(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/soap+xml")
        self.send_header("Content-Length", str(50 * MAX_RESPONSE_BYTES))
        self.end_headers()


def read(port: int, timeout: float = 10.0) -> OnvifError:
    with pytest.raises(OnvifError) as failure:
        asyncio.run(read_device("127.0.0.1", port, "admin", SECRET, timeout=timeout))
    assert SECRET not in failure.value.reason
    return failure.value


def test_a_web_server_that_is_not_onvif():
    with http_server(NotOnvif) as port:
        failure = read(port)
    assert (failure.code, failure.reason) == (NOT_ONVIF, f"ONVIF port {port} answers, but not as an ONVIF device")


@pytest.mark.parametrize("handler", [Endless, Announced])
def test_an_answer_too_large_is_cut_off(handler):
    with http_server(handler) as port:
        failure = read(port)
    assert (failure.code, failure.reason) == (NOT_ONVIF, f"the device's answer is over 1024 KiB (ONVIF port {port})")


def test_a_device_that_takes_the_connection_and_never_answers():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        failure = read(listener.getsockname()[1], timeout=0.5)
    assert (failure.code, failure.reason) == (UNREACHABLE, "no complete answer within 0.5 s")


def test_an_address_outside_the_probe_networks_is_not_contacted(monkeypatch):
    monkeypatch.setenv("CAMGATE_PROBE_NETWORKS", "192.168.1.0/24")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        failure = read(listener.getsockname()[1])
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody came
    assert failure.code == UNREACHABLE and "outside CAMGATE_PROBE_NETWORKS" in failure.reason


def test_a_read_cut_short_while_the_client_sets_up_leaves_no_session_open(monkeypatch, caplog):
    # The client makes a service's HTTP session, then loads its WSDL (slow the first time
    # in a busy process): a timeout there used to leave that session to the garbage
    # collector ("Unclosed client session").
    from camgate.onvif.onvif_client import onvif_camera_class

    onvif_camera_class()
    import onvif.client

    async def slow_wsdl(url):
        await asyncio.sleep(5)

    monkeypatch.setattr(onvif.client, "_cached_document", slow_wsdl)
    caplog.set_level(logging.ERROR, logger="asyncio")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        code = read(listener.getsockname()[1], timeout=0.2).code  # and the error (its frames) let go
    gc.collect()
    assert code == UNREACHABLE
    assert "Unclosed" not in caplog.text
