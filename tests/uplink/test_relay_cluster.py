"""Several relay nodes on one PostgreSQL (a real server), tunnels from real tunnel
clients over loopback: any node answers for the fleet, a device is held by one node,
limits hold across nodes, and a node rides out its database going away."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from camgate.uplink.protocol import SUBPROTOCOL, Forward, build_hello

from .loopback import ADMIN_TOKEN, echo_through, spec_for, tunnel_up, wait_until
from .pg_fixtures import own_postgres, postgres_dsn, postgres_server  # noqa: F401 - fixtures

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FAST_NODE = {"heartbeat_interval": 0.2, "node_ttl": 1.0}


async def call(relay, method: str, path: str, headers=None, body=None):
    async with aiohttp.ClientSession() as http:
        async with http.request(method, f"{relay.url}{path}", headers=headers or ADMIN, json=body) as resp:
            return resp.status, await resp.json()


async def add_device(relay, camid: int) -> str:
    status, body = await call(relay, "POST", "/api/devices", body={"camid": camid})
    assert status == 201
    return body["access_token"]


@pytest.fixture
async def two_nodes(make_relay, postgres_dsn):
    a = await make_relay(store_url=postgres_dsn, node_name="a", **FAST_NODE)
    b = await make_relay(store_url=postgres_dsn, node_name="b", **FAST_NODE)
    return a, b


async def test_any_node_answers_for_the_device_another_node_holds(two_nodes, camera, make_client):
    a, b = two_nodes
    cam = await camera()
    token = await add_device(a, 11)  # issued by a: its uplink is a, and a is least loaded
    client = make_client(spec_for(token, Forward("rtsp", "tcp", "127.0.0.1", cam.port)))
    await tunnel_up(client, a, 11)
    status, endpoint = await call(b, "GET", "/api/ws-endpoint", {"Authorization": token})
    assert status == 200 and endpoint["domain"] == a.public_address  # b sends the device to its holder

    answers = [await call(node, "GET", "/api/device/11") for node in (a, b)]
    assert answers[0] == answers[1]
    status, body = answers[0]
    assert status == 200 and body["node"] == "a"
    assert body["forwards"][0]["proxy_port"] == a.tunnel(11).ports["rtsp"]
    await echo_through(body["forwards"][0]["proxy_port"])
    assert (await call(b, "GET", "/api/devices"))[1] == [{"camid": 11, "cmngrid": 0, "serial": None, "online": True}]


async def test_a_device_connecting_to_another_node_is_taken_over_there(two_nodes, camera, make_client):
    a, b = two_nodes
    cam = await camera()
    token = await add_device(a, 12)
    client = make_client(spec_for(token, Forward("rtsp", "tcp", "127.0.0.1", cam.port)))
    await tunnel_up(client, a, 12)
    # The same device insists on b (a second agent, or one that skipped ws-endpoint).
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"ws://127.0.0.1:{b.port}/ra-proxy", headers={"Authorization": token},
                                   protocols=(SUBPROTOCOL,))
        await ws.send_str(build_hello(forwards=(Forward("rtsp", "tcp", "127.0.0.1", cam.port),)))
        await wait_until(lambda: b.tunnel(12) is not None, what="b to take the device")
        await wait_until(lambda: a.tunnel(12) is None, what="a to drop the device b took")  # never two holders
        for node in (a, b):
            status, body = await call(node, "GET", "/api/device/12")
            assert status == 200 and body["node"] == "b"
        await ws.close()


async def test_provisioning_limits_are_counted_across_nodes(two_nodes):
    a, b = two_nodes
    await call(a, "POST", "/api/devices", body={"camid": 13, "serial": "SN13", "password": "right"})
    statuses = []
    for attempt in range(61):  # the limit is 60 failures a minute from one address
        node = (a, b)[attempt % 2]
        statuses.append((await call(node, "GET", "/v1/token?serial_id=SN13", {"Authorization": "wrong"}))[0])
    assert statuses[:60] == [401] * 60 and statuses[60] == 429
    assert (await call(a, "GET", "/v1/token?serial_id=SN13", {"Authorization": "right"}))[0] == 429


async def test_a_live_tunnel_outlasts_its_database_going_away(make_relay, own_postgres, camera, make_client, caplog):
    caplog.set_level(logging.INFO, logger="camgate.uplink.store")
    dsn = own_postgres.create_database("relay")
    relay = await make_relay(store_url=dsn, node_name="solo", **FAST_NODE)
    cam = await camera()
    token = await add_device(relay, 21)
    client = make_client(spec_for(token, Forward("rtsp", "tcp", "127.0.0.1", cam.port)))
    await tunnel_up(client, relay, 21)
    port = relay.tunnel(21).ports["rtsp"]

    own_postgres.stop()
    await echo_through(port)  # the tunnel keeps flowing
    for _ in range(3):
        status, body = await call(relay, "GET", "/api/ws-endpoint", {"Authorization": token})
        assert status == 503 and body["error"].startswith("relay store unavailable: database unavailable")
    assert (await call(relay, "GET", "/api/device/21"))[0] == 200  # the node's own tunnel needs no store
    down_lines = [r for r in caplog.records if "retrying with backoff" in r.getMessage()]
    assert len(down_lines) == 1  # one line for the state change, not one per request

    own_postgres.start()
    async def answered() -> bool:
        return (await call(relay, "GET", "/api/ws-endpoint", {"Authorization": token}))[0] == 200
    for _ in range(100):
        if await answered():
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the relay did not reconnect to its database")
    assert any("database reachable again" in r.getMessage() for r in caplog.records)
    assert relay.tunnel(21) is not None and client.status.state.name == "UP"
    await echo_through(port)
