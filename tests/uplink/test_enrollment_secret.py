"""The embedded relay enrolls only devices that show its instance's secret."""

from __future__ import annotations

import aiohttp
import pytest

from camgate.uplink.client import TunnelSpec, TunnelState
from camgate.uplink.enrollment import ENROLLMENT_HEADER
from camgate.uplink.protocol import Forward

from tests.conftest import make_token

from .loopback import wait_until

SECRET = "this-instances-secret"


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def status_of(http, url, headers):
    async with http.get(url, headers=headers) as resp:
        return resp.status


@pytest.mark.parametrize("shown", [None, "another-instances-secret", ""])
async def test_a_relay_with_a_secret_enrolls_no_serial_or_token_without_it(http, make_relay, shown):
    relay = await make_relay(open_enrollment=True, enrollment_secret=SECRET)
    extra = {} if shown is None else {ENROLLMENT_HEADER: shown}
    provision = f"{relay.url}/v1/token?serial_id=CAM1"
    assert await status_of(http, provision, {"Authorization": "AA:BB", **extra}) == 401
    endpoint = f"{relay.url}/api/ws-endpoint"
    assert await status_of(http, endpoint, {"Authorization": make_token(77), **extra}) == 403
    assert relay.store.state.device(77) is None


async def test_a_relay_with_a_secret_enrolls_who_shows_it(http, make_relay):
    relay = await make_relay(open_enrollment=True, enrollment_secret=SECRET)
    shown = {ENROLLMENT_HEADER: SECRET}
    assert await status_of(http, f"{relay.url}/v1/token?serial_id=CAM1", {"Authorization": "AA:BB", **shown}) == 200
    assert await status_of(http, f"{relay.url}/api/ws-endpoint", {"Authorization": make_token(77), **shown}) == 200
    # Once enrolled, a device is known: its token works without the secret, as any device's.
    assert await status_of(http, f"{relay.url}/api/ws-endpoint", {"Authorization": make_token(77)}) == 200


def serial_spec(relay, secret: str, port: int) -> TunnelSpec:
    return TunnelSpec(key="camera", forwards=(Forward("rtsp", "tcp", "127.0.0.1", port),), serial="CAM-1",
                      password="aa:bb", provisioning_url=relay.url, tls=False, enrollment_secret=secret)


async def test_the_client_shows_its_secret_and_enrolls_and_never_logs_it(make_relay, make_client, camera):
    relay = await make_relay(open_enrollment=True, enrollment_secret=SECRET)
    spec = serial_spec(relay, SECRET, (await camera()).port)
    client = make_client(spec)
    # Up at both ends: the client can say "up" a moment before the relay has the tunnel.
    await wait_until(lambda: client.status.state is TunnelState.UP and client.status.camid is not None
                     and relay.tunnel(client.status.camid) is not None, what="the enrolled tunnel to come up")
    assert SECRET not in repr(spec) and SECRET not in repr(client.status)


async def test_a_client_with_another_secret_is_not_enrolled(make_relay, make_client, camera):
    relay = await make_relay(open_enrollment=True, enrollment_secret=SECRET)
    client = make_client(serial_spec(relay, "another-instances-secret", (await camera()).port))
    await wait_until(lambda: client.status.reason == "not provisioned", what="provisioning to be refused")
    assert relay.store.state.devices() == []
