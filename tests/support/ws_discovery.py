"""WS-Discovery replies for tests, honest and hostile, as the bytes a device would send."""

from __future__ import annotations

from xml.sax.saxutils import escape

NVT_TYPES = "dn:NetworkVideoTransmitter tds:Device"


def probe_match(relates_to: str, xaddrs: str, scopes: str = "", types: str = NVT_TYPES,
                action: str = "ProbeMatches", doctype: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{doctype}'
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
        'xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">'
        f"<s:Header><a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/{action}</a:Action>"
        "<a:MessageID>urn:uuid:11111111-2222-3333-4444-555555555555</a:MessageID>"
        f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo></s:Header>"
        "<s:Body><d:ProbeMatches><d:ProbeMatch>"
        "<a:EndpointReference><a:Address>urn:uuid:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee</a:Address></a:EndpointReference>"
        f"<d:Types>{types}</d:Types><d:Scopes>{scopes}</d:Scopes><d:XAddrs>{xaddrs}</d:XAddrs>"
        "<d:MetadataVersion>1</d:MetadataVersion>"
        "</d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"
    ).encode()


BILLION_LAUGHS = (
    '<!DOCTYPE s:Envelope [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{"&lol{};".format(i - 1 if i > 1 else "") * 10}">' for i in range(1, 10))
    + "]>"
)


def hostile_replies(relates_to: str, ip: str) -> dict[str, bytes]:
    """Each a reply that must be ignored, named for what is wrong with it."""
    device = f"http://{ip}:8080/onvif/device_service"
    return {
        "malformed XML": probe_match(relates_to, device)[:-40] + b"<unclosed",
        "not XML at all": b"\x00\xff garbage \xfe",
        "billion laughs": probe_match(relates_to, device, scopes="onvif://www.onvif.org/name/&lol9;",
                                      doctype=BILLION_LAUGHS),
        "external entity": probe_match(relates_to, device, scopes="onvif://www.onvif.org/name/&x;",
                                       doctype='<!DOCTYPE s:Envelope [<!ENTITY x SYSTEM "file:///etc/passwd">]>'),
        "64 KiB datagram": probe_match(relates_to, device, scopes="onvif://www.onvif.org/name/" + "A" * 64_000),
        "not an ONVIF camera": probe_match(relates_to, device, types="pr:Printer"),
        "not a reply to this Probe": probe_match("urn:uuid:someone-elses-probe", device),
        "not a ProbeMatch": probe_match(relates_to, device, action="Hello"),
        "missing elements": b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header>'
                            b'<a:Action xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing">'
                            b"http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</a:Action>"
                            b"</s:Header><s:Body/></s:Envelope>",
    }
