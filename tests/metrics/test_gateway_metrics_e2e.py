"""The gateway's /metrics from `camgate run` (web, agent and relay as real processes)
after real traffic through a camera's tunnel; and refused, without a token, from an
address that is not allowed (127.0.0.2: loopback, but not in the default list)."""

from __future__ import annotations

import http.client
import socket
import time
import urllib.parse

import pytest

from tests.support.cameras import CameraWebServer, StreamingSource
from tests.support.prometheus import Scrape
from tests.test_tunnels_e2e import endpoint, gateway, is_up  # noqa: F401 (gateway is a fixture)

pytestmark = pytest.mark.e2e
STREAMED = 300_000


def get_metrics(base: str, token: str | None = None, source: str = "127.0.0.1") -> tuple[int, str]:
    url = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", "/metrics", headers={"Authorization": f"Token {token}"} if token else {})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def wait_for_scrape(base: str, predicate, timeout: float = 30.0) -> Scrape:
    deadline = time.monotonic() + timeout
    while True:
        status, text = get_metrics(base)
        assert status == 200, text
        scrape = Scrape(text)
        if predicate(scrape):
            return scrape
        if time.monotonic() > deadline:
            raise AssertionError(f"the scrape never showed what was expected:\n{text}")
        time.sleep(0.3)


def test_camera_tunnel_traffic_and_agent_reconciles_in_the_scrape(gateway):  # noqa: F811
    source, web = StreamingSource(STREAMED), CameraWebServer()
    try:
        status, added = gateway.api("POST", "/api/add-camera/", {
            "ip": "127.0.0.1", "rtsp_port": source.port, "http_port": web.port,
            "access_token": gateway.mint_token(6001), "username": "admin", "password": "pa55word",
        })
        assert status == 201, added
        camera = gateway.wait_for_camera(added["camera_id"], is_up)
        with socket.create_connection(("127.0.0.1", endpoint(camera, "rtsp")), timeout=10) as viewer:
            received = 0
            while chunk := viewer.recv(65536):
                received += len(chunk)
        assert received == STREAMED
        idle = socket.create_connection(("127.0.0.1", endpoint(camera, "http")), timeout=10)  # held open

        labels = {"camera_id": str(added["camera_id"]), "camid": "6001"}
        scrape = wait_for_scrape(gateway.base, lambda s: (
            s.value("camgate_camera_tunnel_bytes_total", **labels, direction="to_cloud") >= STREAMED
            and s.value("camgate_camera_tunnel_open_connections", **labels) == 1))
        assert scrape.value("camgate_camera_tunnel_state", **labels, state="up") == 1
        assert scrape.value("camgate_camera_tunnel_state", **labels, state="failed") == 0
        assert scrape.value("camgate_camera_enabled", **labels) == 1
        assert scrape.value("camgate_agent_up") == 1
        assert scrape.value("camgate_agent_reconcile_duration_seconds_count") >= 1
        assert scrape.value("camgate_agent_reconcile_errors_total") == 0
        assert "pa55word" not in str(scrape.samples)
        idle.close()
    finally:
        source.stop()
        web.stop()


def test_refused_without_a_token_from_an_address_not_allowed(gateway):  # noqa: F811
    status, body = get_metrics(gateway.base, source="127.0.0.2")
    assert status == 401 and "camgate_" not in body
    status, body = get_metrics(gateway.base, token=gateway.token, source="127.0.0.2")
    assert status == 200 and Scrape(body).value("camgate_agent_up") == 1
