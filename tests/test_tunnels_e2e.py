"""camera -> gateway -> relay -> viewer on one machine, with real parts only.

`camgate run` on the embedded default (relay on loopback, web, agent), GStreamer's RTSP
server as the camera, ffprobe as the viewer, cameras added through the REST API.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from typing import Iterator

import pytest

from camgate.agent.control import send_command_to

from tests.conftest import make_token
from tests.support.browser import Browser
from tests.support.cameras import CAMERA_PAGE, CameraWebServer, RtspCamera, StreamingSource, ffprobe_stream, stream_bytes
from tests.support.processes import camgate_env, camgate_process, free_port, http_json, wait_for_http

pytestmark = pytest.mark.e2e


class Gateway:
    def __init__(self, base: str, token: str, relay_port: int, data_dir) -> None:
        self.base, self.token, self.relay_port, self.data_dir = base, token, relay_port, data_dir

    def api(self, method: str, path: str, body=None):
        return http_json(method, self.base + path, body, token=self.token)

    def relay_admin(self, method: str, path: str, body=None):
        admin = (self.data_dir / "relay-admin-token").read_text().strip()
        return http_json(method, f"http://127.0.0.1:{self.relay_port}{path}", body, headers={"Authorization": f"Bearer {admin}"})

    def mint_token(self, camid: int) -> str:
        status, body = self.relay_admin("POST", "/api/devices", {"camid": camid, "cmngrid": 1})
        assert status in (200, 201), body
        return body["access_token"]

    def agent_sync(self) -> dict:
        """Until the agent has completed a reconcile pass begun after this call."""
        return send_command_to(self.data_dir / "agent.sock", "sync", timeout=30)

    def wait_for_camera(self, camera_id: int, predicate, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        camera = None
        while time.monotonic() < deadline:
            status, camera = self.api("GET", f"/api/camera/{camera_id}/")
            if status == 200 and predicate(camera):
                return camera
            time.sleep(0.2)
        raise AssertionError(f"camera {camera_id} never reached the expected state: {camera}")


def endpoint(camera: dict, name: str) -> int:
    return next(e["proxy_port"] for e in camera["tunnel"]["endpoints"] if e["name"] == name)


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def is_up(camera: dict) -> bool:
    return bool(camera["tunnel"] and camera["tunnel"]["state"] == "up" and camera["tunnel"]["endpoints"])


@contextmanager
def running_gateway(tmp, relay_ports: range, run_args: tuple[str, ...] = (), **env: str) -> Iterator[Gateway]:
    """`camgate run` on loopback (its embedded relay giving forwards the ports of
    relay_ports, no SSH forward), signed in as the admin; it must outlive the tests.
    Its log is tmp/camgate.log."""
    port, relay_port = free_port(), free_port()
    env = camgate_env(
        tmp / "data",
        CAMGATE_EMBEDDED_RELAY_PORT=str(relay_port),
        CAMGATE_RELAY_PORT_RANGE=f"{relay_ports.start}-{relay_ports.stop - 1}",
        CAMGATE_SSH_PORT="0",
        **env,
    )
    with camgate_process(["run", "--port", str(port), *run_args], env, tmp / "camgate.log") as process:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + "/api/cameras/")
        wait_for_http(f"http://127.0.0.1:{relay_port}/api/devices")
        _, body = http_json("POST", base + "/api/auth-token/", {"username": "admin", "password": "admin"})
        yield Gateway(base, body["token"], relay_port, tmp / "data")
        assert process.poll() is None, "camgate run died during the tests"


def relay_ports(low: int, high: int) -> range:
    """100 ports at random between low and high, so gateways of concurrent test files differ."""
    start = random.randrange(low, high, 100)
    return range(start, start + 100)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gateway")
    with running_gateway(tmp, relay_ports(40000, 48000), ("--tunnel-port", str(free_port()))) as started:
        yield started


@pytest.fixture
def rtsp_camera():
    camera = RtspCamera(free_port(), 320, 240).start()
    yield camera
    camera.stop()


@pytest.fixture
def camera_web():
    server = CameraWebServer()
    yield server
    server.stop()


def add_camera(gateway: Gateway, rtsp_camera: RtspCamera, camera_web: CameraWebServer, camid: int, **extra) -> dict:
    status, camera = gateway.api("POST", "/api/add-camera/", {
        "ip": "127.0.0.1", "rtsp_port": rtsp_camera.port, "http_port": camera_web.port,
        "is_active": True, "access_token": gateway.mint_token(camid), **extra,
    })
    assert status == 201, camera
    return camera


def test_viewer_reads_the_camera_stream_and_web_page_through_the_relay(gateway, rtsp_camera, camera_web):
    added = add_camera(gateway, rtsp_camera, camera_web, camid=5001)
    camera = gateway.wait_for_camera(added["camera_id"], is_up)
    assert camera["pid"] is not None and camera["pid"] != os.getpid()

    stream = ffprobe_stream(f"rtsp://127.0.0.1:{endpoint(camera, 'rtsp')}{rtsp_camera.path}")
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", 320, 240)

    with urllib.request.urlopen(f"http://127.0.0.1:{endpoint(camera, 'http')}/", timeout=10) as response:
        assert response.read() == CAMERA_PAGE

    # The VMS's view: the relay's device lookup names the same public ports.
    status, device = gateway.relay_admin("GET", "/api/device/5001")
    assert status == 200
    assert {f["name"]: f["proxy_port"] for f in device["forwards"]} == {"http": endpoint(camera, "http"), "rtsp": endpoint(camera, "rtsp")}
    traffic = gateway.wait_for_camera(added["camera_id"], lambda c: c["tunnel"]["bytes_to_cloud"] > 1000)
    assert traffic["tunnel"]["bytes_from_cloud"] > 0


def test_rtsp_only_has_no_http_listener(gateway, rtsp_camera, camera_web):
    added = add_camera(gateway, rtsp_camera, camera_web, camid=5002, rtsp_only=True)
    camera = gateway.wait_for_camera(added["camera_id"], is_up)
    assert [e["name"] for e in camera["tunnel"]["endpoints"]] == ["rtsp"]
    status, device = gateway.relay_admin("GET", "/api/device/5002")
    assert [f["name"] for f in device["forwards"]] == ["rtsp"]
    assert ffprobe_stream(f"rtsp://127.0.0.1:{endpoint(camera, 'rtsp')}{rtsp_camera.path}")["codec_name"] == "mjpeg"


def test_edit_restarts_only_when_a_used_field_changes_and_inactive_stops(gateway, rtsp_camera, camera_web):
    added = add_camera(gateway, rtsp_camera, camera_web, camid=5003)
    camera_id = added["camera_id"]
    camera = gateway.wait_for_camera(camera_id, is_up)
    rtsp_port = endpoint(camera, "rtsp")
    viewer = socket.create_connection(("127.0.0.1", rtsp_port), timeout=5)
    gateway.wait_for_camera(camera_id, lambda c: c["tunnel"]["open_connections"] == 1)

    # serial is not used by the tunnel: the viewer's connection survives.
    assert gateway.api("POST", f"/api/edit-camera/{camera_id}/", {"serial": "NEWSERIAL"})[0] == 200
    assert gateway.agent_sync()["ok"]
    assert gateway.api("GET", f"/api/camera/{camera_id}/")[1]["tunnel"]["open_connections"] == 1
    viewer.sendall(b"OPTIONS rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\n\r\n")
    assert viewer.recv(100).startswith(b"RTSP/1.0 200")

    # rtsp_only is used: the tunnel restarts (the viewer is closed) and http goes away.
    assert gateway.api("POST", f"/api/edit-camera/{camera_id}/", {"rtsp_only": True})[0] == 200
    viewer.settimeout(10)
    assert read_until_closed(viewer).endswith(b"\r\n")  # the rest of the OPTIONS answer, then EOF
    camera = gateway.wait_for_camera(camera_id, lambda c: is_up(c) and len(c["tunnel"]["endpoints"]) == 1)
    assert endpoint(camera, "rtsp") == rtsp_port  # same public port across the restart

    assert gateway.api("POST", f"/api/edit-camera/{camera_id}/", {"is_active": False})[1]["enabled"] is False
    camera = gateway.wait_for_camera(camera_id, lambda c: c["tunnel"]["state"] == "stopped")
    assert camera["pid"] is None
    assert gateway.relay_admin("GET", "/api/device/5003")[0] == 404

    assert gateway.api("DELETE", f"/api/cameras/{camera_id}/")[0] == 204


def test_camera_down_closes_viewers_and_tunnel_stays_up(gateway, camera_web):
    rtsp_port = free_port()
    camera_process = RtspCamera(rtsp_port).start()
    added = add_camera(gateway, camera_process, camera_web, camid=5004)
    camera = gateway.wait_for_camera(added["camera_id"], is_up)
    url = f"rtsp://127.0.0.1:{endpoint(camera, 'rtsp')}/stream"
    assert ffprobe_stream(url)["codec_name"] == "mjpeg"

    camera_process.stop()
    viewer = socket.create_connection(("127.0.0.1", endpoint(camera, "rtsp")), timeout=10)
    assert viewer.recv(100) == b""  # closed cleanly: the camera refused, the relay got C
    viewer.close()
    with pytest.raises(RuntimeError):
        ffprobe_stream(url, timeout=20)
    assert gateway.api("GET", f"/api/camera/{added['camera_id']}/")[1]["tunnel"]["state"] == "up"

    RtspCamera(rtsp_port).start()
    try:
        assert ffprobe_stream(url)["codec_name"] == "mjpeg"
    finally:
        subprocess.run(["pkill", "-f", f"rtsp_camera.py {rtsp_port} "], check=False)


def test_relay_killed_and_restarted_tunnels_come_back_on_the_same_ports(gateway, rtsp_camera, camera_web):
    added = add_camera(gateway, rtsp_camera, camera_web, camid=5005)
    before = gateway.wait_for_camera(added["camera_id"], is_up)
    pids = subprocess.run(["pgrep", "-f", f"camgate.cli relay --host 127.0.0.1 --port {gateway.relay_port}"],
                          capture_output=True, text=True).stdout.split()
    assert len(pids) == 1
    os.kill(int(pids[0]), signal.SIGKILL)  # the supervisor starts it again
    gateway.wait_for_camera(added["camera_id"], lambda c: c["tunnel"]["state"] != "up", timeout=20)
    after = gateway.wait_for_camera(added["camera_id"], is_up, timeout=40)
    assert after["tunnel"]["endpoints"] == before["tunnel"]["endpoints"]
    assert ffprobe_stream(f"rtsp://127.0.0.1:{endpoint(after, 'rtsp')}{rtsp_camera.path}")["width"] == 320


def test_invalid_token_is_reported_and_not_hammered(gateway, rtsp_camera, camera_web):
    gateway.mint_token(5006)  # the relay knows camid 5006 by another token
    forged = make_token(5006, uplink=f"127.0.0.1:{gateway.relay_port}")
    status, added = gateway.api("POST", "/api/add-camera/", {"ip": "127.0.0.1", "rtsp_port": rtsp_camera.port, "access_token": forged})
    assert status == 201
    camera = gateway.wait_for_camera(added["camera_id"], lambda c: c["tunnel"] and c["tunnel"]["state"] == "failed")
    assert camera["tunnel"]["reason"] == "invalid token" and camera["pid"] is None
    assert json.dumps(camera["tunnel"]).count(forged) == 0


def test_new_user_adds_a_camera_without_token_and_reaches_it_at_once(gateway, rtsp_camera, camera_web):
    """The embedded relay enrolls a camera that has no VMS token (by its local id)."""
    status, added = gateway.api("POST", "/api/add-camera/", {"ip": "127.0.0.1", "rtsp_port": rtsp_camera.port, "http_port": camera_web.port})
    assert status == 201 and added["access_token"] == ""
    camera = gateway.wait_for_camera(added["camera_id"], is_up)
    assert ffprobe_stream(f"rtsp://127.0.0.1:{endpoint(camera, 'rtsp')}{rtsp_camera.path}")["height"] == 240
    detail = gateway.api("GET", f"/api/camera/{added['camera_id']}/")[1]
    assert detail["access_token"] == "" and detail["local_token"]  # the provisioned token


def gateway_web_port(gateway: Gateway) -> int:
    """The relay's public port for the gateway's own web forward: the internet's way in."""
    status, devices = gateway.relay_admin("GET", "/api/devices")
    enrolled = [d for d in devices if d["online"] and d["camid"] >= 1_000_000_000]
    lookups = [gateway.relay_admin("GET", f"/api/device/{d['camid']}")[1] for d in enrolled]
    web = [f for lookup in lookups for f in lookup["forwards"] if f["name"] == "web"]
    assert len(web) == 1
    return web[0]["proxy_port"]


def test_gateway_tunnel_is_up_and_restart_restarts_it(gateway):
    status, body = gateway.api("POST", "/api/restart/")
    assert (status, body) == (200, {"message": "Server restarted successfully"})
    # Through the gateway's own tunnel, its web server answers (the web forward).
    web_port = gateway_web_port(gateway)
    status, body = http_json("GET", f"http://127.0.0.1:{web_port}/api/cameras/")
    assert (status, body) == (401, {"detail": "Authentication credentials were not provided."})
    status, cameras = http_json("GET", f"http://127.0.0.1:{web_port}/api/cameras/", token=gateway.token)
    assert status == 200 and isinstance(cameras, list)


def test_through_the_gateway_tunnel_the_sign_in_throttle_holds_and_the_lan_admin_keeps_access(gateway):
    browser = Browser(f"http://127.0.0.1:{gateway_web_port(gateway)}")
    # The agent delivers every internet user from loopback, a trusted proxy address: a
    # rotating X-Forwarded-For used to buy a fresh count of guesses each time.
    for attempt in range(5):
        form = {"csrfmiddlewaretoken": browser.csrf("/login/"), "username": "admin", "password": f"guess{attempt}"}
        status, _, html = browser.request("/login/", form, headers={"X-Forwarded-For": f"198.51.100.{attempt}"})
    assert status == 429 and "Too many failed sign-in attempts" in html
    # The API is the same door, with the same count.
    status, body = http_json("POST", browser.base + "/api/auth-token/", {"username": "admin", "password": "admin"},
                             headers={"X-Forwarded-For": "198.51.100.77"})
    assert status == 429 and "Too many failed sign-in attempts" in body["detail"]
    # Locked behind the tunnel only: the admin on the LAN still gets in.
    status, body = http_json("POST", gateway.base + "/api/auth-token/", {"username": "admin", "password": "admin"})
    assert (status, body) == (200, {"token": gateway.token})


def test_slow_clients_through_the_gateway_tunnel_stop_nobody(gateway):
    web_port = gateway_web_port(gateway)
    held = []
    try:
        # 8 used to stop gunicorn. More than the relay's 256 connections per tunnel: the
        # web front keeps at most 128 on the tunnel's port, so the relay has room.
        for _ in range(300):
            client = socket.create_connection(("127.0.0.1", web_port), timeout=15)
            client.sendall(b"GET /api/cameras/ HTTP/1.1\r\nHost: gw\r\n")
            held.append(client)
        # The relay refuses viewers past 256 until the front's evictions have reached it
        # as closes; once the flood has settled, a normal client is served.
        deadline = time.monotonic() + 15
        while True:
            try:
                status, cameras = http_json("GET", f"http://127.0.0.1:{web_port}/api/cameras/", token=gateway.token)
                break
            except OSError:
                assert time.monotonic() < deadline, "a normal client was never served"
                time.sleep(0.1)
        assert status == 200 and isinstance(cameras, list)
    finally:
        for client in held:
            client.close()


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def pid_of(pattern: str) -> int:
    pids = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    assert len(pids) == 1, (pattern, pids)
    return int(pids[0])


def test_a_viewer_that_stops_reading_stalls_nobody_and_memory_stays_bounded(gateway):
    size = 40 * 1024 * 1024
    source = StreamingSource(size=size, rate=20e6)
    try:
        status, added = gateway.api("POST", "/api/add-camera/", {"ip": "127.0.0.1", "rtsp_port": source.port, "rtsp_only": True, "access_token": gateway.mint_token(5010)})
        camera = gateway.wait_for_camera(added["camera_id"], is_up)
        port = endpoint(camera, "rtsp")
        relay_pid = pid_of(f"camgate.cli relay --host 127.0.0.1 --port {gateway.relay_port}")
        agent_pid = camera["pid"]
        before = {"relay": rss_kib(relay_pid), "agent": rss_kib(agent_pid)}

        stalled = socket.create_connection(("127.0.0.1", port), timeout=10)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read
        time.sleep(0.5)
        reader = socket.create_connection(("127.0.0.1", port), timeout=10)
        digest, received, peak = hashlib.sha256(), 0, dict(before)
        started = time.monotonic()
        while received < size:
            chunk = reader.recv(1 << 16)
            assert chunk, f"reader closed after {received} of {size} bytes"
            digest.update(chunk)
            received += len(chunk)
            if received % (4 << 20) < len(chunk):
                peak = {name: max(peak[name], rss_kib(pid)) for name, pid in (("relay", relay_pid), ("agent", agent_pid))}
        elapsed = time.monotonic() - started
        expected = hashlib.sha256(b"".join(stream_bytes(source.seed, size))).hexdigest()
        assert digest.hexdigest() == expected
        # A reader held up by the stalled one would stop getting bytes, and its recv would
        # time out (10 s) above; how fast it went is a benchmark's business, not a test's.
        growth = {name: peak[name] - before[name] for name in before}
        print(f"\nRSS growth (KiB) while one viewer stalls and one reads {size} bytes in {elapsed:.1f} s: {growth}")
        assert all(kib < 32 * 1024 for kib in growth.values()), growth
        stalled.close()
        reader.close()
        gateway.api("DELETE", f"/api/cameras/{added['camera_id']}/")
    finally:
        source.stop()


def test_agent_killed_is_restarted_and_brings_every_tunnel_back(gateway, rtsp_camera, camera_web):
    added = add_camera(gateway, rtsp_camera, camera_web, camid=5020)
    before = gateway.wait_for_camera(added["camera_id"], is_up)
    os.kill(before["pid"], signal.SIGKILL)  # the supervisor starts a new agent
    after = gateway.wait_for_camera(added["camera_id"], lambda c: is_up(c) and c["pid"] not in (None, before["pid"]), timeout=40)
    assert after["tunnel"]["endpoints"] == before["tunnel"]["endpoints"]
    assert ffprobe_stream(f"rtsp://127.0.0.1:{endpoint(after, 'rtsp')}{rtsp_camera.path}")["codec_name"] == "mjpeg"


def cloud_call(gateway: Gateway, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, bytes]:
    """One request with exactly these bytes and headers, as the reference's cloud (PHP's
    curl) sends it; the raw answer back, unparsed."""
    import http.client

    connection = http.client.HTTPConnection(gateway.base.removeprefix("http://"), timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_camera_added_as_the_reference_cloud_adds_it_is_reachable_through_the_relay(gateway, camera_web):
    json_headers = {"Content-Type": "application/json", "Accept": "*/*"}
    # 1. The token, taken from the raw answer by splitting on the exact text {"token":" .
    status, raw = cloud_call(gateway, "POST", "/api/auth-token/", b'{"username":"admin","password":"admin"}', json_headers)
    assert status == 200
    token = raw.decode().split('{"token":"')[1].split('"')[0]
    cloud_headers = {**json_headers, "Authorization": f"Token {token}"}

    # 2. The add, as the cloud's form builds it: is_active false, pid null, the port as text.
    access_token = gateway.mint_token(15446)
    body = ('{"ip":"127.0.0.1","http_port":"%d","rtsp_port":"554","is_active":false,"pid":null,'
            '"access_token":"%s","rtsp_only":"false","serial":"","mac":""}' % (camera_web.port, access_token))
    status, raw = cloud_call(gateway, "POST", "/api/add-camera/", body.encode(), cloud_headers)
    assert status == 201, raw
    added = json.loads(raw)
    assert (added["http_port"], added["is_active"], added["enabled"]) == (camera_web.port, False, True)

    # Its tunnel comes up although the add said is_active false; is_active then reads true.
    camera = gateway.wait_for_camera(added["camera_id"], is_up, timeout=10)
    assert camera["is_active"] is True and camera["pid"] is not None

    # 3. The cloud's lookup on the relay: the forward whose protocol is "http", and its proxy_url.
    status, device = gateway.relay_admin("GET", "/api/device/15446")
    assert status == 200, device
    http_forward = next(f for f in device["forwards"] if f["protocol"] == "http")
    with urllib.request.urlopen(http_forward["proxy_url"], timeout=10) as response:
        assert response.read() == CAMERA_PAGE

    # 4. Delete by camid, then restart with a JSON content type and no body.
    status, raw = cloud_call(gateway, "DELETE", "/api/cameras/15446/", None, cloud_headers)
    assert status == 204, raw
    assert gateway.api("GET", f"/api/camera/{added['camera_id']}/")[0] == 404
    status, raw = cloud_call(gateway, "POST", "/api/restart/", None, cloud_headers)
    assert (status, json.loads(raw)) == (200, {"message": "Server restarted successfully"})
