"""The agent's probe scheduler: who is probed when, how many at once, and what is
reported. The probe itself is replaced by a recorder here (tests/probe/ runs the real
one against real sockets); everything else is the real scheduler on a real loop."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from camgate.agent.health_store import fingerprint
from camgate.agent.prober import SETTINGS_CHANGED, ProbeSettings, Prober
from camgate.probe.net import ProbeTarget
from camgate.probe.result import HealthState, ProbeResult, VideoFacts

TARGET = ProbeTarget("10.0.0.5", 554, 80, username="admin", password="pw")


class RecordingProbe:
    def __init__(self, result=ProbeResult(HealthState.OK, video=VideoFacts("H.264", 640, 480)), hold=False):
        self.result, self.calls, self.running, self.most_at_once = result, [], 0, 0
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    async def __call__(self, target, timeout, networks):
        self.calls.append((asyncio.get_running_loop().time(), target))
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


async def until(predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.005)


@pytest.fixture
async def running():
    tasks, probers = [], []

    def start(prober):
        tasks.append(asyncio.create_task(prober.run()))
        probers.append(prober)
        return prober

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for prober in probers:  # its probes still running, without writing anything
        prober._pending.clear()
        prober._forget.clear()
        await prober.close()


async def test_new_cameras_are_probed_at_once_and_reported(running):
    probe = RecordingProbe()
    prober = running(Prober(ProbeSettings(interval=60), probe=probe))
    prober.update_targets({1: TARGET, 2: replace(TARGET, host="10.0.0.6")})
    await until(lambda: len(prober._pending) == 2)
    record = prober._pending[1]
    assert (record.state, record.video, record.fingerprint) == ("ok", {"codec": "H.264", "width": 640, "height": 480, "fps": None}, fingerprint(TARGET))
    assert record.checked_at is not None and record.auth_failed_at is None


async def test_at_most_concurrency_probes_at_once(running):
    probe = RecordingProbe(hold=True)
    prober = running(Prober(ProbeSettings(interval=60, concurrency=3), probe=probe))
    prober.update_targets({i: replace(TARGET, host=f"10.0.1.{i}") for i in range(10)})
    await until(lambda: probe.running == 3)
    probe.release.set()
    await until(lambda: len(prober._pending) == 10)
    assert probe.most_at_once == 3


async def test_an_unchanged_camera_waits_for_its_interval(running):
    probe = RecordingProbe()
    prober = running(Prober(ProbeSettings(interval=0.3), probe=probe))
    prober.update_targets({1: TARGET})
    prober.update_targets({1: TARGET})  # the agent's periodic pass: nothing changed
    await until(lambda: len(probe.calls) == 2)
    assert probe.calls[1][0] - probe.calls[0][0] >= 0.3


async def test_an_edit_of_what_the_probe_uses_is_probed_at_once(running):
    probe = RecordingProbe()
    prober = running(Prober(ProbeSettings(interval=3600), probe=probe))  # only an edit can bring a second probe
    prober.update_targets({1: TARGET})
    await until(lambda: len(probe.calls) == 1 and 1 in prober._pending)
    prober.update_targets({1: replace(TARGET, password="new")})
    assert prober._pending[1].reason == SETTINGS_CHANGED and prober._pending[1].state == "unknown"
    await until(lambda: len(probe.calls) == 2)
    assert probe.calls[1][1].password == "new"


async def test_a_wrong_password_is_not_tried_again_before_the_interval(running):
    probe = RecordingProbe(ProbeResult(HealthState.AUTH_FAILED, "refused"))
    prober = running(Prober(ProbeSettings(interval=0.4), probe=probe))
    prober.update_targets({1: TARGET})
    for _ in range(5):  # the agent's passes and pokes keep coming
        prober.update_targets({1: TARGET})
        await asyncio.sleep(0)
    await until(lambda: len(probe.calls) == 3)
    gaps = [later[0] - earlier[0] for earlier, later in zip(probe.calls, probe.calls[1:])]
    assert min(gaps) >= 0.4
    assert prober._pending[1].auth_failed_at == prober._pending[1].checked_at


async def test_a_restarted_agent_keeps_the_back_off_of_a_failed_login(running):
    probe = RecordingProbe()
    prober = Prober(ProbeSettings(interval=0.5), probe=probe)
    failed_at = datetime.now(timezone.utc) - timedelta(seconds=0.2)
    prober._past_failures = {1: (fingerprint(TARGET), failed_at), 2: ("other settings", failed_at)}
    running(prober)
    started = asyncio.get_running_loop().time()
    other = replace(TARGET, host="10.0.0.6")
    prober.update_targets({1: TARGET, 2: other})
    assert prober._pending[1].state == "auth_failed" and "not tried again before" in prober._pending[1].reason
    await until(lambda: len(probe.calls) == 2)
    # Camera 2's settings changed since its failure: probed at once, before camera 1,
    # which waits for the rest of its interval.
    assert [call[1] for call in probe.calls] == [other, TARGET]
    assert probe.calls[1][0] - started >= 0.25


async def test_a_removed_camera_is_forgotten_and_its_probe_cancelled(running):
    probe = RecordingProbe(hold=True)
    prober = running(Prober(ProbeSettings(interval=60), probe=probe))
    prober.update_targets({1: TARGET})
    await until(lambda: probe.running == 1)
    prober.update_targets({})
    await until(lambda: probe.running == 0)
    assert prober._forget == {1} and 1 not in prober._pending


async def test_a_probe_that_raises_costs_one_report_not_the_prober(running):
    probe = RecordingProbe(RuntimeError("bug"))
    prober = running(Prober(ProbeSettings(interval=60), probe=probe))
    prober.update_targets({1: TARGET})
    await until(lambda: 1 in prober._pending)
    assert prober._pending[1].state == "error"
    probe.result = ProbeResult(HealthState.OK)
    prober.update_targets({1: replace(TARGET, rtsp_path="/x")})
    await until(lambda: prober._pending[1].state == "ok")


def test_the_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("CAMGATE_PROBE_INTERVAL", "7")
    assert ProbeSettings.from_environment().interval == 7.0
    monkeypatch.setenv("CAMGATE_PROBE_INTERVAL", "0")
    with pytest.raises(ValueError, match="at least 1"):
        ProbeSettings.from_environment()
    monkeypatch.delenv("CAMGATE_PROBE_INTERVAL")
    assert ProbeSettings.from_environment().interval == 30.0
    monkeypatch.setenv("CAMGATE_PROBE_NETWORKS", "127.0.0.0/8, ::1")
    assert [str(n) for n in ProbeSettings.from_environment().networks] == ["127.0.0.0/8", "::1/128"]
    monkeypatch.setenv("CAMGATE_PROBE_NETWORKS", "10.0.0.0/33")
    with pytest.raises(ValueError, match="CAMGATE_PROBE_NETWORKS"):
        ProbeSettings.from_environment()


async def test_the_prober_stops_when_cancelled_as_a_probe_wakes_it():
    # Python 3.11's wait_for swallows a cancellation that lands as its event is set;
    # the agent's shutdown then waited for the prober for ever.
    prober = Prober(ProbeSettings(interval=3600), probe=RecordingProbe())
    task = asyncio.create_task(prober.run())
    await asyncio.sleep(0.01)  # the prober waits for its next camera
    prober._wake.set()  # a probe just ended...
    task.cancel()  # ...as the agent stops
    with pytest.raises(asyncio.CancelledError):  # not TimeoutError: it did stop
        async with asyncio.timeout(5):
            await task
