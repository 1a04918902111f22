"""What one device may hold of the relay's public port range: the ports of its current
forwards, and of the set before (for a grace period); never more, across restarts too."""

from __future__ import annotations

import json
import random
import socket

from camgate.uplink.protocol import Forward
from camgate.uplink.relay_store import RelayStore

from .loopback import spec_for, tunnel_up, wait_until

GRACE = 3600.0
T0 = 1_700_000_000.0


def assigned(store: RelayStore, camid: int, *names: str, first_port: int) -> None:
    for offset, name in enumerate(names):
        store.assign_port(camid, name, first_port + offset)


def test_a_device_keeps_its_current_forwards_and_the_set_before_only(tmp_path):
    store = RelayStore(tmp_path / "relay.json", previous_ports_grace=GRACE)
    store.hold_forwards(1, ["a", "b"], now=T0)
    assigned(store, 1, "a", "b", first_port=20000)
    store.hold_forwards(1, ["c"], now=T0 + 1)  # a and b are now the previous set
    assigned(store, 1, "c", first_port=20002)
    assert store.ports_in_use(now=T0 + 2) == {20000, 20001, 20002}
    store.hold_forwards(1, ["c"], now=T0 + 3)  # the same set again changes nothing
    assert store.ports_in_use(now=T0 + 3) == {20000, 20001, 20002}
    store.hold_forwards(1, ["d"], now=T0 + 4)  # c becomes the previous set; a and b are freed
    assigned(store, 1, "d", first_port=20003)
    assert store.ports_in_use(now=T0 + 5) == {20002, 20003}
    assert store.port_for(1, "a") is None
    store.hold_forwards(1, ["c", "e"], now=T0 + 6)  # back to c: it has its port again
    assert store.port_for(1, "c") == 20002
    assert store.ports_in_use(now=T0 + 7) == {20002, 20003}


def test_the_previous_set_is_freed_after_the_grace_period_even_across_a_restart(tmp_path):
    path = tmp_path / "relay.json"
    store = RelayStore(path, previous_ports_grace=GRACE)
    store.hold_forwards(1, ["a"], now=T0)
    assigned(store, 1, "a", first_port=20000)
    store.hold_forwards(1, ["b"], now=T0 + 10)
    assigned(store, 1, "b", first_port=20001)
    store.hold_forwards(2, ["a"], now=T0 + 10)  # another device's forward of the same name
    assigned(store, 2, "a", first_port=20002)

    store = RelayStore(path, previous_ports_grace=GRACE)  # a relay restart
    assert store.ports_in_use(now=T0 + 10 + GRACE - 1) == {20000, 20001, 20002}
    assert store.ports_in_use(now=T0 + 10 + GRACE) == {20001, 20002}
    assert RelayStore(path).port_for(1, "a") is None  # and the file says so
    assert RelayStore(path).port_for(2, "a") == 20002


def test_a_version_1_state_file_reads_as_all_ports_current(tmp_path):
    path = tmp_path / "relay.json"
    path.write_text(json.dumps({"version": 1, "devices": [], "ports": {"1/a": 20000, "1/b": 20001}}))
    store = RelayStore(path, previous_ports_grace=GRACE)
    assert store.ports_in_use(now=T0) == {20000, 20001}
    store.hold_forwards(1, ["a"], now=T0)
    assert store.ports_in_use(now=T0 + GRACE) == {20000}
    assert json.loads(path.read_text())["version"] == 2


def free_port_range(size: int) -> tuple[int, int]:
    """``size`` consecutive ports nothing listens on now (outside the ephemeral range
    where possible, so the test's own connections do not take them)."""
    for _ in range(50):
        low = random.randrange(20000, 32000 - size)
        try:
            for port in range(low, low + size):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return low, low + size - 1
    raise AssertionError("no free range of ports")


async def test_renaming_forwards_on_every_reconnect_cannot_use_up_the_port_range(make_relay, camera, make_client):
    low, high = free_port_range(6)
    relay = await make_relay(port_range=(low, high))
    cam = await camera()
    device, _ = relay.register_device(2001)
    for round_ in range(5):
        names = (f"r{round_}a", f"r{round_}b")
        client = make_client(spec_for(device.access_token, *(Forward(n, "tcp", "127.0.0.1", cam.port) for n in names)))
        await tunnel_up(client, relay, 2001)
        assert set(relay.tunnel(2001).ports) == set(names)
        await client.stop()
        await wait_until(lambda: relay.tunnel(2001) is None, what="the tunnel to close")
    held_by_renamer = relay.store.state.ports_in_use()
    assert len(held_by_renamer) == 4  # the last two sets of two

    other, _ = relay.register_device(2002)
    client = make_client(spec_for(other.access_token, *(Forward(n, "tcp", "127.0.0.1", cam.port) for n in "xy")))
    await tunnel_up(client, relay, 2002)
    others_ports = set(relay.tunnel(2002).ports.values())
    assert len(others_ports) == 2 and not others_ports & held_by_renamer
    await client.stop()
    await relay.close()

    restarted = await make_relay(port_range=(low, high))
    assert restarted.store.state.ports_in_use() == held_by_renamer | others_ports


async def test_a_device_back_on_its_remembered_port_costs_no_look_at_every_port_in_use(make_relay, camera, make_client):
    # After a restart a thousand devices reconnect at once; each asking the store for the
    # set of every device's ports made that quadratic (and a query each with PostgreSQL).
    low, high = free_port_range(4)
    relay = await make_relay(port_range=(low, high))
    cam = await camera()
    device, _ = relay.register_device(2101)
    rtsp = Forward("rtsp", "tcp", "127.0.0.1", cam.port)
    client = make_client(spec_for(device.access_token, rtsp))
    await tunnel_up(client, relay, 2101)
    port = relay.tunnel(2101).ports["rtsp"]
    await client.stop()
    await relay.close()

    restarted = await make_relay(port=relay.port, port_range=(low, high))
    asked = []
    ports_in_use = restarted.store.ports_in_use

    async def counted():
        asked.append(1)
        return await ports_in_use()

    restarted.store.ports_in_use = counted
    client = make_client(spec_for(device.access_token, rtsp))
    await tunnel_up(client, restarted, 2101)
    assert restarted.tunnel(2101).ports["rtsp"] == port and not asked

    # A remembered port someone else has taken meanwhile: the ports in use are asked for then.
    await client.stop()
    await wait_until(lambda: restarted.tunnel(2101) is None, what="the tunnel to close")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        client = make_client(spec_for(device.access_token, rtsp))
        await tunnel_up(client, restarted, 2101)
        assert restarted.tunnel(2101).ports["rtsp"] != port and asked
