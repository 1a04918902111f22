"""The relay's state file is written off the event loop, one write for many changes,
and a device is on disk before its token is handed out."""

from __future__ import annotations

import asyncio
import json
import os

from camgate.uplink.store.file import FileStore


def count_writes(monkeypatch, path) -> list[int]:
    writes: list[int] = []
    replace = os.replace

    def counting(src, dst, *args, **kwargs):
        if os.fspath(dst) == os.fspath(path):
            writes.append(1)
        return replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", counting)
    return writes


async def test_a_thousand_ports_leased_at_once_cost_a_few_writes_and_all_reach_the_file(tmp_path, monkeypatch):
    path = tmp_path / "relay.json"
    store = FileStore(path)
    await asyncio.gather(*(store.put_device(camid, 0, f"token-{camid}") for camid in range(1, 501)))
    writes = count_writes(monkeypatch, path)

    async def connect(camid: int) -> None:  # what the relay does for each new tunnel
        await store.hold_forwards(camid, ["rtsp", "http"])
        await store.assign_port(camid, "rtsp", 20000 + 2 * camid)
        await store.assign_port(camid, "http", 20001 + 2 * camid)

    await asyncio.gather(*(connect(camid) for camid in range(1, 501)))
    await store.close()
    assert 1 <= len(writes) <= 5
    ports = json.loads(path.read_text())["ports"]
    assert len(ports) == 1000 and ports["500/http"] == 21001


async def test_a_device_is_on_disk_when_put_device_returns(tmp_path):
    path = tmp_path / "relay.json"
    store = FileStore(path)
    await asyncio.gather(*(store.put_device(camid, 0, f"token-{camid}") for camid in (1, 2, 3)))
    assert [d["camid"] for d in json.loads(path.read_text())["devices"]] == [1, 2, 3]
    assert await store.remove_device(2)
    assert [d["camid"] for d in json.loads(path.read_text())["devices"]] == [1, 3]
