"""Discovery survives what a hostile host on the LAN may send back to its Probe: real UDP
sockets on loopback answer a range scan, one with malformed XML, an entity bomb, a 64 KiB
datagram, non-ONVIF and foreign replies and then a flood of 10 000, the other honestly."""

from __future__ import annotations

import asyncio
import ipaddress
import random
import re
import socket
import threading
from contextlib import contextmanager

from camgate.onvif.discovery import MAX_REPLIES_PER_SENDER, WS_DISCOVERY_PORT, discover
from tests.support.ws_discovery import hostile_replies, probe_match

FLOOD = 10_000


@contextmanager
def responder(ip: str, replies):
    """A socket on ``ip``:3702 that answers the n-th Probe it gets (n = 0, 1...) with
    ``replies(message_id, n)``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((ip, WS_DISCOVERY_PORT))
    sock.settimeout(0.05)  # to see `stopping` soon: closing it would not wake recvfrom
    answered, stopping = threading.Event(), threading.Event()

    def answer():
        n = 0
        while not stopping.is_set():
            try:
                data, sender = sock.recvfrom(65536)
            except TimeoutError:
                continue
            message_id = re.search(rb"<a:MessageID>([^<]+)</a:MessageID>", data).group(1).decode()
            for reply in replies(message_id, n):
                sock.sendto(reply, sender)
            answered.set()
            n += 1

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield answered
    finally:
        stopping.set()
        thread.join(timeout=10)
        sock.close()


def test_a_range_scan_survives_a_hostile_neighbour_and_finds_the_camera():
    # A /30 of loopback no other test uses (the port is WS-Discovery's own, 3702).
    block = ipaddress.IPv4Network((random.randrange(0x7F010000, 0x7FFF0000) & ~3, 30))
    hostile_ip, camera_ip = map(str, block.hosts())

    def hostile(message_id, n):
        if n == 0:
            yield from hostile_replies(message_id, hostile_ip).values()
            for i in range(FLOOD):
                yield probe_match(message_id, f"http://{hostile_ip}:{20000 + i}/onvif/device_service")

    def honest(message_id, n):
        # Every time, as cameras do: a flood may drown one answer, and discovery asks twice.
        yield probe_match(message_id, f"http://{camera_ip}/onvif/device_service", "onvif://www.onvif.org/name/Gate")

    with responder(hostile_ip, hostile) as flooded, responder(camera_ip, honest) as answered:
        devices = asyncio.run(discover(timeout=1.0, address=str(block)))
        assert flooded.is_set() and answered.is_set()
    from_camera = [device for device in devices if device.ip == camera_ip]
    from_hostile = [device for device in devices if device.ip == hostile_ip]
    assert [(device.onvif_port, device.name) for device in from_camera] == [(80, "Gate")]
    # Of the hostile host's replies only well-formed flood ones counted, and few of them.
    assert len(from_hostile) <= MAX_REPLIES_PER_SENDER - len(hostile_replies("", hostile_ip))
    assert all(device.onvif_port >= 20000 for device in from_hostile)
