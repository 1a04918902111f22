"""Benchmark 5: resident memory (VmRSS) of the real `camgate agent` process with 0 and
then more cameras, all their tunnels up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from bench.common import Context, note, vm_kib
from bench.report import Row, fmt_difference, fmt_mib, fmt_seconds
from tests.support.processes import camgate_env, camgate_process

CAMERA_COUNTS = {"full": (100, 500), "quick": (100,), "smoke": (5,)}  # by ctx.size


def run(ctx: Context) -> list[Row]:
    return asyncio.run(bench_memory(CAMERA_COUNTS[ctx.size], ctx))


def insert_cameras(env: dict, tokens: list[str], tmp: Path) -> None:
    """Add active cameras through the Django ORM, in camgate's own process setup."""
    tokens_file = tmp / "tokens.json"
    tokens_file.write_text(json.dumps(tokens))
    code = (
        "import json, os\n"
        "from django.db import transaction\n"
        "from camgate.cameras.models import Camera\n"
        "with transaction.atomic():\n"
        "    for token in json.load(open(os.environ['BENCH_TOKENS_FILE'])):\n"
        "        Camera(ip='127.0.0.1', http_port=80, rtsp_port=554, enabled=True, access_token=token).save()\n"
    )
    subprocess.run(
        [sys.executable, "-m", "camgate.cli", "shell", "-c", code], env={**env, "BENCH_TOKENS_FILE": str(tokens_file)},
        check=True, timeout=120, stdout=subprocess.DEVNULL,
    )
    tokens_file.unlink()


def poke_agent(sock_path: Path) -> None:
    from camgate.agent.control import send_command_to

    send_command_to(sock_path, "reconcile", timeout=5)


def tunnels_up(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        return conn.execute(
            "SELECT COUNT(*) FROM cameras_tunnelstatus WHERE state = 'up' AND camera_id IS NOT NULL"
        ).fetchone()[0]


async def bench_memory(counts: tuple[int, ...], ctx: Context) -> list[Row]:
    tmp = ctx.tmp
    from camgate.uplink.relay import RelayConfig, start_relay

    relay = await start_relay(RelayConfig(host="127.0.0.1", port=0, admin_token=secrets.token_hex(16), port_range=None))
    data = tmp / "agent-data"
    env = camgate_env(
        data, CAMGATE_UPLINK_HOST=relay.public_address, CAMGATE_UPLINK_TLS="false",
        CAMGATE_GATEWAY_TUNNEL="false", CAMGATE_PROVISIONING_URL=relay.url,
        DJANGO_SETTINGS_MODULE="camgate.settings",  # as deployed, not the tests' fast settings
    )
    rows: list[Row] = []
    try:
        note("5. migrating a fresh data directory")
        await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "camgate.cli", "migrate", "--verbosity", "0"],
            env=env, check=True, timeout=120, stdout=subprocess.DEVNULL,
        )
        tokens = [relay.register_device(100_000 + i, 1)[0].access_token for i in range(max(counts))]
        with camgate_process(["agent", "--no-prepare"], env, tmp / "agent.log") as agent:
            sock_path = data / "agent.sock"
            async with asyncio.timeout(30):
                while not sock_path.exists():
                    await asyncio.sleep(0.05)
            settle = 0.2 if ctx.smoke else 2.0  # for the heap to settle before a reading
            await asyncio.sleep(settle)
            baseline = vm_kib(agent.pid, "VmRSS") * 1024
            # Mapped files (libpython, OpenSSL, C extensions' code) count in RSS too,
            # though their pages are shared with any other process that maps them.
            files = vm_kib(agent.pid, "RssFile") * 1024
            rows.append(Row("5", "agent RSS, 0 cameras (idle)", f"{fmt_mib(baseline)} ({fmt_mib(files)} of it mapped files)"))
            have = 0
            for count in counts:
                note(f"5. agent with {count} cameras")
                await asyncio.to_thread(insert_cameras, env, tokens[have:count], tmp)
                have = count
                started = time.perf_counter()
                await asyncio.to_thread(poke_agent, sock_path)
                async with asyncio.timeout(120):
                    while await asyncio.to_thread(tunnels_up, data / "camgate.sqlite3") < count:
                        if agent.poll() is not None:
                            raise RuntimeError("the agent died")
                        await asyncio.sleep(0.05)
                took = time.perf_counter() - started
                await asyncio.sleep(settle)
                rss = vm_kib(agent.pid, "VmRSS") * 1024
                peak = vm_kib(agent.pid, "VmHWM") * 1024
                per_camera = (rss - baseline) / count / 1024
                rows.append(Row(
                    "5", f"agent RSS, {count} cameras, all {count} tunnels up (reported up in {fmt_seconds(took)})",
                    f"{fmt_mib(rss)} (peak {fmt_mib(peak)})", fmt_mib(baseline) + " (0 cameras)",
                    f"{fmt_difference(rss, baseline, 'MiB')} ({per_camera:.0f} KiB/camera)",
                ))
            if len(relay.tunnels) != max(counts):
                raise RuntimeError(f"the relay holds {len(relay.tunnels)} tunnels, expected {max(counts)}")
    finally:
        await relay.close()
    return rows

