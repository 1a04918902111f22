"""WS-Discovery messages for ONVIF cameras, with no I/O: the Probe camgate sends, and
what it keeps of a reply.

The `wsdiscovery` library builds the Probe and reads ProbeMatch envelopes; the bytes of
a reply go through defusedxml first (no DTD, so no entity expansion and no external
entity), since anything on the LAN may answer, or send, what it likes. A reply counts
only when it relates to our Probe, says it is an ONVIF `NetworkVideoTransmitter`, and
fits the bounds below; anything else is ignored, never an error.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import asdict, dataclass, field
from xml.parsers.expat import ExpatError

import defusedxml.minidom
from defusedxml import DefusedXmlException
from wsdiscovery.actions import constructProbe, createProbeMessage, parseProbeMatchMessage
from wsdiscovery.namespaces import NS_ADDRESSING
from wsdiscovery.qname import QName

NVT_NAMESPACE = "http://www.onvif.org/ver10/network/wsdl"
NVT_TYPE = "NetworkVideoTransmitter"
# The WS-Discovery 2005/04 action is ProbeMatches; some cameras (ipycam among them) say
# ProbeMatch. Both carry the same body.
PROBE_MATCH_ACTIONS = frozenset({
    "http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches",
    "http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatch",
})
NAME_SCOPE = "onvif://www.onvif.org/name/"
HARDWARE_SCOPE = "onvif://www.onvif.org/hardware/"

# A real ProbeMatch is 1-4 KiB. What one reply may cost, at most:
MAX_REPLY_BYTES = 32 * 1024  # larger datagrams are dropped unread
MAX_ITEMS = 32  # XAddrs, and scopes, kept per device
MAX_ITEM_CHARS = 512  # longer XAddrs or scopes are dropped
MAX_LABEL_CHARS = 100  # name and hardware (a camera's name has room for 100)


@dataclass(frozen=True)
class DiscoveredDevice:
    ip: str  # the address the reply came from
    onvif_port: int  # of the device service XAddr on that address
    xaddrs: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)
    name: str = ""  # from the onvif://www.onvif.org/name/ scope, URL-decoded
    hardware: str = ""  # from the onvif://www.onvif.org/hardware/ scope

    def as_dict(self) -> dict:
        return asdict(self)


def probe_message() -> tuple[str, bytes]:
    """A Probe for ONVIF NetworkVideoTransmitters: (its MessageID, its bytes)."""
    envelope = constructProbe([QName(NVT_NAMESPACE, NVT_TYPE, "dn")], [])
    return envelope.getMessageId(), createProbeMessage(envelope).encode("utf-8")


def parse_probe_matches(data: bytes, source_ip: str, message_id: str) -> list[DiscoveredDevice]:
    """The ONVIF devices a reply from ``source_ip`` announces in answer to the Probe
    ``message_id``; empty for anything else, however malformed or hostile."""
    if len(data) > MAX_REPLY_BYTES:
        return []
    try:
        dom = defusedxml.minidom.parseString(data, forbid_dtd=True)
    except (DefusedXmlException, ExpatError, ValueError, UnicodeError):
        return []
    try:
        if _text(dom.getElementsByTagNameNS(NS_ADDRESSING, "Action")) not in PROBE_MATCH_ACTIONS:
            return []
        envelope = parseProbeMatchMessage(dom)
    except (IndexError, AttributeError, TypeError, ValueError):
        return []  # the library's parser assumes every element it reads is there
    finally:
        dom.unlink()
    if envelope.getRelatesTo() != message_id:
        return []  # an answer to someone else's Probe, or to none
    devices = []
    for match in envelope.getProbeResolveMatches()[:MAX_ITEMS]:
        if not any(t.getNamespace() == NVT_NAMESPACE and t.getLocalname() == NVT_TYPE for t in match.getTypes()):
            continue
        xaddrs = _bounded(xaddr for xaddr in match.getXAddrs() if _is_http_url(xaddr))
        scopes = _bounded(scope.getValue() for scope in match.getScopes())
        devices.append(DiscoveredDevice(
            ip=source_ip,
            onvif_port=_onvif_port(xaddrs, source_ip),
            xaddrs=xaddrs,
            scopes=scopes,
            name=_scope_label(scopes, NAME_SCOPE),
            hardware=_scope_label(scopes, HARDWARE_SCOPE),
        ))
    return devices


def _text(nodes) -> str:
    if not nodes or nodes[0].firstChild is None:
        return ""
    return (nodes[0].firstChild.data or "").strip()


def _bounded(items) -> list[str]:
    kept = []
    for item in items:
        if len(kept) == MAX_ITEMS:
            break
        if isinstance(item, str) and 0 < len(item) <= MAX_ITEM_CHARS and item.isprintable():
            kept.append(item)
    return kept


def _is_http_url(text: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _onvif_port(xaddrs: list[str], source_ip: str) -> int:
    """The port of the XAddr on the address that answered (cameras with several
    addresses list one XAddr each), else of the first XAddr, else HTTP's."""
    parsed = [urllib.parse.urlsplit(xaddr) for xaddr in xaddrs]
    for parts in sorted(parsed, key=lambda parts: not _same_address(parts.hostname, source_ip)):
        return parts.port or (443 if parts.scheme == "https" else 80)
    return 80


def _same_address(host: str | None, ip: str) -> bool:
    try:
        return ipaddress.ip_address(host or "") == ipaddress.ip_address(ip)
    except ValueError:
        return False


def _scope_label(scopes: list[str], prefix: str) -> str:
    for scope in scopes:
        if scope.lower().startswith(prefix):
            label = urllib.parse.unquote(scope[len(prefix):]).strip()
            return "".join(ch for ch in label if ch.isprintable())[:MAX_LABEL_CHARS]
    return ""
