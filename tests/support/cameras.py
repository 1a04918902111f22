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
    def __init__(self, port: int, width: int = 320, height: int = 240) -> None:
        self.port, self.width, self.height = port, width, height
        self.process: subprocess.Popen | None = None

    @property
    def path(self) -> str:
        return "/stream"

    def start(self) -> "RtspCamera":
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, str(RTSP_CAMERA_SCRIPT), str(self.port), str(self.width), str(self.height)],
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


class _CameraPage(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(CAMERA_PAGE)))
        self.end_headers()
        self.wfile.write(CAMERA_PAGE)

    def log_message(self, *args):
        pass


class CameraWebServer:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _CameraPage)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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
