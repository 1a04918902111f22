"""The relay's two state stores through the one interface the relay uses: the JSON state
file and PostgreSQL (a real server) keep the same rules."""

from __future__ import annotations

import asyncio

import pytest

from camgate.uplink.ratelimit import FailureLimiter
from camgate.uplink.store.base import ENROLLED_CAMID_BASE, NodeInfo
from camgate.uplink.store.file import FileStore
from camgate.uplink.store.postgres import PostgresStore

from .pg_fixtures import postgres_dsn, postgres_server  # noqa: F401 - fixtures

GRACE = 0.5


def node(name: str) -> NodeInfo:
    return NodeInfo(name, "127.0.0.1", f"{name}.test:8443", (20000, 20099))


@pytest.fixture(params=["file", "postgresql"])
async def open_store(request, tmp_path):
    stores = []

    async def open_(name: str = "a", **kwargs):
        if request.param == "file":
            store = FileStore(tmp_path / f"{name}.json", previous_ports_grace=kwargs.get("grace", GRACE))
            store._failures = kwargs.get("failures", store._failures)
        else:
            dsn = request.getfixturevalue("postgres_dsn") if not stores else stores[0].link.dsn
            store = PostgresStore(dsn, node(name), previous_ports_grace=kwargs.get("grace", GRACE),
                                  failures=kwargs.get("failures"))
        await store.open()
        stores.append(store)
        return store

    yield open_
    for store in stores:
        await store.close()


async def test_devices_tokens_and_serials(open_store):
    store = await open_store()
    device, created = await store.put_device(7, 1, "token-1", "ab12", "aa:bb")
    assert created and device.serial == "AB12"
    assert (await store.device_for_token("token-1")).camid == 7
    assert (await store.device_for_serial("ab12", "AA:BB")).camid == 7
    assert await store.device_for_serial("ab12", "wrong") is None
    assert await store.serial_known("AB12")

    device, created = await store.put_device(7, 2, "token-2")  # re-issued: the old token stops working
    assert not created and device.serial == "AB12" and device.cmngrid == 2
    assert await store.device_for_token("token-1") is None
    assert (await store.device_for_token("token-2")).cmngrid == 2
    assert await store.put_device(7, 3, "token-3", only_new=True) == (None, False)

    await store.put_device(8, 1, "token-8", "AB12", "cc")  # a serial names one device: the newest
    assert (await store.device_for_serial("AB12", "cc")).camid == 8
    assert (await store.device(7)).serial is None
    assert [d.camid for d in await store.devices()] == [7, 8]
    assert await store.next_enrolled_camid() == ENROLLED_CAMID_BASE
    await store.put_device(ENROLLED_CAMID_BASE + 4, 0, "token-e")
    assert await store.next_enrolled_camid() == ENROLLED_CAMID_BASE + 5

    assert await store.remove_device(7) and not await store.remove_device(7)
    assert await store.device(7) is None and await store.device_for_token("token-2") is None


async def test_a_device_keeps_its_current_forwards_and_the_set_before_only(open_store):
    store = await open_store()
    await store.put_device(1, 0, "t1")
    await store.hold_forwards(1, ["a", "b"])
    assert await store.assign_port(1, "a", 20000) and await store.assign_port(1, "b", 20001)
    await store.hold_forwards(1, ["c"])  # a and b are now the previous set
    await store.assign_port(1, "c", 20002)
    assert await store.ports_in_use() == {20000, 20001, 20002}
    await store.hold_forwards(1, ["c"])  # the same set again changes nothing
    assert await store.ports_in_use() == {20000, 20001, 20002}
    await store.hold_forwards(1, ["d"])  # c becomes the previous set; a and b are freed
    await store.assign_port(1, "d", 20003)
    assert await store.ports_in_use() == {20002, 20003}
    assert await store.port_for(1, "a") is None
    await store.hold_forwards(1, ["c", "e"])  # back to c: it has its port again
    assert await store.port_for(1, "c") == 20002
    assert await store.ports_in_use() == {20002, 20003}
    await asyncio.sleep(GRACE + 0.1)  # d, the previous set now, outlives its grace period
    assert await store.ports_in_use() == {20002}
    assert await store.remove_device(1)
    assert await store.ports_in_use() == set()


async def test_ports_survive_a_restart_of_the_node(open_store):
    store = await open_store("a", grace=3600)
    await store.put_device(1, 0, "t1")
    await store.hold_forwards(1, ["rtsp"])
    await store.assign_port(1, "rtsp", 20042)
    await store.close()
    store = await open_store("a", grace=3600)
    assert await store.port_for(1, "rtsp") == 20042
    assert await store.ports_in_use() == {20042}


async def test_provisioning_failures_limit_an_address(open_store):
    store = await open_store(failures=FailureLimiter(limit=3, window=60))
    for _ in range(3):
        assert await store.retry_after("192.0.2.1") is None
        await store.record_failure("192.0.2.1")
    wait = await store.retry_after("192.0.2.1")
    assert wait is not None and 0 < wait <= 60
    assert await store.retry_after("192.0.2.2") is None


# --- what only a shared store does ------------------------------------------------


@pytest.fixture
async def two_nodes(postgres_dsn):
    a = PostgresStore(postgres_dsn, node("a"), failures=FailureLimiter(limit=3, window=60))
    b = PostgresStore(postgres_dsn, node("b"), failures=FailureLimiter(limit=3, window=60))
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


async def test_ports_are_leased_per_node(two_nodes):
    a, b = two_nodes
    await a.put_device(1, 0, "t1")
    await a.put_device(2, 0, "t2")
    assert await a.assign_port(1, "rtsp", 20000)
    assert not await a.assign_port(2, "rtsp", 20000)  # unique per node and port
    assert await b.assign_port(2, "rtsp", 20000)  # another node's port of the same number
    assert await a.port_for(1, "rtsp") == 20000 and await b.port_for(1, "rtsp") is None
    assert await a.ports_in_use() == await b.ports_in_use() == {20000}


async def test_a_device_has_one_holder_and_the_one_it_was_taken_from_is_told(two_nodes):
    a, b = two_nodes
    told_a: asyncio.Queue[int] = asyncio.Queue()
    a.on_device_changed(told_a.put_nowait)
    await a.put_device(1, 0, "t1")
    forwards = [{"name": "rtsp", "proxy_host": "127.0.0.1", "proxy_port": 20000}]
    assert await a.endpoint_for(1) is None and await b.endpoint_for(1) is None  # a tie: the node asked
    assert await a.claim(1, "p-a", forwards)
    assert await b.endpoint_for(1) == "a.test:8443"
    assert (await b.holding(1)).forwards == forwards and await a.holding(1) is None
    assert await a.counts() == (1, 1)

    assert await b.claim(1, "p-b", [])  # b takes it over
    assert await asyncio.wait_for(told_a.get(), 5) == 1
    assert await a.moved_away({1: "p-a"}) == [1]
    assert await a.endpoint_for(1) == "b.test:8443"
    await a.release(1, "p-a")  # a's late release does not undo b's holding
    assert (await a.holding(1)).node == "b"
    assert await a.counts() == (1, 1)


async def test_racing_claims_leave_exactly_one_holder(two_nodes):
    a, b = two_nodes
    await a.put_device(1, 0, "t1")
    await asyncio.gather(a.claim(1, "p-a", []), b.claim(1, "p-b", []))
    moved = await a.moved_away({1: "p-a"}), await b.moved_away({1: "p-b"})
    assert sorted(moved, key=len) == [[], [1]]


async def test_a_node_whose_heartbeat_expired_is_not_chosen(postgres_dsn):
    a = PostgresStore(postgres_dsn, node("a"), node_ttl=0.3)
    b = PostgresStore(postgres_dsn, node("b"), node_ttl=0.3)
    await a.open()
    await b.open()
    try:
        await a.put_device(1, 0, "t1")
        await a.put_device(2, 0, "t2")
        await a.claim(1, "p-a", [])
        assert await b.endpoint_for(1) == "a.test:8443"
        assert await b.endpoint_for(2) is None  # the least loaded node: b
        await asyncio.sleep(0.4)  # a misses its heartbeats; b keeps its own
        await b.heartbeat({})
        assert await b.endpoint_for(1) is None and await b.holding(1) is None
        assert await b.counts() == (2, 0)
        assert await a.heartbeat({1: "p-a"}) == []  # a is back, still holding 1
        assert await b.endpoint_for(1) == "a.test:8443"
    finally:
        await a.close()
        await b.close()


async def test_provisioning_failures_count_across_nodes(two_nodes):
    a, b = two_nodes
    await a.record_failure("192.0.2.1")
    await b.record_failure("192.0.2.1")
    assert await a.retry_after("192.0.2.1") is None
    await b.record_failure("192.0.2.1")
    assert await a.retry_after("192.0.2.1") is not None
