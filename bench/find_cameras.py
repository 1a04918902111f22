#!/usr/bin/env python3
"""ONVIF discovery and device facts against a real virtual camera, printed as a table.

    sudo python3 bench/find_cameras.py            20 reads and probes each
    sudo python3 bench/find_cameras.py --quick    5

Root, for the camera's network namespace (tests/support/onvif_camera.py: ipycam with
WS-Security on, its clock an hour off). Times one read of the camera's facts (the first
in the process, which imports the ONVIF client and loads its WSDL, then warm ones),
a Probe of the camera's address (ended by its answer) and of a silent address (ended by
its refusal; a Probe without that waits out its timeout, as wsdiscovery's
searchServices does), and the cost of a reply: parsing an honest ProbeMatch, refusing
an entity bomb, and a flood of 10 000 replies from one sender.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from bench.report import Row, fmt_seconds, format_table, median, percentile  # noqa: E402
from camgate.onvif.device import read_device  # noqa: E402
from camgate.onvif.discovery import Collector, discover  # noqa: E402
from camgate.onvif.probe_match import parse_probe_matches  # noqa: E402
from tests.support.onvif_camera import onvif_camera  # noqa: E402
from tests.support.ws_discovery import hostile_replies, probe_match  # noqa: E402

USERNAME, PASSWORD = "operator", "bench-Pa55"
FLOOD = 10_000


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def spread(samples: list[float]) -> str:
    return f"{fmt_seconds(median(samples))} (p90 {fmt_seconds(percentile(samples, 90))})"


def camera_rows(runs: int) -> list[Row]:
    with onvif_camera(USERNAME, PASSWORD, clock_offset=3600) as camera:
        def read():
            asyncio.run(read_device(camera.ip, camera.onvif_port, USERNAME, PASSWORD))

        cold = timed(read)
        warm = [timed(read) for _ in range(runs)]
        found = [timed(lambda: asyncio.run(discover(timeout=3, address=camera.ip))) for _ in range(runs)]
        silent = [timed(lambda: asyncio.run(discover(timeout=3, address=camera.host_ip))) for _ in range(runs)]
    return [
        Row("1", "read a camera's facts, first in the process", fmt_seconds(cold)),
        Row("1", "read a camera's facts, median", spread(warm)),
        Row("2", "Probe one address: the camera answers", spread(found), "3 s", "ends at the answer"),
        Row("2", "Probe one address: nothing there", spread(silent), "3 s", "ends at the refusal"),
    ]


def parsing_rows(runs: int) -> list[Row]:
    message_id = "urn:uuid:bench"
    honest = probe_match(message_id, "http://192.168.1.64/onvif/device_service", "onvif://www.onvif.org/name/Cam")
    bomb = hostile_replies(message_id, "192.168.1.64")["billion laughs"]
    per_reply = [timed(lambda: parse_probe_matches(honest, "192.168.1.64", message_id)) for _ in range(runs * 50)]
    per_bomb = [timed(lambda: parse_probe_matches(bomb, "192.168.1.64", message_id)) for _ in range(runs * 50)]

    def flood():
        collector = Collector(message_id)
        for i in range(FLOOD):
            collector.reply(probe_match(message_id, f"http://192.168.1.64:{1000 + i}/x"), "192.168.1.64")

    return [
        Row("3", "parse one honest ProbeMatch", f"{median(per_reply) * 1e6:.0f} µs"),
        Row("3", "refuse one entity bomb", f"{median(per_bomb) * 1e6:.0f} µs"),
        Row("3", f"{FLOOD} replies from one sender (16 parsed)", fmt_seconds(timed(flood)),
            "", "building the replies included"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    runs = 5 if parser.parse_args().quick else 20
    print(format_table(camera_rows(runs) + parsing_rows(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
