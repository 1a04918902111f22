"""The relay's HTTP APIs: provisioning, ws-endpoint, device lookup, admin, state file."""

from __future__ import annotations

import json
import os
import stat

import aiohttp
import pytest

from camgate.uplink.relay import ENROLLED_CAMID_BASE, RelayConfig, RelayServer, _host_port
from camgate.uplink.relay_store import RelayStore
from camgate.uplink.tokens import decode_access_token

from tests.conftest import make_token

from .loopback import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def call(http, method, url, **kwargs):
    async with http.request(method, url, **kwargs) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body


async def add_device(http, relay, **body):
    return await call(http, "POST", f"{relay.url}/api/devices", json=body, headers=ADMIN)


async def test_add_device_issues_a_token_naming_this_relay(http, relay):
    status, body = await add_device(http, relay, camid=1001, cmngrid=1)
    assert status == 201 and body["camid"] == 1001 and body["created"] is True
    token = decode_access_token(body["access_token"])
    assert token.camid == 1001 and token.cmngrid == 1 and token.access == "all"
    assert token.uplink == relay.public_address == f"127.0.0.1:{relay.port}"
    assert isinstance(token.payload["token"], str) and len(token.payload["token"]) >= 32

    status, endpoint = await call(
        http, "GET", f"{relay.url}/api/ws-endpoint", headers={"Authorization": body["access_token"]}
    )
    assert status == 200 and endpoint == {"domain": relay.public_address, "path": "/ra-proxy"}


async def test_same_camid_reissues_the_token_and_revokes_the_old_one(http, relay):
    _, first = await add_device(http, relay, camid=5, cmngrid=2)
    status, second = await add_device(http, relay, camid=5, cmngrid=2)
    assert status == 200 and second["created"] is False
    assert second["access_token"] != first["access_token"]
    status, devices = await call(http, "GET", f"{relay.url}/api/devices", headers=ADMIN)
    assert status == 200 and devices == [{"camid": 5, "cmngrid": 2, "serial": None, "online": False}]
    status, _ = await call(http, "GET", f"{relay.url}/api/ws-endpoint", headers={"Authorization": first["access_token"]})
    assert status == 403
    status, _ = await call(http, "GET", f"{relay.url}/api/ws-endpoint", headers={"Authorization": second["access_token"]})
    assert status == 200


@pytest.mark.parametrize(
    "body, field",
    [
        ([1], "body"),
        ({}, "camid"),
        ({"camid": "1"}, "camid"),
        ({"camid": True}, "camid"),
        ({"camid": -1}, "camid"),
        ({"camid": 1, "cmngrid": "x"}, "cmngrid"),
        ({"camid": 1, "serial": "ABC"}, "password"),
        ({"camid": 1, "password": "pw"}, "serial"),
        ({"camid": 1, "serial": "", "password": "pw"}, "serial"),
        ({"camid": 1, "serial": "s", "password": 5}, "password"),
        ({"camid": 1, "serial": "s" * 256, "password": "p"}, "serial"),
    ],
)
async def test_add_device_validation(http, relay, body, field):
    status, answer = await call(http, "POST", f"{relay.url}/api/devices", json=body, headers=ADMIN)
    assert status == 400 and answer["field"] == field and field in answer["error"]


async def test_add_device_rejects_a_body_that_is_not_json(http, relay):
    status, answer = await call(http, "POST", f"{relay.url}/api/devices", data=b"{nope", headers=ADMIN)
    assert status == 400 and answer["field"] == "body"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_TOKEN}])
async def test_admin_api_needs_the_admin_token(http, relay, headers):
    for method, path in (("GET", "/api/devices"), ("POST", "/api/devices"), ("GET", "/api/device/1"),
                         ("DELETE", "/api/devices/1")):
        status, body = await call(http, method, relay.url + path, json={"camid": 1}, headers=headers)
        assert status == 401, (method, path)
        assert "admin token" in body["error"]


async def test_admin_api_is_closed_without_a_configured_token(http, make_relay):
    relay = await make_relay(admin_token="")
    status, body = await call(http, "GET", f"{relay.url}/api/devices", headers={"Authorization": "Bearer "})
    assert status == 401 and "no admin token" in body["error"]


async def test_device_lookup(http, relay):
    status, body = await call(http, "GET", f"{relay.url}/api/device/1234", headers=ADMIN)
    assert status == 404 and "1234" in body["error"]
    status, body = await call(http, "GET", f"{relay.url}/api/device/abc", headers=ADMIN)
    assert status == 400 and body["field"] == "camid"


async def test_delete_device(http, relay):
    _, device = await add_device(http, relay, camid=9)
    status, _ = await call(http, "DELETE", f"{relay.url}/api/devices/9", headers=ADMIN)
    assert status == 204
    status, _ = await call(http, "DELETE", f"{relay.url}/api/devices/9", headers=ADMIN)
    assert status == 404
    status, _ = await call(http, "GET", f"{relay.url}/api/ws-endpoint", headers={"Authorization": device["access_token"]})
    assert status == 403


@pytest.mark.parametrize("headers", [{}, {"Authorization": ""}, {"Authorization": "garbage"}])
async def test_ws_endpoint_refuses_unknown_tokens(http, relay, headers):
    status, body = await call(http, "GET", f"{relay.url}/api/ws-endpoint", headers=headers)
    assert status == 403 and body["error"] == "invalid token"


async def test_provisioning_by_serial_and_password(http, relay):
    _, device = await add_device(http, relay, camid=7, serial="ab12cd", password="aa:bb:cc:dd:ee:ff")
    url = f"{relay.url}/v1/token"
    status, body = await call(http, "GET", url, params={"serial_id": "AB12CD"}, headers={"Authorization": "AA:BB:CC:DD:EE:FF"})
    assert status == 200 and body == {"access_token": device["access_token"]}
    # The relay compares upper-cased, as the protocol sends both upper-cased.
    status, _ = await call(http, "GET", url, params={"serial_id": "ab12cd"}, headers={"Authorization": "aa:bb:cc:dd:ee:ff"})
    assert status == 200
    status, _ = await call(http, "GET", url, params={"serial_id": "AB12CD"}, headers={"Authorization": "WRONG"})
    assert status == 401
    status, _ = await call(http, "GET", url, params={"serial_id": "AB12CD"})
    assert status == 401
    status, _ = await call(http, "GET", url, params={"serial_id": "OTHER"}, headers={"Authorization": "AA:BB:CC:DD:EE:FF"})
    assert status == 401
    status, body = await call(http, "GET", url, headers={"Authorization": "AA:BB:CC:DD:EE:FF"})
    assert status == 400 and body["field"] == "serial_id"


async def test_devices_and_ports_survive_a_restart(tmp_path, make_relay, http):
    relay = await make_relay()
    _, device = await add_device(http, relay, camid=3, serial="S1", password="P1")
    relay.store.state.assign_port(3, "rtsp", 23456)
    await relay.close()
    relay = await make_relay()
    status, _ = await call(http, "GET", f"{relay.url}/api/ws-endpoint", headers={"Authorization": device["access_token"]})
    assert status == 200
    assert relay.store.state.port_for(3, "rtsp") == 23456
    status, body = await call(http, "GET", f"{relay.url}/v1/token", params={"serial_id": "S1"}, headers={"Authorization": "P1"})
    assert status == 200 and body["access_token"] == device["access_token"]


def test_state_file_is_private_and_holds_no_plain_password(tmp_path):
    path = tmp_path / "state" / "relay.json"
    store = RelayStore(path)
    store.put_device(1, 1, "token-1", serial="abc", password="secret-mac")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert "secret-mac" not in text and "SECRET-MAC" not in text
    data = json.loads(text)
    assert data["devices"][0]["serial"] == "ABC"
    assert [p.name for p in path.parent.iterdir()] == ["relay.json"]  # no temp files left


def test_unreadable_state_file_stops_the_relay(tmp_path):
    path = tmp_path / "relay.json"
    path.write_text("{broken")
    with pytest.raises(RuntimeError, match="unreadable"):
        RelayStore(path)


def test_a_serial_names_one_device(tmp_path):
    store = RelayStore(None)
    store.put_device(1, 1, "t1", serial="S", password="P")
    store.put_device(2, 1, "t2", serial="S", password="P")
    assert store.device_for_serial("s", "p").camid == 2
    assert store.device(1).serial is None


def test_public_address_leaves_out_only_the_default_port():
    assert _host_port("relay.example.com", 443, 443) == "relay.example.com"
    assert _host_port("relay.example.com", 8443, 443) == "relay.example.com:8443"
    assert _host_port("::1", 8080, 80) == "[::1]:8080"
    server = RelayServer(RelayConfig(host="0.0.0.0", port=443, public_port=443, tls_cert="c", tls_key="k"))
    assert server.public_host == "127.0.0.1" and server.public_address == "127.0.0.1"


def test_config_repr_hides_the_admin_token():
    assert "s3cret" not in repr(RelayConfig(admin_token="s3cret"))


# --- open enrollment (the embedded relay of `camgate run`) -------------------------------


async def test_closed_relay_refuses_unknown_serials_and_tokens(http, relay):
    status, _ = await call(http, "GET", f"{relay.url}/v1/token?serial_id=CAM1", headers={"Authorization": "AA:BB"})
    assert status == 401
    status, _ = await call(http, "GET", f"{relay.url}/api/ws-endpoint", headers={"Authorization": make_token(77)})
    assert status == 403


async def test_open_relay_enrolls_a_serial_once_and_keeps_its_password(http, make_relay):
    relay = await make_relay(open_enrollment=True)
    url = f"{relay.url}/v1/token?serial_id=cam1"
    status, first = await call(http, "GET", url, headers={"Authorization": "aa:bb"})
    assert status == 200
    token = decode_access_token(first["access_token"])
    assert token.camid == ENROLLED_CAMID_BASE and token.uplink == relay.public_address
    # Same serial and password (any case): the same token. Wrong password: refused.
    assert await call(http, "GET", url, headers={"Authorization": "AA:BB"}) == (200, first)
    assert (await call(http, "GET", url, headers={"Authorization": "other"}))[0] == 401
    status, second = await call(http, "GET", f"{relay.url}/v1/token?serial_id=cam2", headers={"Authorization": "x"})
    assert decode_access_token(second["access_token"]).camid == ENROLLED_CAMID_BASE + 1


async def test_open_relay_takes_an_unknown_token_but_not_a_second_token_for_a_camid(http, make_relay):
    relay = await make_relay(open_enrollment=True)
    vms_token = make_token(77)
    status, _ = await call(http, "GET", f"{relay.url}/api/ws-endpoint", headers={"Authorization": vms_token})
    assert status == 200
    assert relay.store.state.device(77).access_token == vms_token
    status, _ = await call(http, "GET", f"{relay.url}/api/ws-endpoint", headers={"Authorization": make_token(77, access="watch")})
    assert status == 403
    status, _ = await call(http, "GET", f"{relay.url}/api/ws-endpoint", headers={"Authorization": "bm90IGpzb24="})
    assert status == 403
