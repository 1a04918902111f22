"""Two `camgate relay` processes on one PostgreSQL (a real server): kill -9 of the node
holding a device moves it to the other within seconds, with data flowing again and the
new address answered by the surviving node's admin API."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.error
import urllib.request

import pytest

from camgate.uplink.protocol import Forward
from tests.support.processes import camgate_env, camgate_process, free_port, wait_for_http

from .loopback import echo_through, spec_for, wait_until
from .test_relay_ports import free_port_range
from .pg_fixtures import postgres_dsn, postgres_server  # noqa: F401 - fixtures

pytestmark = pytest.mark.e2e

ADMIN = "relay-admin-secret"


def admin_call(port: int, method: str, path: str, body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method, data=json.dumps(body).encode() if body else None,
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_kill_9_of_the_holding_node_moves_its_device_to_the_other(
    tmp_path, postgres_dsn, camera, make_client
):
    ports = {"a": free_port(), "b": free_port()}
    ranges = {"a": free_port_range(10), "b": free_port_range(10)}
    env = camgate_env(tmp_path / "data", CAMGATE_RELAY_ADMIN_TOKEN=ADMIN)

    def node_args(name: str) -> list[str]:
        return ["relay", "--host", "127.0.0.1", "--port", str(ports[name]), "--public-host", "127.0.0.1",
                "--store", postgres_dsn, "--node", name, "--heartbeat", "0.2", "--node-ttl", "3",
                "--port-range", "%d-%d" % ranges[name],
                # Tokens name b: the address that stays up (in production, a name reaching any live node).
                "--uplink-host", f"127.0.0.1:{ports['b']}"]

    cam = await camera()
    forward = Forward("rtsp", "tcp", "127.0.0.1", cam.port)
    with camgate_process(node_args("a"), env, tmp_path / "a.log") as node_a, \
            camgate_process(node_args("b"), env, tmp_path / "b.log"):
        for port in ports.values():
            await asyncio.to_thread(wait_for_http, f"http://127.0.0.1:{port}/api/devices", 30)
        filler = admin_call(ports["b"], "POST", "/api/devices", {"camid": 1})[1]["access_token"]
        device = admin_call(ports["b"], "POST", "/api/devices", {"camid": 2})[1]["access_token"]
        first = make_client(spec_for(filler, forward))
        await wait_until(lambda: first.status.endpoints, 10, "the first device's tunnel (to b, the node asked)")
        client = make_client(spec_for(device, forward))
        await wait_until(lambda: client.status.endpoints, 10, "the second device's tunnel (to a, less loaded)")
        status, before = await asyncio.to_thread(admin_call, ports["b"], "GET", "/api/device/2")
        assert status == 200 and before["node"] == "a"
        assert before == (await asyncio.to_thread(admin_call, ports["a"], "GET", "/api/device/2"))[1]
        await echo_through(before["forwards"][0]["proxy_port"])

        os.killpg(node_a.pid, signal.SIGKILL)
        node_a.wait()

        async def moved() -> dict | None:
            status, body = await asyncio.to_thread(admin_call, ports["b"], "GET", "/api/device/2")
            return body if status == 200 and body["node"] == "b" else None

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while (after := await moved()) is None:
            assert loop.time() < deadline, "the device did not move to b"
            await asyncio.sleep(0.1)
        await wait_until(lambda: {e.proxy_port for e in client.status.endpoints}
                         == {after["forwards"][0]["proxy_port"]}, 5, "the client to learn its new port")
        await echo_through(after["forwards"][0]["proxy_port"])
        status, untouched = await asyncio.to_thread(admin_call, ports["b"], "GET", "/api/device/1")
        assert status == 200 and untouched["node"] == "b"  # b's own device never noticed
        await echo_through(untouched["forwards"][0]["proxy_port"])
