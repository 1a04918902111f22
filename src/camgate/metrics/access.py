"""Who may read ``/metrics`` without a token: an allow list of addresses and networks.

Shared by the gateway and the relay, so both read their lists the same way. No Django
and no aiohttp here.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

from camgate.config import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = ("127.0.0.1", "::1")


def parse_allow_list(variable: str, entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR networks, e.g. ``127.0.0.1, 10.1.0.0/16``; ConfigError names
    the variable and the entry that is neither."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"{variable}: {entry!r} is not an IP address or network") from None
    return tuple(networks)


def address_allowed(address: str | None, networks: Iterable[Network]) -> bool:
    try:
        peer = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return False
    # A server bound to [::] sees IPv4 clients as ::ffff:a.b.c.d.
    candidates = [peer]
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        candidates.append(peer.ipv4_mapped)
    return any(candidate in network for candidate in candidates for network in networks)
