"""Where discovery may send its Probe: the unicast addresses a request names, or the
IPv4 interfaces to multicast on. The API validates with the same rules discovery obeys.

Both respect CAMGATE_PROBE_NETWORKS, the networks the gateway may reach out to (health
probes, ONVIF reads, discovery): a token holder cannot make the gateway scan elsewhere.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from camgate import config
from camgate.probe.net import Networks, parse_networks

log = logging.getLogger(__name__)

MAX_RANGE_PREFIX = 24  # a range scan covers at most a /24: 256 addresses
INTERFACES_VARIABLE = "CAMGATE_DISCOVERY_INTERFACES"


class TargetProblem(ValueError):
    """Why a requested address cannot be probed (said to the client)."""


@dataclass(frozen=True)
class MulticastInterface:
    name: str
    address: str  # its IPv4 address: the Probe goes out there, replies come back to it


def allowed_networks() -> Networks:
    try:
        return parse_networks(config.env_str("CAMGATE_PROBE_NETWORKS"))
    except ValueError as error:
        raise config.ConfigError(f"CAMGATE_PROBE_NETWORKS: {error}") from None


def inside(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Networks) -> bool:
    return not networks or any(address in network for network in networks if network.version == address.version)


def unicast_targets(text: str, networks: Networks) -> list[str]:
    """The addresses ``text`` names: one IPv4 address, or every host of an IPv4 CIDR
    range no larger than a /24, all inside ``networks``."""
    text = text.strip()
    try:
        network = ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise TargetProblem(
            f"{text[:60]!r} is not an IPv4 address or CIDR range (e.g. 192.168.1.64 or 192.168.1.0/24)."
        ) from None
    if network.prefixlen < MAX_RANGE_PREFIX:
        raise TargetProblem(f"A range may cover at most a /{MAX_RANGE_PREFIX} (256 addresses), not a /{network.prefixlen}.")
    hosts = [network.network_address] if network.prefixlen == 32 else list(network.hosts())
    outside = [host for host in hosts if not inside(host, networks)]
    if outside:
        raise TargetProblem(f"{outside[0]} is outside CAMGATE_PROBE_NETWORKS, which the gateway may not probe.")
    return [str(host) for host in hosts]


def multicast_interfaces(networks: Networks) -> list[MulticastInterface]:
    """Every IPv4 interface but loopback and link-local, or those CAMGATE_DISCOVERY_INTERFACES
    names (comma-separated); only addresses inside ``networks``."""
    import ifaddr

    wanted = {name.strip() for name in config.env_str(INTERFACES_VARIABLE).split(",") if name.strip()}
    found = []
    for adapter in ifaddr.get_adapters():
        if wanted and adapter.name not in wanted:
            continue
        for ip in adapter.ips:
            if not isinstance(ip.ip, str):
                continue  # IPv6: ONVIF discovery here is IPv4
            address = ipaddress.IPv4Address(ip.ip)
            if not wanted and (address.is_loopback or address.is_link_local):
                continue
            if inside(address, networks):
                found.append(MulticastInterface(adapter.name, str(address)))
    missing = wanted - {interface.name for interface in found}
    if missing:
        log.warning("%s names %s, which has no IPv4 address the gateway may probe from", INTERFACES_VARIABLE,
                    ", ".join(sorted(missing)))
    return found
