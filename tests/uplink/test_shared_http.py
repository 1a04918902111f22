"""Tunnel clients given one HTTP session (the agent's many tunnels) all tunnel through it,
and leave it open for the others when they stop."""

from __future__ import annotations

import logging

from camgate.uplink.client_http import shared_session
from camgate.uplink.protocol import Forward

from .loopback import echo_through, spec_for, tunnel_up


async def test_clients_sharing_one_session_tunnel_from_its_address_and_leave_it_open(
        relay, camera, make_client, caplog):
    cam = await camera()
    caplog.set_level(logging.INFO, logger="camgate.uplink.relay")
    async with shared_session(local_addr=("127.0.0.2", 0)) as http:
        clients = {}
        for camid in (501, 502):
            device, _ = relay.register_device(camid, 1)
            clients[camid] = make_client(
                spec_for(device.access_token, Forward("rtsp", "tcp", "127.0.0.1", cam.port), key=f"c{camid}"),
                http=http)
        for camid, client in clients.items():
            await tunnel_up(client, relay, camid)
            await echo_through(relay.tunnel(camid).ports["rtsp"], 10_000)
        await clients[501].stop()
        await echo_through(relay.tunnel(502).ports["rtsp"], 10_000)  # the other still tunnels
        assert not http.closed
    ups = [r.getMessage() for r in caplog.records if "tunnel up from" in r.getMessage()]
    assert len(ups) == 2 and all("from 127.0.0.2 " in m for m in ups)
