"""`camgate relay` under a low open-files limit, flooded with idle connections: it raises
its soft limit to the hard one, keeps serving API calls, tunnels and viewers, and logs
repeated errors at a bounded rate. Real processes, real limits (set in the child before
it starts), real sockets on loopback."""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from camgate.uplink.client import TunnelClient, TunnelState
from camgate.uplink.protocol import Forward
from tests.support.processes import camgate_env, free_port, stop_process_group

from .loopback import ADMIN_TOKEN, FAST_BACKOFF, FAST_SLOW_RETRY, spec_for, wait_until

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ACCEPT_FAILED = "out of system resource"  # asyncio's words when accept() finds no descriptor


@pytest.fixture
def many_files():
    """Let this test process hold a few thousand sockets of its own."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def start_relay(args: list[str], tmp_path: Path, nofile: tuple[int, int]) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "relay.log"
    process = subprocess.Popen(
        args, env=camgate_env(tmp_path / "data", CAMGATE_RELAY_ADMIN_TOKEN=ADMIN_TOKEN),
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile),
    )
    return process, log


async def api_status(base: str, timeout: float = 5.0) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        async with http.get(f"{base}/api/devices", headers=ADMIN) as resp:
            return resp.status


async def wait_for_api(base: str) -> None:
    async def answers() -> bool:
        try:
            return await api_status(base, 1) == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    for _ in range(150):
        if await answers():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the relay at {base} never answered")


async def open_idle(port: int, count: int) -> list[asyncio.StreamWriter]:
    """Open up to ``count`` connections that say nothing (stop at the first that hangs)."""
    writers = []
    for _ in range(count):
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
        except (OSError, asyncio.TimeoutError):
            break
        writers.append(writer)
    return writers


def soft_open_files_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-files line in /proc/PID/limits")


async def test_a_thousand_idle_connections_do_not_stop_tunnels_api_or_viewers(tmp_path, many_files, camera):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Hard limit 256, started at a soft 128: the relay must raise its own soft limit,
    # and then 1000 idle connections are four times what it may have open.
    process, log = start_relay(
        [sys.executable, "-m", "camgate.cli", "relay", "--host", "127.0.0.1", "--port", str(port),
         "--port-range", f"{port + 1}-{port + 20}", "--state", str(tmp_path / "state.json")],
        tmp_path, (128, 256),
    )
    client = None
    idle: list[asyncio.StreamWriter] = []
    try:
        await wait_for_api(base)
        assert soft_open_files_limit(process.pid) == 256

        idle = await open_idle(port, 1000)
        assert len(idle) == 1000  # each was accepted (older ones are pushed out, not refused)

        started = time.monotonic()
        assert await api_status(base) == 200
        print(f"\nrelay API answered in {(time.monotonic() - started) * 1000:.0f} ms with {len(idle)} idle"
              " connections opened against a 256-file limit")
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/api/devices", json={"camid": 4001}, headers=ADMIN) as resp:
                assert resp.status == 201
                token = (await resp.json())["access_token"]
        cam = await camera()
        client = TunnelClient(spec_for(token, Forward("rtsp", "tcp", "127.0.0.1", cam.port)),
                              backoff=FAST_BACKOFF, slow_retry=FAST_SLOW_RETRY)
        client.start()
        await wait_until(lambda: client.status.state is TunnelState.UP and client.status.endpoints, 10,
                         "the tunnel to come up")
        print(f"a tunnel came up {time.monotonic() - started:.2f} s after that call")
        reader, writer = await asyncio.open_connection("127.0.0.1", client.status.endpoints[0].proxy_port)
        writer.write(b"a viewer gets through")
        assert await asyncio.wait_for(reader.readexactly(21), 5) == b"a viewer gets through"
        writer.close()
    finally:
        if client is not None:
            await client.stop()
        for writer in idle:
            writer.transport.abort()
        stop_process_group(process)
    text = log.read_text()
    assert "Too many open files" not in text and ACCEPT_FAILED not in text


RELAY_WITH_ONE_SECOND_LOG_WINDOW = """
import asyncio, logging, sys
from camgate.log_rate import RepeatCounter, limit_repeated_errors
from camgate.uplink.relay import RelayConfig, start_relay

async def main():
    limit_repeated_errors(RepeatCounter(burst=BURST, window=1.0))
    await start_relay(RelayConfig(port=int(sys.argv[1]), port_range=None, admin_token=sys.argv[2]))
    await asyncio.Event().wait()

logging.basicConfig(level=logging.INFO)
asyncio.run(main())
"""
BURST = 5


def accept_failures(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if ACCEPT_FAILED in line]


async def test_viewers_using_up_descriptors_get_accept_errors_logged_at_a_bounded_rate(tmp_path, many_files, camera):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    code = RELAY_WITH_ONE_SECOND_LOG_WINDOW.replace("BURST", str(BURST))
    process, log = start_relay([sys.executable, "-c", code, str(port), ADMIN_TOKEN], tmp_path, (64, 64))
    client = None
    viewers: list[asyncio.StreamWriter] = []
    try:
        await wait_for_api(base)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/api/devices", json={"camid": 4002}, headers=ADMIN) as resp:
                token = (await resp.json())["access_token"]
        cam = await camera()
        client = TunnelClient(spec_for(token, Forward("rtsp", "tcp", "127.0.0.1", cam.port)),
                              backoff=FAST_BACKOFF, slow_retry=FAST_SLOW_RETRY)
        client.start()
        await wait_until(lambda: client.status.endpoints and client.status.state is TunnelState.UP, 10, "the tunnel")
        # Far more viewers than 64 descriptors: asyncio's accept() on the public port
        # fails, and asyncio logs each failure, many a second, with a traceback.
        viewers = await open_idle(client.status.endpoints[0].proxy_port, 300)
        held_back = "were not logged"
        await wait_until(lambda: sum(held_back in line for line in accept_failures(log)) >= 2, 15,
                         "repeated accept() failures to be held back")
        for writer in viewers:
            writer.transport.abort()
        await wait_for_api(base)  # and it serves again once the descriptors are back
    finally:
        if client is not None:
            await client.stop()
        for writer in viewers:
            writer.transport.abort()
        stop_process_group(process)
    # Each window opens with one line (saying how many were held back), then at most
    # BURST - 1 more: never the hundreds a second asyncio would log on its own.
    runs, run = [], 0
    for line in accept_failures(log):
        if held_back in line:
            runs.append(run)
            run = 0
        run += 1
    assert max([*runs, run]) <= BURST, [*runs, run]
