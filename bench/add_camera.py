"""Benchmark 3: time from POST /api/add-camera/ to the first RTSP OPTIONS answered by a
real GStreamer camera through `camgate run`'s embedded relay (median of several adds)."""

from __future__ import annotations

import socket
import time

from bench.common import Context, free_port_range, note
from bench.report import Row, fmt_seconds, median
from tests.support.cameras import CameraWebServer, RtspCamera
from tests.support.processes import camgate_env, camgate_process, free_port, http_json, wait_for_http

ADDS = {"full": 5, "quick": 3, "smoke": 1}  # by ctx.size


def run(ctx: Context) -> list[Row]:
    return bench_add_camera(ADDS[ctx.size], ctx)


def rtsp_options(port: int, path: str) -> bool:
    """One RTSP OPTIONS through the relay's public port; True on a 200 answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(f"OPTIONS rtsp://127.0.0.1:{port}{path} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        return answer.startswith(b"RTSP/1.0 200")
    except OSError:
        return False


def bench_add_camera(adds: int, ctx: Context) -> list[Row]:
    tmp = ctx.tmp
    port, relay_port = free_port(), free_port()
    low, high = free_port_range(4 * adds + 10)
    data = tmp / "run-data"
    env = camgate_env(
        data, CAMGATE_EMBEDDED_RELAY_PORT=str(relay_port), CAMGATE_RELAY_PORT_RANGE=f"{low}-{high}", CAMGATE_SSH_PORT="0",
    )
    base, relay = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{relay_port}"
    to_api, to_up, to_view = [], [], []
    rtsp_camera = RtspCamera(free_port()).start()
    web_page = CameraWebServer()
    try:
        with camgate_process(["run", "--port", str(port)], env, tmp / "camgate-run.log") as process:
            wait_for_http(base + "/api/cameras/", 60)
            wait_for_http(relay + "/api/devices", 60)
            _, body = http_json("POST", base + "/api/auth-token/", {"username": "admin", "password": "admin"})
            token = body["token"]
            admin = {"Authorization": f"Bearer {(data / 'relay-admin-token').read_text().strip()}"}
            for i in range(adds):
                camid = 9001 + i
                status, device = http_json("POST", relay + "/api/devices", {"camid": camid, "cmngrid": 1}, headers=admin)
                if status not in (200, 201):
                    raise RuntimeError(f"relay refused device {camid}: {status} {device}")
                note(f"3. add camera {i + 1}/{adds}")
                started = time.perf_counter()
                status, camera = http_json("POST", base + "/api/add-camera/", {
                    "ip": "127.0.0.1", "rtsp_port": rtsp_camera.port, "http_port": web_page.port,
                    "is_active": True, "access_token": device["access_token"],
                }, token=token)
                to_api.append(time.perf_counter() - started)
                if status != 201:
                    raise RuntimeError(f"add-camera answered {status}: {camera}")
                public_port = None
                deadline = started + 30
                while True:
                    if time.perf_counter() > deadline:
                        raise TimeoutError(f"camera {camera['camera_id']}: no RTSP answer through the relay within 30 s")
                    if public_port is None:
                        _, seen = http_json("GET", f"{base}/api/camera/{camera['camera_id']}/", token=token)
                        tunnel = seen.get("tunnel") or {}
                        if tunnel.get("state") == "up":
                            public_port = next((e["proxy_port"] for e in tunnel.get("endpoints", ()) if e["name"] == "rtsp"), None)
                            if public_port is not None:
                                to_up.append(time.perf_counter() - started)
                    if public_port is not None and rtsp_options(public_port, rtsp_camera.path):
                        to_view.append(time.perf_counter() - started)
                        break
                    time.sleep(0.01)
                http_json("DELETE", f"{base}/api/cameras/{camera['camera_id']}/", token=token)
                # The next add starts once this camera's tunnel is gone from the relay.
                deadline = time.perf_counter() + 15
                while http_json("GET", f"{relay}/api/device/{camid}", headers=admin)[0] != 404:
                    if time.perf_counter() > deadline:
                        raise TimeoutError(f"camera {camera['camera_id']}'s tunnel outlived its deletion")
                    time.sleep(0.05)
            if process.poll() is not None:
                raise RuntimeError("camgate run died during the benchmark")
    finally:
        web_page.stop()
        rtsp_camera.stop()
    n = adds
    return [
        Row("3", f"add-camera → first RTSP OPTIONS 200 via relay, median of {n} (min–max)",
            f"{fmt_seconds(median(to_view))} ({fmt_seconds(min(to_view))}–{fmt_seconds(max(to_view))})"),
        Row("3", "  of which: add-camera → 201 answer, median", fmt_seconds(median(to_api))),
        Row("3", "  of which: add-camera → API shows tunnel up with endpoints, median", fmt_seconds(median(to_up))),
    ]

