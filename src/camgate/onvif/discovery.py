"""Finding ONVIF cameras: a WS-Discovery Probe, and the answers gathered for a bounded time.

Without an address the Probe is multicast to 239.255.255.250:3702 from every IPv4
interface (see targets.py); with one, it is sent to that address, or to every address
of a range, on UDP port 3702 (multicast crosses neither a Docker bridge network nor many
managed switches; a directed Probe does). Replies come back to the socket that sent the
Probe, so nothing here listens on 3702 and scans never collide with a camera or with
each other.

What any host on the LAN can make a scan cost is bounded: the time (the timeout, at
most 10 s), the replies parsed per sender and in all, the devices kept, and each
reply's size and content (probe_match.py). A probe of one address ends as soon as that
address has answered or refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections import Counter

from camgate.onvif.probe_match import DiscoveredDevice, parse_probe_matches, probe_message
from camgate.onvif.targets import allowed_networks, multicast_interfaces, unicast_targets

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 3.0
MAX_TIMEOUT = 10.0
MULTICAST_GROUP = ("239.255.255.250", 3702)
WS_DISCOVERY_PORT = 3702
MAX_DEVICES = 1024
MAX_REPLIES_PER_SENDER = 16  # cameras repeat their answer a few times; floods stop here
MAX_REPLIES = 8192  # parsed in one scan, from all senders together
REPEAT_AFTER = 0.25  # UDP may drop the Probe, or an answer: send it a second time, once
RECEIVE_BUFFER_BYTES = 1024 * 1024


class Collector:
    """The replies to one Probe, from any number of sockets, within the bounds."""

    def __init__(self, message_id: str, expected: set[str] | None = None) -> None:
        self.message_id = message_id
        self.devices: dict[tuple[str, int], DiscoveredDevice] = {}
        self.per_sender: Counter = Counter()
        self.parsed = 0
        self.dropped = 0
        # A probe of known addresses is over when each has answered or refused.
        self.pending = set(expected) if expected else None
        self.done = asyncio.Event()

    def reply(self, data: bytes, sender: str) -> None:
        if self.per_sender[sender] >= MAX_REPLIES_PER_SENDER or self.parsed >= MAX_REPLIES:
            self.dropped += 1
            return
        self.per_sender[sender] += 1
        self.parsed += 1
        for device in parse_probe_matches(data, sender, self.message_id):
            if len(self.devices) >= MAX_DEVICES:
                self.dropped += 1
                break
            self.devices.setdefault((device.ip, device.onvif_port), device)
            self._settled(sender)

    def refused(self, address: str) -> None:
        self._settled(address)

    def _settled(self, address: str) -> None:
        if self.pending is not None:
            self.pending.discard(address)
            if not self.pending:
                self.done.set()

    def result(self) -> list[DiscoveredDevice]:
        return sorted(self.devices.values(), key=lambda d: (ipaddress.ip_address(d.ip), d.onvif_port))


class _ReplyProtocol(asyncio.DatagramProtocol):
    def __init__(self, collector: Collector, peer: str | None = None) -> None:
        self.collector = collector
        self.peer = peer  # the one address a connected socket talks to

    def datagram_received(self, data: bytes, addr) -> None:
        self.collector.reply(data, addr[0])

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on a connected socket: nothing listens on 3702 there.
        if self.peer is not None and isinstance(exc, ConnectionRefusedError):
            self.collector.refused(self.peer)


async def discover(timeout: float = DEFAULT_TIMEOUT, address: str | None = None) -> list[DiscoveredDevice]:
    """The ONVIF devices that answer a Probe within ``timeout`` seconds (at most 10):
    multicast on every interface, or unicast to ``address`` (an IPv4 address, or a CIDR
    range no larger than a /24). Raises targets.TargetProblem for an address it may not
    probe, ValueError for a timeout out of range."""
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ValueError(f"The timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds.")
    networks = allowed_networks()
    message_id, probe = probe_message()
    loop = asyncio.get_running_loop()
    transports: list[asyncio.DatagramTransport] = []
    try:
        if address is None:
            collector = Collector(message_id)
            destinations = await _multicast_sockets(loop, collector, transports, networks)
        else:
            targets = unicast_targets(address, networks)
            single = len(targets) == 1
            collector = Collector(message_id, expected=set(targets) if single else None)
            destinations = await _unicast_sockets(loop, collector, transports, targets)
        if not destinations:
            return []  # nowhere to send it: no answer can come
        await _probe_and_wait(loop, collector, destinations, probe, timeout)
    finally:
        for transport in transports:
            transport.close()
    if collector.dropped:
        log.info("discovery: %d replies ignored (over the bounds of one scan)", collector.dropped)
    return collector.result()


def _udp_socket(setup) -> socket.socket:
    """A non-blocking UDP socket with room for a burst of answers, after ``setup(sock)``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        # The kernel caps it at net.core.rmem_max; the default (~200 KiB) holds fewer
        # answers than a /24 of cameras sends at once, and the excess would be lost.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        setup(sock)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def _endpoint(loop, transports, protocol, sock) -> asyncio.DatagramTransport:
    transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
    transports.append(transport)
    return transport


async def _multicast_sockets(loop, collector, transports, networks) -> list[tuple]:
    destinations = []
    for interface in multicast_interfaces(networks):
        def setup(sock, address=interface.address):
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)  # this LAN only
            sock.bind((address, 0))

        try:
            sock = _udp_socket(setup)
        except OSError as error:
            log.warning("discovery: cannot probe from %s (%s): %s", interface.name, interface.address, error)
            continue
        destinations.append((await _endpoint(loop, transports, _ReplyProtocol(collector), sock), MULTICAST_GROUP))
    return destinations


async def _unicast_sockets(loop, collector, transports, targets: list[str]) -> list[tuple]:
    if len(targets) == 1:
        # Connected, so that a refusal (ICMP port unreachable) comes back to it.
        (target,) = targets
        try:
            sock = _udp_socket(lambda sock: sock.connect((target, WS_DISCOVERY_PORT)))
        except OSError as error:  # no route there: nothing can answer
            log.info("discovery: cannot probe %s: %s", target, error)
            return []
        return [(await _endpoint(loop, transports, _ReplyProtocol(collector, peer=target), sock), None)]
    sock = _udp_socket(lambda sock: sock.bind(("0.0.0.0", 0)))
    transport = await _endpoint(loop, transports, _ReplyProtocol(collector), sock)
    return [(transport, (target, WS_DISCOVERY_PORT)) for target in targets]


async def _probe_and_wait(loop, collector: Collector, destinations, probe: bytes, timeout: float) -> None:
    deadline = loop.time() + timeout
    for attempt in range(2):
        for transport, destination in destinations:
            try:
                transport.sendto(probe, destination)
            except OSError as error:  # e.g. no route from this interface: the others still count
                log.debug("discovery: cannot send the Probe to %s: %s", destination, error)
        wait = deadline - loop.time() if attempt else min(REPEAT_AFTER, deadline - loop.time())
        try:
            async with asyncio.timeout(max(0.0, wait)):
                await collector.done.wait()
            return
        except TimeoutError:
            if loop.time() >= deadline:
                return
