"""Discovery and device facts against a real virtual ONVIF camera: ipycam, in a network
namespace of its own (tests/support/onvif_camera.py), with WS-Security on and its clock
an hour ahead of ours, as cameras that were never set are."""

from __future__ import annotations

import asyncio
import base64
import logging
import urllib.request

import pytest

from camgate.onvif.device import AUTH_FAILED, UNREACHABLE, OnvifError, read_device
from camgate.onvif.discovery import discover
from tests.support.onvif_camera import onvif_camera

pytestmark = pytest.mark.e2e

USERNAME, PASSWORD = "operator", "Pa55-word-1"
CLOCK_OFFSET = 3600.0


@pytest.fixture(scope="module")
def camera():
    with onvif_camera(USERNAME, PASSWORD, clock_offset=CLOCK_OFFSET) as started:
        yield started


@pytest.fixture
def only_its_interface(camera, monkeypatch):
    monkeypatch.setenv("CAMGATE_DISCOVERY_INTERFACES", camera.interface)


def expected_device(camera) -> dict:
    return {
        "ip": camera.ip, "onvif_port": camera.onvif_port, "xaddrs": [camera.onvif_url],
        "scopes": ["onvif://www.onvif.org/type/video_encoder", "onvif://www.onvif.org/Profile/Streaming",
                   "onvif://www.onvif.org/name/Lobby Camera"],
        "name": "Lobby Camera", "hardware": "",
    }


def test_multicast_discovery_finds_the_camera(camera, only_its_interface):
    devices = asyncio.run(discover(timeout=1.0))
    assert [device.as_dict() for device in devices] == [expected_device(camera)]


@pytest.mark.parametrize("target", ["ip", "network"])
def test_unicast_discovery_finds_it_at_its_address_and_in_its_range(camera, target):
    devices = asyncio.run(discover(timeout=1.0, address=getattr(camera, target)))
    assert [device.as_dict() for device in devices] == [expected_device(camera)]


def test_a_probe_of_one_silent_address_ends_when_it_refuses(camera):
    # The tests' own end of the link: nothing there listens on 3702, and says so.
    assert asyncio.run(discover(timeout=10.0, address=camera.host_ip)) == []


def test_the_facts_are_those_the_camera_serves_despite_its_clock(camera):
    facts = asyncio.run(read_device(camera.ip, camera.onvif_port, USERNAME, PASSWORD))
    assert facts.as_dict() == {
        "manufacturer": camera.manufacturer, "model": camera.model, "firmware": camera.firmware,
        "serial": camera.serial, "mac": camera.mac, "http_port": camera.onvif_port,
        "rtsp_port": camera.rtsp_port, "rtsp_path": camera.rtsp_path,
        "snapshot_uri": f"http://{camera.ip}:{camera.onvif_port}{camera.snapshot_path}",
        "profiles": [
            {"token": "Profile_Main", "name": "MainStream", "encoding": "H264", "width": camera.width, "height": camera.height},
            {"token": "Profile_Sub", "name": "SubStream", "encoding": "H264", "width": camera.width // 2,
             "height": camera.height // 2},
        ],
    }
    # The snapshot URI it gives works, with the same login (HTTP Basic on ipycam).
    request = urllib.request.Request(facts.snapshot_uri, headers={
        "Authorization": "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"] == "image/jpeg" and response.read(2) == b"\xff\xd8"


@pytest.mark.parametrize("username, password", [(USERNAME, "wrong"), ("someone", PASSWORD), ("", "")])
def test_a_wrong_or_missing_login_is_auth_failed(camera, username, password):
    with pytest.raises(OnvifError) as failure:
        asyncio.run(read_device(camera.ip, camera.onvif_port, username, password))
    assert failure.value.code == AUTH_FAILED, failure.value.reason


def test_a_port_nothing_listens_on_is_unreachable(camera):
    with pytest.raises(OnvifError) as failure:
        asyncio.run(read_device(camera.ip, 9, USERNAME, PASSWORD))
    assert (failure.value.code, failure.value.reason) == (UNREACHABLE, "connection refused (ONVIF port 9)")


@pytest.mark.django_db
def test_the_api_finds_reads_and_marks_what_is_added(camera, api, caplog):
    caplog.set_level(logging.DEBUG)
    found = api.post("/api/discover/", {"timeout": 2, "address": camera.ip}, format="json")
    assert found.status_code == 200, found.content
    assert found.json() == {"devices": [{**expected_device(camera), "camera_id": None}]}

    read = api.post("/api/onvif/", {"ip": camera.ip, "onvif_port": camera.onvif_port, "username": USERNAME,
                                    "password": PASSWORD}, format="json")
    assert read.status_code == 200, read.content
    facts = read.json()
    assert (facts["serial"], facts["mac"], facts["rtsp_port"], facts["rtsp_path"]) == (
        camera.serial, camera.mac, camera.rtsp_port, camera.rtsp_path)

    added = api.post("/api/add-camera/", {
        "ip": camera.ip, "http_port": facts["http_port"], "rtsp_port": facts["rtsp_port"],
        "rtsp_path": facts["rtsp_path"], "onvif_port": camera.onvif_port, "serial": facts["serial"],
        "mac": facts["mac"], "name": facts["model"], "username": USERNAME, "password": PASSWORD,
    }, format="json")
    assert added.status_code == 201, added.content
    assert (added.json()["name"], added.json()["onvif_port"]) == (camera.model, camera.onvif_port)
    found = api.post("/api/discover/", {"timeout": 2, "address": camera.ip}, format="json")
    assert found.json()["devices"][0]["camera_id"] == added.json()["camera_id"]

    refused = api.post("/api/onvif/", {"ip": camera.ip, "onvif_port": camera.onvif_port, "username": USERNAME,
                                       "password": "Wr0ng-pa55"}, format="json")
    assert refused.status_code == 400 and refused.json()["error"] == AUTH_FAILED
    for answer in (read, refused):
        assert "Pa55" not in answer.content.decode() and "pa55" not in answer.content.decode()
    logged = caplog.text + "".join(str(record.args) for record in caplog.records)
    assert PASSWORD not in logged and "Wr0ng-pa55" not in logged
