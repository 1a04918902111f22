"""What a WS-Discovery reply is worth (camgate.onvif.probe_match), with no sockets: the
ONVIF cameras it announces, and nothing at all for anything malformed or hostile."""

from __future__ import annotations

import pytest

from camgate.onvif import probe_match as pm
from camgate.onvif.discovery import MAX_REPLIES_PER_SENDER, Collector
from tests.support.ws_discovery import hostile_replies, probe_match

PROBE_ID = "urn:uuid:0a0b0c0d-0000-4000-8000-000000000001"
DEVICE = "http://192.168.1.64:8080/onvif/device_service"


def test_the_probe_asks_for_network_video_transmitters():
    message_id, data = pm.probe_message()
    text = data.decode()
    assert message_id.startswith("urn:uuid:") and message_id in text
    assert "http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe<" in text
    assert 'xmlns:dn="http://www.onvif.org/ver10/network/wsdl"' in text and "dn:NetworkVideoTransmitter" in text
    assert pm.probe_message()[0] != message_id  # each Probe its own id


def test_a_camera_reply_gives_its_address_port_scopes_name_and_hardware():
    reply = probe_match(PROBE_ID, f"{DEVICE} http://[fe80::1]:80/onvif/device_service",
                        "onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/name/Lobby%20East%2F2 "
                        "onvif://www.onvif.org/hardware/DS-2CD2143")
    (device,) = pm.parse_probe_matches(reply, "192.168.1.64", PROBE_ID)
    assert device.as_dict() == {
        "ip": "192.168.1.64", "onvif_port": 8080,
        "xaddrs": [DEVICE, "http://[fe80::1]:80/onvif/device_service"],
        "scopes": ["onvif://www.onvif.org/type/video_encoder", "onvif://www.onvif.org/name/Lobby East%2F2",
                   "onvif://www.onvif.org/hardware/DS-2CD2143"],
        "name": "Lobby East/2", "hardware": "DS-2CD2143",
    }


@pytest.mark.parametrize("xaddrs, port", [
    ("http://10.0.0.9:81/onvif/device_service http://192.168.1.64:8000/onvif/device_service", 8000),  # its own
    ("http://10.0.0.9/onvif/device_service", 80),  # another address's: still the best guess
    ("https://10.0.0.9/onvif/device_service", 443),
    ("", 80),
    ("ftp://192.168.1.64:21/ http://192.168.1.64:99999/x", 80),  # not HTTP, or no real port: dropped
])
def test_the_onvif_port_is_that_of_the_answering_address(xaddrs, port):
    (device,) = pm.parse_probe_matches(probe_match(PROBE_ID, xaddrs), "192.168.1.64", PROBE_ID)
    assert device.onvif_port == port


def test_the_probematch_action_some_cameras_send_is_read_too():
    # ipycam (and some firmwares) say .../ProbeMatch, not .../ProbeMatches.
    assert pm.parse_probe_matches(probe_match(PROBE_ID, DEVICE, action="ProbeMatch"), "192.168.1.64", PROBE_ID)


@pytest.mark.parametrize("name", list(hostile_replies(PROBE_ID, "192.168.1.64")))
def test_hostile_or_foreign_replies_are_ignored(name):
    data = hostile_replies(PROBE_ID, "192.168.1.64")[name]
    assert pm.parse_probe_matches(data, "192.168.1.64", PROBE_ID) == []


def test_what_one_device_may_say_is_bounded():
    many = " ".join(f"http://192.168.1.64:{8000 + i}/onvif/device_service" for i in range(500))
    scopes = " ".join(["onvif://www.onvif.org/name/" + "N" * 2000, "onvif://www.onvif.org/hardware/" + "H" * 300,
                       *(f"onvif://www.onvif.org/location/{i}" for i in range(100))])
    (device,) = pm.parse_probe_matches(probe_match(PROBE_ID, many, scopes), "192.168.1.64", PROBE_ID)
    assert len(device.xaddrs) == pm.MAX_ITEMS and len(device.scopes) == pm.MAX_ITEMS
    assert all(len(item) <= pm.MAX_ITEM_CHARS for item in device.xaddrs + device.scopes)
    assert device.name == ""  # a 2000-character name scope is dropped, not cut
    assert device.hardware == "H" * pm.MAX_LABEL_CHARS


def test_a_flood_from_one_sender_is_parsed_only_a_few_times(monkeypatch):
    parsed = []
    real = pm.parse_probe_matches
    monkeypatch.setattr("camgate.onvif.discovery.parse_probe_matches",
                        lambda *args: parsed.append(1) or real(*args))
    collector = Collector(PROBE_ID)
    for i in range(10_000):
        collector.reply(probe_match(PROBE_ID, f"http://192.168.1.64:{1000 + i}/onvif/device_service"), "192.168.1.64")
    assert len(parsed) == MAX_REPLIES_PER_SENDER
    assert len(collector.result()) == MAX_REPLIES_PER_SENDER and collector.dropped == 10_000 - MAX_REPLIES_PER_SENDER


def test_many_senders_are_bounded_in_replies_parsed_and_devices_kept(monkeypatch):
    monkeypatch.setattr("camgate.onvif.discovery.MAX_REPLIES", 300)
    monkeypatch.setattr("camgate.onvif.discovery.MAX_DEVICES", 200)
    collector = Collector(PROBE_ID)
    for i in range(10_000):
        ip = f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"
        collector.reply(probe_match(PROBE_ID, f"http://{ip}/onvif/device_service"), ip)
    assert collector.parsed == 300 and len(collector.result()) == 200
