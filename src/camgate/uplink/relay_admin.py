"""The relay's admin API (Bearer <admin token>): devices, and where a device's public
endpoints are. Any relay node answers for the whole fleet when the store is shared.

    GET    /api/device/<camid>     the holding node's public host and ports
    POST   /api/devices            add / re-issue a device
    GET    /api/devices            list devices
    DELETE /api/devices/<camid>    forget a device
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .relay_http import header, json_error

if TYPE_CHECKING:
    from .relay import RelayServer

log = logging.getLogger(__name__)

# The gateway keeps a camid in a signed 64-bit column; a larger one is of no use, and a
# path of thousands of digits must not reach int() (Python refuses past 4300 digits).
MAX_CAMID = 2**63 - 1
CAMID_RULE = f"camid must be an integer from 0 to {MAX_CAMID}"


class _BadRequest(Exception):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


class RelayAdminApi:
    def __init__(self, server: "RelayServer", admin_token: str) -> None:
        self.server = server
        self.admin_token = admin_token

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/device/{camid}", self.device_lookup),
            web.post("/api/devices", self.add_device),
            web.get("/api/devices", self.list_devices),
            web.delete("/api/devices/{camid}", self.delete_device),
        ]

    def denied(self, request: web.Request) -> web.Response | None:
        if not self.admin_token:
            return json_error(401, "admin API disabled: the relay has no admin token")
        scheme, _, presented = header(request, "Authorization").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), self.admin_token.encode()):
            return json_error(401, "missing or wrong admin token")
        return None

    def _camid(self, request: web.Request) -> int | web.Response:
        """The path's camid, or the response refusing the request."""
        if denied := self.denied(request):
            return denied
        text = request.match_info["camid"]
        if not text.isdigit() or not text.isascii() or len(text) > len(str(MAX_CAMID)) or int(text) > MAX_CAMID:
            return json_error(400, CAMID_RULE, "camid")
        return int(text)

    async def device_lookup(self, request: web.Request) -> web.Response:
        camid = self._camid(request)
        if isinstance(camid, web.Response):
            return camid
        server = self.server
        tunnel = server.tunnels.get(camid)
        if tunnel is not None:
            body: dict[str, Any] = {"camid": camid, "proxy_id": tunnel.proxy_id,
                                    "forwards": server.public_forwards(tunnel)}
            node = server.node_name
        else:
            holding = await server.store.holding(camid)
            if holding is None:
                return json_error(404, f"device {camid} has no tunnel")
            body = {"camid": camid, "proxy_id": holding.proxy_id, "forwards": holding.forwards}
            node = holding.node
        if server.store.shared:
            body["node"] = node
        return web.json_response(body)

    async def add_device(self, request: web.Request) -> web.Response:
        if denied := self.denied(request):
            return denied
        timeout = self.server.config.connections.body_timeout
        try:
            body = await asyncio.wait_for(request.json(), timeout)
        except asyncio.TimeoutError:
            return json_error(408, f"body not received within {timeout:g} s", "body")
        except ValueError:
            return json_error(400, "body must be JSON", "body")
        except RecursionError:
            return json_error(400, "body must be JSON nested less deeply", "body")
        try:
            camid, cmngrid, serial, password = _parse_device_body(body)
        except _BadRequest as exc:
            return json_error(400, exc.message, exc.field)
        device, created = await self.server.issue_device(camid, cmngrid, serial, password)
        log.info("device %d %s", camid, "added" if created else "re-issued a token")
        return web.json_response(
            {"camid": device.camid, "cmngrid": device.cmngrid, "serial": device.serial,
             "access_token": device.access_token, "created": created},
            status=201 if created else 200,
        )

    async def list_devices(self, request: web.Request) -> web.Response:
        if denied := self.denied(request):
            return denied
        online = await self.server.store.online()
        if online is None:
            online = set(self.server.tunnels)
        return web.json_response(
            [
                {"camid": d.camid, "cmngrid": d.cmngrid, "serial": d.serial, "online": d.camid in online}
                for d in await self.server.store.devices()
            ]
        )

    async def delete_device(self, request: web.Request) -> web.Response:
        camid = self._camid(request)
        if isinstance(camid, web.Response):
            return camid
        if not await self.server.store.remove_device(camid):
            return json_error(404, f"device {camid} is not registered")
        tunnel = self.server.tunnels.get(camid)
        if tunnel is not None:
            await tunnel.stop()
        return web.Response(status=204)


def _parse_device_body(body: Any) -> tuple[int, int, str | None, str | None]:
    if not isinstance(body, dict):
        raise _BadRequest("body", "body must be a JSON object")
    camid = body.get("camid")
    if isinstance(camid, bool) or not isinstance(camid, int) or not 0 <= camid <= MAX_CAMID:
        raise _BadRequest("camid", f"camid is required: {CAMID_RULE}")
    cmngrid = body.get("cmngrid", 0)
    if isinstance(cmngrid, bool) or not isinstance(cmngrid, int) or cmngrid < 0:
        raise _BadRequest("cmngrid", "cmngrid must be a non-negative integer")
    texts = {}
    for name in ("serial", "password"):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > 255):
            raise _BadRequest(name, f"{name} must be a non-empty string of at most 255 characters")
        texts[name] = value.strip() if value is not None else None
    if (texts["serial"] is None) != (texts["password"] is None):
        missing = "password" if texts["password"] is None else "serial"
        raise _BadRequest(missing, "serial and password are given together or not at all")
    return camid, cmngrid, texts["serial"], texts["password"]
