"""The relay's GET /metrics: parsed by prometheus_client's own parser, after real
traffic through a real tunnel on loopback; and who may read it."""

from __future__ import annotations

import os

import aiohttp
import pytest

from camgate.config import ConfigError
from camgate.uplink.protocol import Forward
from camgate.uplink.relay import RelayConfig, RelayServer
from tests.support.prometheus import Scrape

from .loopback import ADMIN_TOKEN, spec_for, tunnel_up, wait_until

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def get(url: str, headers: dict | None = None) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers or {}) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def scrape(relay) -> Scrape:
    status, content_type, text = await get(f"{relay.url}/metrics")  # loopback: allowed without a token
    assert status == 200 and content_type.startswith("text/plain; version="), (status, text)
    return Scrape(text)


async def test_devices_tunnels_connections_and_bytes_after_real_traffic(relay, camera, make_client, open_viewer):
    cam = await camera()
    relay.register_device(2001, 1)
    device, _ = relay.register_device(2002, 1)
    client = make_client(spec_for(device.access_token, Forward("rtsp", "tcp", "127.0.0.1", cam.port)))
    await tunnel_up(client, relay, 2002)
    reader, writer = await open_viewer(relay.tunnel(2002).ports["rtsp"])
    data = os.urandom(200_000)
    writer.write(data)
    assert await reader.readexactly(len(data)) == data  # the echo camera sent it all back

    live = await scrape(relay)
    assert live.value("camgate_relay_devices_registered") == 2
    assert live.value("camgate_relay_devices_connected") == 1
    assert live.value("camgate_relay_tunnels_opened_total") == 1
    assert live.value("camgate_relay_open_connections") == 1
    assert live.value("camgate_relay_bytes_total", direction="to_devices") == len(data)
    assert live.value("camgate_relay_bytes_total", direction="from_devices") == len(data)

    # The tunnel goes: its bytes stay counted (a counter never goes back), it is no
    # longer connected.
    writer.close()
    await client.stop()
    await wait_until(lambda: relay.tunnel(2002) is None, what="the tunnel to end")
    ended = await scrape(relay)
    assert ended.value("camgate_relay_devices_connected") == 0
    assert ended.value("camgate_relay_open_connections") == 0
    assert ended.value("camgate_relay_bytes_total", direction="to_devices") == len(data)
    assert ended.value("camgate_relay_bytes_total", direction="from_devices") == len(data)
    assert ended.families["camgate_relay_bytes"].type == "counter"


async def test_refusals_are_counted_by_reason(relay):
    fresh = await scrape(relay)
    assert {s["reason"] for s in fresh.labels_of("camgate_relay_refused_connections_total")} == {
        "invalid_token", "bad_hello", "no_hello", "token_revoked", "store_unavailable"}
    assert fresh.value("camgate_relay_refused_connections_total", reason="invalid_token") == 0

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{relay.url}/ra-proxy", headers={"Authorization": "not-a-token"}) as resp:
            assert resp.status == 403
        device, _ = relay.register_device(3003, 1)
        async with http.ws_connect(f"{relay.url}/ra-proxy", protocols=("ra-proxy",),
                                   headers={"Authorization": device.access_token}) as ws:
            await ws.send_str("not a hello")
            await ws.receive()  # the relay closes it
        for _ in range(61):  # the 61st wrong password from one address is slowed down
            async with http.get(f"{relay.url}/v1/token", params={"serial_id": "CAM"},
                                headers={"Authorization": "wrong"}) as resp:
                last = resp.status
        assert last == 429

    counted = await scrape(relay)
    assert counted.value("camgate_relay_refused_connections_total", reason="invalid_token") == 1
    assert counted.value("camgate_relay_refused_connections_total", reason="bad_hello") == 1
    assert counted.value("camgate_relay_provisioning_refused_total", code="401") == 60
    assert counted.value("camgate_relay_provisioning_refused_total", code="429") == 1


async def test_without_the_token_only_allowed_addresses_may_read(make_relay):
    relay = await make_relay(metrics_allow=())  # loopback is not allowed: a token is needed
    status, _, body = await get(f"{relay.url}/metrics")
    assert status == 401 and "admin token" in body
    status, _, _ = await get(f"{relay.url}/metrics", {"Authorization": "Bearer wrong"})
    assert status == 401
    status, _, text = await get(f"{relay.url}/metrics", ADMIN)
    assert status == 200 and Scrape(text).value("camgate_relay_devices_connected") == 0


async def test_a_wrong_token_is_refused_even_from_an_allowed_address(relay):
    status, _, _ = await get(f"{relay.url}/metrics", {"Authorization": "Bearer wrong"})
    assert status == 401


async def test_openmetrics_when_the_scraper_asks_for_it(relay):
    status, content_type, text = await get(
        f"{relay.url}/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert status == 200 and content_type.startswith("application/openmetrics-text")
    assert text.rstrip().endswith("# EOF")


def test_a_bad_allow_list_entry_is_named():
    with pytest.raises(ConfigError, match="CAMGATE_RELAY_METRICS_ALLOW: 'localhost'"):
        RelayServer(RelayConfig(metrics_allow=("127.0.0.1", "localhost")))
