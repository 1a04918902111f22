"""Cameras that misbehave on purpose, and a door that counts who comes in: real TCP
servers on loopback for what GStreamer's RTSP server will not do.

- ``ScriptedRtspCamera(mode)``: ``unauthorized`` answers every request 401 (Basic);
  ``basic`` answers 404 to the right Basic credentials and 401 to anything else (so the
  reason a client reports tells whether its credentials got through); ``audio_only``
  describes a stream with no video; ``silent`` accepts and never answers.
- ``CountingProxy(port)``: forwards to a camera and counts connections, i.e. RTSP
  sessions over TCP, opened and closed.
"""

from __future__ import annotations

import base64
import socket
import socketserver
import threading

from tests.support.cameras import BackgroundServer

AUDIO_ONLY_SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=audio\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\na=control:track0\r\n"


def _read_request(stream) -> dict | None:
    lines = []
    while True:
        line = stream.readline(8192)
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            break
        lines.append(line.decode(errors="replace").strip())
    headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    return {"method": lines[0].split(" ")[0] if lines else "", **{k.strip().lower(): v.strip() for k, v in headers.items()}}


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class ScriptedRtspCamera(BackgroundServer):
    def __init__(self, mode: str, username: str = "", password: str = "") -> None:
        self.mode = mode
        self.expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.authorizations: list[str] = []  # every Authorization header received
        camera = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                try:
                    while (request := _read_request(self.rfile)) is not None:
                        if camera.mode == "silent":
                            continue
                        self.wfile.write(camera.answer(request))
                except OSError:
                    pass

        self._serve(Handler, _Server)

    def answer(self, request: dict) -> bytes:
        cseq = request.get("cseq", "0")
        if "authorization" in request:
            self.authorizations.append(request["authorization"])
        if self.mode == "unauthorized" or (self.mode == "basic" and request.get("authorization") != self.expected):
            return (f"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n"
                    'WWW-Authenticate: Basic realm="camera"\r\nContent-Length: 0\r\n\r\n').encode()
        if self.mode == "basic":
            return f"RTSP/1.0 404 Not Found\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n".encode()
        if request["method"] == "DESCRIBE":
            return (f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n"
                    f"Content-Length: {len(AUDIO_ONLY_SDP)}\r\n\r\n").encode() + AUDIO_ONLY_SDP
        if request["method"] == "SETUP":
            transport = request.get("transport", "RTP/AVP/TCP;unicast;interleaved=0-1")
            return f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nTransport: {transport}\r\nSession: 1\r\n\r\n".encode()
        return f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n".encode()


class CountingProxy(BackgroundServer):
    """A TCP proxy in front of a camera that counts connections, and streaming sessions:
    connections that asked for PLAY (the health probe's OPTIONS and DESCRIBE take none)."""

    def __init__(self, target_port: int) -> None:
        self.opened = 0
        self.closed = 0
        self.streaming = 0
        self._lock = threading.Lock()
        proxy = self

        def watch(data: bytes, seen: list) -> None:
            if not seen and (data.startswith(b"PLAY ") or b"\nPLAY " in data):
                seen.append(True)
                with proxy._lock:
                    proxy.streaming += 1

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                with proxy._lock:
                    proxy.opened += 1
                seen: list = []
                try:
                    with socket.create_connection(("127.0.0.1", target_port)) as upstream:
                        _pump_both_ways(self.request, upstream, lambda data: watch(data, seen))
                finally:
                    with proxy._lock:
                        proxy.closed += 1

        self._serve(Handler, _Server)


def _pump_both_ways(a: socket.socket, b: socket.socket, on_request=None) -> None:
    def pump(source, sink, watch=None):
        try:
            while data := source.recv(65536):
                if watch is not None:
                    watch(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    other = threading.Thread(target=pump, args=(b, a), daemon=True)
    other.start()
    pump(a, b, on_request)
    other.join()
