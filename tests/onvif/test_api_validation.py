"""POST /api/discover/ and POST /api/onvif/ refuse bad input with a 400 naming the field,
before anything goes on the network; and reach only CAMGATE_PROBE_NETWORKS."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("body, field", [
    ({"timeout": 0}, "timeout"),
    ({"timeout": 10.5}, "timeout"),
    ({"timeout": -1}, "timeout"),
    ({"timeout": "soon"}, "timeout"),
    ({"timeout": "nan"}, "timeout"),
    ({"timeout": True}, "timeout"),
    ({"timeout": None}, "timeout"),
    ({"timeout": [3]}, "timeout"),
    ({"address": "10.0.0.0/16"}, "address"),  # more than a /24
    ({"address": "192.168.1.300"}, "address"),
    ({"address": "cam.site.local"}, "address"),
    ({"address": "fe80::1"}, "address"),  # discovery here is IPv4
    ({"address": 192}, "address"),
    ({"address": "x" * 65}, "address"),
])
def test_discover_refuses_bad_input_by_field(api, body, field):
    response = api.post("/api/discover/", body, format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()) == [field], response.json()


@pytest.mark.parametrize("body, field", [
    ({}, "ip"),
    ({"ip": ""}, "ip"),
    ({"ip": "cam.site.local"}, "ip"),  # discovery gives addresses; a name is not looked up
    ({"ip": "192.168.1.0/24"}, "ip"),
    ({"ip": 3232235840}, "ip"),
    ({"ip": "10.0.0.1", "onvif_port": 0}, "onvif_port"),
    ({"ip": "10.0.0.1", "onvif_port": 65536}, "onvif_port"),
    ({"ip": "10.0.0.1", "onvif_port": "http"}, "onvif_port"),
    ({"ip": "10.0.0.1", "username": 7}, "username"),
    ({"ip": "10.0.0.1", "password": ["a"]}, "password"),
    ({"ip": "10.0.0.1", "password": "p" * 256}, "password"),
])
def test_onvif_refuses_bad_input_by_field(api, body, field):
    response = api.post("/api/onvif/", body, format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()) == [field], response.json()


def test_both_take_json_only_and_need_the_token(api):
    from rest_framework.test import APIClient

    assert api.post("/api/discover/", "timeout=3", content_type="application/x-www-form-urlencoded").status_code == 415
    assert api.post("/api/onvif/", "ip=10.0.0.1", content_type="application/x-www-form-urlencoded").status_code == 415
    assert APIClient().post("/api/discover/", {}, format="json").status_code == 401
    assert APIClient().post("/api/onvif/", {"ip": "10.0.0.1"}, format="json").status_code == 401


def test_addresses_outside_the_probe_networks_are_refused(api, monkeypatch):
    monkeypatch.setenv("CAMGATE_PROBE_NETWORKS", "192.168.1.0/24")
    response = api.post("/api/discover/", {"address": "192.168.2.0/24"}, format="json")
    assert response.status_code == 400 and "CAMGATE_PROBE_NETWORKS" in response.json()["address"][0]
    response = api.post("/api/discover/", {"address": "192.168.0.0/23"}, format="json")  # also too wide
    assert response.status_code == 400 and list(response.json()) == ["address"]
    response = api.post("/api/onvif/", {"ip": "10.1.2.3"}, format="json")
    assert response.status_code == 400 and "CAMGATE_PROBE_NETWORKS" in response.json()["ip"][0]


def test_multicast_goes_out_on_no_interface_outside_the_probe_networks(api, monkeypatch):
    # The test host's interfaces are all outside this network: nothing is sent, nothing
    # can answer, and the answer comes at once instead of after the timeout.
    monkeypatch.setenv("CAMGATE_PROBE_NETWORKS", "198.51.100.0/24")
    from camgate.onvif.targets import allowed_networks, multicast_interfaces

    assert multicast_interfaces(allowed_networks()) == []
    response = api.post("/api/discover/", {"timeout": 10}, format="json")
    assert response.status_code == 200 and response.json() == {"devices": []}


def test_a_cameras_name_and_onvif_port(api):
    added = api.post("/api/add-camera/", {"ip": "10.0.0.1", "name": "Lobby", "onvif_port": "8080"}, format="json")
    assert added.status_code == 201 and (added.json()["name"], added.json()["onvif_port"]) == ("Lobby", 8080)
    plain = api.post("/api/add-camera/", {"ip": "10.0.0.2"}, format="json").json()
    assert (plain["name"], plain["onvif_port"]) == ("", None)
    cleared = api.post(f"/api/edit-camera/{added.json()['camera_id']}/", {"onvif_port": None}, format="json")
    assert cleared.status_code == 200 and cleared.json()["onvif_port"] is None
    refused = api.post("/api/add-camera/", {"ip": "10.0.0.3", "name": "n" * 101, "onvif_port": 0}, format="json")
    assert refused.status_code == 400 and set(refused.json()) == {"name", "onvif_port"}
