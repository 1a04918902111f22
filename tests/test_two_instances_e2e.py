"""Two `camgate run` on one machine, each with its own data directory and ports.

Both work (a camera added to each gets its tunnel), and neither's agent enrolls in the
other's embedded relay; a port that is taken stops a start with one line.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from camgate.run_ports import EMBEDDED_RELAY_OFFSET
from tests.support.processes import bindable, camgate_env, camgate_process, free_port, http_json, wait_for_http

pytestmark = pytest.mark.e2e


def ports_for_two_default_instances() -> int:
    """P such that P..P+3 and the default relay ports P+800, P+802 are all free."""
    for _ in range(200):
        port = random.randrange(30000, 39000, 2)
        wanted = [port, port + 1, port + 2, port + 3, port + EMBEDDED_RELAY_OFFSET, port + 2 + EMBEDDED_RELAY_OFFSET]
        if all(bindable(p) for p in wanted):
            return port
    raise RuntimeError("no free block of ports")


class Instance:
    def __init__(self, port: int, data_dir: Path) -> None:
        self.base, self.relay_port, self.data_dir = f"http://127.0.0.1:{port}", port + EMBEDDED_RELAY_OFFSET, data_dir
        self.token = ""

    def login(self) -> None:
        wait_for_http(self.base + "/api/cameras/")
        wait_for_http(f"http://127.0.0.1:{self.relay_port}/api/devices")
        _, body = http_json("POST", self.base + "/api/auth-token/", {"username": "admin", "password": "admin"})
        self.token = body["token"]

    def relay_devices(self) -> list[dict]:
        admin = (self.data_dir / "relay-admin-token").read_text().strip()
        status, body = http_json("GET", f"http://127.0.0.1:{self.relay_port}/api/devices",
                                 headers={"Authorization": f"Bearer {admin}"})
        assert status == 200, body
        return body

    def add_camera(self, rtsp_port: int) -> int:
        status, camera = http_json("POST", self.base + "/api/add-camera/", {
            "ip": "127.0.0.1", "rtsp_port": rtsp_port, "http_port": 80, "rtsp_only": True, "is_active": True,
        }, token=self.token)
        assert status == 201, camera
        return camera["camera_id"]

    def wait_until_up(self, camera_id: int, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, camera = http_json("GET", f"{self.base}/api/camera/{camera_id}/", token=self.token)
            tunnel = camera.get("tunnel") or {}
            if tunnel.get("state") == "up" and tunnel.get("endpoints"):
                return camera
            time.sleep(0.2)
        raise AssertionError(f"camera {camera_id} of {self.base} never came up: {camera}")


def test_two_instances_each_tunnel_through_their_own_relay_only(tmp_path):
    port = ports_for_two_default_instances()
    first, second = Instance(port, tmp_path / "a"), Instance(port + 2, tmp_path / "b")
    camera = socket.create_server(("127.0.0.1", 0))  # a listening port is all a tunnel needs
    ranges = random.randrange(40000, 48000, 200)
    with camera, \
            camgate_process(["run", "--port", str(port)], camgate_env(
                first.data_dir, CAMGATE_SSH_PORT="0", CAMGATE_RELAY_PORT_RANGE=f"{ranges}-{ranges + 99}"),
                tmp_path / "a.log") as a, \
            camgate_process(["run", "--port", str(port + 2)], camgate_env(
                second.data_dir, CAMGATE_SSH_PORT="0", CAMGATE_RELAY_PORT_RANGE=f"{ranges + 100}-{ranges + 199}"),
                tmp_path / "b.log") as b:
        for instance in (first, second):
            instance.login()
        ids = [instance.add_camera(camera.getsockname()[1]) for instance in (first, second)]
        for instance, camera_id in zip((first, second), ids):
            instance.wait_until_up(camera_id)
        for instance in (first, second):
            uuid = (instance.data_dir / "gateway-uuid").read_text().strip().upper()
            serials = sorted(device["serial"] for device in instance.relay_devices())
            # The gateway's own tunnel and its camera, enrolled by serials naming its UUID; nothing else.
            assert len(serials) == 2 and all(uuid in serial for serial in serials), serials
        assert a.poll() is None and b.poll() is None
    for log in ("a.log", "b.log"):
        assert "Traceback" not in (tmp_path / log).read_text()


def test_a_taken_port_stops_the_start_with_one_line(tmp_path):
    relay_port = free_port()
    with socket.create_server(("127.0.0.1", relay_port)):
        result = subprocess.run(
            [sys.executable, "-m", "camgate.cli", "run", "--port", str(free_port())],
            env=camgate_env(tmp_path / "data", CAMGATE_EMBEDDED_RELAY_PORT=str(relay_port)),
            capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and f"port {relay_port}" in errors[0] and "embedded relay" in errors[0], result.stderr
    assert "Traceback" not in result.stderr and "started " not in result.stderr
