"""The agent's reconcile and report steps, driven directly: the real camera table (a
test database), the real plan and store, and stand-in tunnel clients (the tunnel itself
is tested in tests/uplink/). Each step is one call, so no test waits on a timer."""

from __future__ import annotations

import pytest

from camgate.agent import store
from camgate.agent.plan import UplinkSettings
from camgate.agent.reconciler import Agent
from camgate.cameras.models import Camera, TunnelStatus
from camgate.core import GATEWAY_STATUS_KEY, TunnelState
from camgate.uplink.client import ClientStatus
from camgate.uplink.protocol import PublicEndpoint
from tests.conftest import make_token

pytestmark = pytest.mark.usefixtures("agent_database")


class StandInClient:
    """What the agent needs of a TunnelClient: its spec, a status, start and stop."""

    made: list["StandInClient"] = []

    def __init__(self, spec, on_status) -> None:
        self.spec, self.on_status = spec, on_status
        self.status = ClientStatus(spec.key)
        self.started = self.stopped = False
        StandInClient.made.append(self)

    def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def come_up(self, *endpoints: PublicEndpoint) -> None:
        self.status = ClientStatus(self.spec.key, TunnelState.UP, endpoints=endpoints, open_connections=2,
                                   bytes_to_cloud=1000, bytes_from_cloud=10)
        self.on_status(self.status)


@pytest.fixture
def agent():
    StandInClient.made = []
    return Agent(UplinkSettings(uplink_host="relay.test:8800", tls=False, ssh_port=0), "11111111-2222-3333-4444-555555555555",
                 client_factory=StandInClient)


def status_of(camera: Camera) -> TunnelStatus:
    return TunnelStatus.objects.get(camera=camera)


async def test_one_client_per_enabled_camera_and_the_gateway(agent):
    on = await Camera.objects.acreate(ip="10.0.0.1", access_token=make_token(101))
    await Camera.objects.acreate(ip="10.0.0.2", access_token=make_token(102), enabled=False)
    await agent.reconcile()
    assert set(agent.clients) == {f"camera-{on.camera_id}", GATEWAY_STATUS_KEY}
    assert all(client.started for client in agent.clients.values())
    assert [f.name for f in agent.clients[f"camera-{on.camera_id}"].spec.forwards] == ["http", "rtsp"]


async def test_an_edit_the_tunnel_uses_replaces_its_client_and_other_edits_keep_it(agent):
    camera = await Camera.objects.acreate(ip="10.0.0.1", access_token=make_token(101))
    key = f"camera-{camera.camera_id}"
    await agent.reconcile()
    first = agent.clients[key]

    await Camera.objects.filter(pk=camera.pk).aupdate(serial="NEW")
    await agent.reconcile()
    assert agent.clients[key] is first and not first.stopped

    await Camera.objects.filter(pk=camera.pk).aupdate(ip="10.0.0.9")
    await agent.reconcile()
    assert first.stopped and agent.clients[key] is not first
    assert agent.clients[key].spec.forwards[0].host == "10.0.0.9"

    await Camera.objects.filter(pk=camera.pk).aupdate(enabled=False)
    await agent.reconcile()
    assert key not in agent.clients and agent.clients.get(GATEWAY_STATUS_KEY)


async def test_an_unchanged_tunnel_keeps_one_spec_across_passes(agent):
    """Memory: the plan holds the running client's spec, not a new copy each pass."""
    camera = await Camera.objects.acreate(ip="10.0.0.1", access_token=make_token(101))
    key = f"camera-{camera.camera_id}"
    await agent.reconcile()
    await agent.reconcile()
    assert agent.plan[key].spec is agent.clients[key].spec


async def test_the_report_writes_what_is_true_and_only_what_changed(agent):
    camera = await Camera.objects.acreate(ip="10.0.0.1", access_token=make_token(101), rtsp_only=True)
    await agent.reconcile()
    await agent._report()
    assert (await TunnelStatus.objects.aget(camera=camera)).state == TunnelState.CONNECTING

    agent.clients[f"camera-{camera.camera_id}"].come_up(PublicEndpoint("rtsp", "relay.test", 20001))
    await agent._report()
    row = await TunnelStatus.objects.aget(camera=camera)
    assert (row.state, row.pid is not None, row.open_connections, row.bytes_to_cloud) == (TunnelState.UP, True, 2, 1000)
    assert row.endpoints == [{"name": "rtsp", "proxy_host": "relay.test", "proxy_port": 20001, "url": "rtsp://relay.test:20001/"}]
    written_at = row.updated_at
    await agent._report()  # nothing changed: nothing written
    assert (await TunnelStatus.objects.aget(camera=camera)).updated_at == written_at

    await Camera.objects.filter(pk=camera.pk).aupdate(enabled=False)
    await agent.reconcile()
    await agent._report()
    row = await TunnelStatus.objects.aget(camera=camera)
    assert (row.state, row.reason, row.pid) == (TunnelState.STOPPED, "inactive", None)


async def test_a_camera_that_cannot_have_a_tunnel_is_reported_failed_with_why(agent):
    agent.settings = UplinkSettings(uplink_host="relay.test:8800", tls=False, ssh_port=0, embedded_relay=False)
    camera = await Camera.objects.acreate(ip="10.0.0.1")  # no token, no serial + MAC
    await agent.reconcile()
    await agent._report()
    row = await TunnelStatus.objects.aget(camera=camera)
    assert row.state == TunnelState.FAILED and "no access token" in row.reason


def test_statuses_of_deleted_cameras_are_dropped_and_a_stopped_agent_says_so():
    kept = Camera.objects.create(ip="10.0.0.1")
    gone = Camera.objects.create(ip="10.0.0.2")
    gone_id = gone.camera_id
    gone.delete()
    store.write_statuses([
        store.StatusRecord(f"camera-{kept.camera_id}", kept.camera_id, TunnelState.UP, pid=42),
        store.StatusRecord(f"camera-{gone_id}", gone_id, TunnelState.UP, pid=42),
        store.StatusRecord(GATEWAY_STATUS_KEY, None, TunnelState.UP, pid=42),
    ])
    assert set(TunnelStatus.objects.values_list("key", flat=True)) == {f"camera-{kept.camera_id}", GATEWAY_STATUS_KEY}
    store.mark_all_stopped()
    assert set(TunnelStatus.objects.values_list("state", "pid", "reason")) == {(TunnelState.STOPPED, None, "agent not running")}
