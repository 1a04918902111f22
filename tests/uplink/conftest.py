"""Fixtures for the uplink tests: cameras, a relay, tunnel clients and a fake relay."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import replace

import pytest

from camgate.uplink.client import TunnelClient, TunnelSpec
from camgate.uplink.relay import RelayConfig, RelayServer, start_relay

from .loopback import ADMIN_TOKEN, FAST_BACKOFF, FAST_SLOW_RETRY, Camera, FakeRelay


@pytest.fixture
async def camera():
    cameras: list[Camera] = []

    async def start(mode: str = "echo", port: int = 0, rcvbuf: int | None = None) -> Camera:
        cam = await Camera(mode, rcvbuf).start(port)
        cameras.append(cam)
        return cam

    yield start
    for cam in cameras:
        await cam.stop()


@pytest.fixture
def relay_config(tmp_path) -> RelayConfig:
    return RelayConfig(
        host="127.0.0.1", port=0, admin_token=ADMIN_TOKEN, port_range=None, state_path=str(tmp_path / "relay.json")
    )


@pytest.fixture
async def make_relay(relay_config):
    relays: list[RelayServer] = []

    async def start(**overrides) -> RelayServer:
        server = await start_relay(replace(relay_config, **overrides))
        relays.append(server)
        return server

    yield start
    for server in relays:
        await server.close()


@pytest.fixture
async def relay(make_relay) -> RelayServer:
    return await make_relay()


@pytest.fixture
async def make_client():
    clients: list[TunnelClient] = []

    def start(spec: TunnelSpec | None = None, **kwargs) -> TunnelClient:
        kwargs.setdefault("backoff", FAST_BACKOFF)
        kwargs.setdefault("slow_retry", FAST_SLOW_RETRY)
        client = TunnelClient(spec, **kwargs)
        client.start()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.stop()


@pytest.fixture
async def aiohttp_fake_relay():
    relay = await FakeRelay().start()
    yield relay
    await relay.close()


@pytest.fixture
async def open_viewer():
    """Connect to a relay's public port like a viewer; closed at the end of the test."""
    writers = []

    async def connect(port: int):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        return reader, writer

    yield connect
    for writer in writers:
        writer.transport.abort()
        writer.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (openssl ships with Debian)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return str(cert), str(key)
