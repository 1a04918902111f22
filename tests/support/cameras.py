"""Real cameras for end-to-end tests: GStreamer's RTSP server and a small web server."""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has the GStreamer bindings
RTSP_CAMERA_SCRIPT = Path(__file__).with_name("rtsp_camera.py")
CAMERA_PAGE = b"<html><title>camera web ui</title>test camera</html>"


class RtspCamera:
    """GStreamer's RTSP server: MJPEG (or H.264) at ``path``, behind a Digest (or Basic)
    login when given a username."""

    def __init__(self, port: int, width: int = 320, height: int = 240, *, path: str = "/stream",
                 codec: str = "mjpeg", username: str = "", password: str = "", basic: bool = False) -> None:
        self.port, self.width, self.height = port, width, height
        self.path, self.codec, self.username, self.password, self.basic = path, codec, username, password, basic
        self.process: subprocess.Popen | None = None

    def start(self) -> "RtspCamera":
        login = ["--user", self.username, "--password", self.password] if self.username else []
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, str(RTSP_CAMERA_SCRIPT), str(self.port), str(self.width), str(self.height),
             "--mount", self.path, "--codec", self.codec, *login, *(["--basic"] if self.basic else [])],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.stop()
            raise RuntimeError(f"RTSP camera did not start: {line!r}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self.process and self.process.stdout:
            self.process.stdout.close()


class _CameraPage(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(CAMERA_PAGE)))
        self.end_headers()
        self.wfile.write(CAMERA_PAGE)

    def log_message(self, *args):
        pass


class BackgroundServer:
    """A threading server on a free loopback port, until ``stop``."""

    def _serve(self, handler, server_class=ThreadingHTTPServer) -> None:
        self.server = server_class(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class CameraWebServer(BackgroundServer):
    def __init__(self) -> None:
        self._serve(_CameraPage)


def ffprobe_stream(url: str, timeout: float = 20.0) -> dict:
    """What a real RTSP client sees: codec and size of the first video stream."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0",
         "-show_entries", "stream=codec_name,width,height", "-of", "json", url],
        capture_output=True, text=True, timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ffprobe failed: {result.stderr.strip()}")
    return json.loads(result.stdout)["streams"][0]


def stream_bytes(seed: int, size: int, chunk: int = 64 * 1024):
    """Deterministic bytes a test source sends, so a viewer can check what it got."""
    import random

    generator = random.Random(seed)
    sent = 0
    while sent < size:
        piece = generator.randbytes(min(chunk, size - sent))
        sent += len(piece)
        yield piece


class StreamingSource:
    """A camera port that sends each connection ``size`` deterministic bytes, paced to
    about ``rate`` bytes per second (a camera's stream, not a disk dump)."""

    def __init__(self, size: int, rate: float = 20e6, seed: int = 7) -> None:
        import socketserver
        import time

        source = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                started = time.monotonic()
                sent = 0
                try:
                    for piece in stream_bytes(source.seed, source.size):
                        self.request.sendall(piece)
                        sent += len(piece)
                        ahead = sent / source.rate - (time.monotonic() - started)
                        if ahead > 0:
                            time.sleep(ahead)
                except OSError:
                    pass  # the viewer's side went away

        self.size, self.rate, self.seed = size, rate, seed
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
