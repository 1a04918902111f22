"""VXG's reference agent, `vxg-proxy-client`, as a third path of benchmarks 1 and 2, when
it is on PATH (optional: the table says why its column is empty otherwise).

The reference agent takes no port from its token: with --http it dials port 80 of the
token's host. So it gets its own `camgate relay` on 127.0.0.1:80 (root, or a machine
that lets Python bind low ports), and the viewer reaches the camera through the public
port that relay gave it (asked from the admin API, since the reference agent says none).
"""

from __future__ import annotations

import os
import shutil
import sys
import time

from bench.common import Context, free_port_range
from tests.support.processes import bindable, http_json, wait_for_http

COMMAND = "vxg-proxy-client"
PORT = 80


def unavailable() -> str | None:
    """Why the VXG column stays empty, or None when the reference agent can run."""
    if shutil.which(COMMAND) is None:
        return f"{COMMAND} is not on PATH"
    if not bindable(PORT):
        return f"port {PORT} of 127.0.0.1 is taken (the reference agent dials port 80 with --http)"
    return None


def start_path(ctx: Context, camera_port: int) -> int:
    """Start a relay on port 80 and the reference agent for one camera; its public port."""
    tmp, admin = ctx.tmp / "vxg", os.urandom(16).hex()
    tmp.mkdir(exist_ok=True)
    low, high = free_port_range(4)
    ctx.children.spawn(
        [sys.executable, "-m", "camgate.cli", "relay", "--host", "127.0.0.1", "--port", str(PORT),
         "--state", str(tmp / "state.json"), "--port-range", f"{low}-{high}"],
        tmp / "relay.log", env={**os.environ, "CAMGATE_DATA_DIR": str(tmp / "data"), "CAMGATE_RELAY_ADMIN_TOKEN": admin},
    )
    relay = f"http://127.0.0.1:{PORT}"
    wait_for_http(relay + "/api/devices")
    headers = {"Authorization": f"Bearer {admin}"}
    status, device = http_json("POST", relay + "/api/devices", {"camid": 1, "cmngrid": 1}, headers=headers)
    if status != 201:
        raise RuntimeError(f"relay refused the device: {status} {device}")
    ctx.children.spawn([COMMAND, "--token", device["access_token"], "--http", "-f", f"rtsp:tcp:127.0.0.1:{camera_port}"],
                       tmp / "vxg-proxy-client.log")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, body = http_json("GET", relay + "/api/device/1", headers=headers)
        if status == 200 and body.get("forwards"):
            return body["forwards"][0]["proxy_port"]
        time.sleep(0.1)
    raise TimeoutError(f"{COMMAND}'s tunnel did not come up within 20 s (see {tmp})")
