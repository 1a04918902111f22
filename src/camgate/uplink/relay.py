"""The cloud relay: one aiohttp app on one port, plus a public TCP listener per forward.

Routes (uplink protocol, sections 2-5, and camgate's admin API):

    GET    /v1/token?serial_id=SERIAL    Authorization: PASSWORD   provisioning
    GET    /api/ws-endpoint              Authorization: <token>    where to dial
    GET    /ra-proxy                     Authorization: <token>    the tunnel (WebSocket)
    GET    /api/device/<camid>           Bearer <admin token>      public endpoints
    POST   /api/devices                  Bearer <admin token>      add / re-issue a device
    GET    /api/devices                  Bearer <admin token>      list devices
    DELETE /api/devices/<camid>          Bearer <admin token>      forget a device
    GET    /metrics                      Bearer <admin token>      Prometheus (or from an allowed address)

A device's forwards keep their public port across reconnects and relay restarts: the
port is remembered per (camid, forward name) in the relay's state, for the forwards the
device announces and, for a grace period, those it announced before (relay_store.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import signal
import ssl
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from camgate.core import DEFAULT_PORT_RANGE
from camgate.log_rate import limit_repeated_errors
from camgate.process_limits import raise_open_files_limit

from .connection_guard import ConnectionGuard, ConnectionLimits
from .guarded_listener import GuardedSite
from .connection import Role, TunnelConnection
from .flow import FlowLimits
from .protocol import LIMITS, SUBPROTOCOL, Forward, Hello, ProtocolError, PublicEndpoint, parse_hello
from .ratelimit import FailureLimiter
from .relay_store import PREVIOUS_PORTS_GRACE_S, Device, RelayStore
from .relay_metrics import RelayMetrics
from .relay_store import Device, RelayStore
from .session import LivenessTimes, TunnelSession
from .tokens import InvalidToken, decode_access_token, encode_access_token

log = logging.getLogger(__name__)

TUNNEL_PATH = "/ra-proxy"
HELLO_TIMEOUT = 10.0
_MAX_MESSAGE = 1024 * 1024  # WebSocket messages beyond this end the tunnel (aiohttp limit)
# Devices enrolled by serial get camids from here up, clear of the ids a VMS assigns.
ENROLLED_CAMID_BASE = 1_000_000_000
# The gateway keeps a camid in a signed 64-bit column; a larger one is of no use, and a
# path of thousands of digits must not reach int() (Python refuses past 4300 digits).
MAX_CAMID = 2**63 - 1
CAMID_RULE = f"camid must be an integer from 0 to {MAX_CAMID}"


@dataclass(frozen=True)
class RelayConfig:
    host: str = "127.0.0.1"
    port: int = 8443
    # The name viewers and clients use to reach this relay; defaults to ``host`` (or
    # 127.0.0.1 when binding every interface).
    public_host: str | None = None
    public_port: int | None = None  # defaults to the bound port
    admin_token: str = ""  # empty: the admin API refuses everything
    # Public ports for forwards; None takes ephemeral ports (tests), still stable
    # across reconnects while the port stays free.
    port_range: tuple[int, int] | None = DEFAULT_PORT_RANGE
    state_path: str | None = None
    # How long a device keeps the ports of forwards it stopped announcing.
    previous_ports_grace: float = PREVIOUS_PORTS_GRACE_S
    tls_cert: str | None = None
    tls_key: str | None = None
    max_connections: int = LIMITS.max_connections
    # Enroll whoever asks: provisioning issues a token to an unknown serial, and a
    # well-formed token for an unknown camid is taken as that device's. Only for a relay
    # nothing but its own machine can reach (`camgate run`'s embedded relay).
    open_enrollment: bool = False
    limits: FlowLimits = field(default_factory=FlowLimits)
    liveness: LivenessTimes = field(default_factory=LivenessTimes)
    # Header, idle and body timeouts and caps for connections that carry no tunnel yet.
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    # Addresses or networks that may read /metrics without the admin token.
    metrics_allow: tuple[str, ...] = ("127.0.0.1", "::1")

    def __repr__(self) -> str:  # keep the admin token out of logs
        return f"RelayConfig(host={self.host!r}, port={self.port}, public_host={self.public_host!r})"


def _host_port(host: str, port: int, default_port: int) -> str:
    # Leave the default port out: the reference agent always dials 443 (or 80) and
    # takes no port from the token or the ws-endpoint answer.
    shown = f"[{host}]" if ":" in host else host
    return shown if port == default_port else f"{shown}:{port}"


class _BadRequest(Exception):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


def _header(request: web.Request, name: str) -> str:
    """A header as text; "" when it is not UTF-8, since no token, password or admin token
    is anything but UTF-8 (aiohttp hands such bytes on as surrogates, which nothing
    downstream can encode)."""
    value = request.headers.get(name, "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return ""
    return value


def _json_error(status: int, message: str, field_name: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if field_name is not None:
        body["field"] = field_name
    return web.json_response(body, status=status)


class RelayTunnel:
    """One device's live tunnel: its WebSocket session and its public listeners."""

    def __init__(self, camid: int, hello: Hello, session: TunnelSession) -> None:
        self.camid = camid
        self.hello = hello
        self.session = session
        self.proxy_id = uuid.uuid4().hex
        self.listeners: dict[str, asyncio.Server] = {}
        self.ports: dict[str, int] = {}
        self.finished = asyncio.Event()

    def close_listeners(self) -> None:
        for server in self.listeners.values():
            server.close()

    async def stop(self, timeout: float = 5.0) -> None:
        """Close listeners at once (so a successor can bind the same ports), then the rest."""
        self.close_listeners()
        self.session.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.finished.wait(), timeout)


class RelayServer:
    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.store = RelayStore(config.state_path, config.previous_ports_grace)
        self.tunnels: dict[int, RelayTunnel] = {}
        self._device_locks: dict[int, asyncio.Lock] = {}
        self._background: set[asyncio.Task[None]] = set()  # held so they are not collected
        self._provisioning_failures = FailureLimiter()
        self.guard = ConnectionGuard(config.connections)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.metrics = RelayMetrics(self, config.metrics_allow, self._admin_denied)
        self.app = self._make_app()

    # --- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        ssl_context = None
        if config.tls_cert or config.tls_key:
            if not (config.tls_cert and config.tls_key):
                raise ValueError("TLS needs both a certificate and a key")
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(config.tls_cert, config.tls_key)
        self.guard.ssl_context = ssl_context
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, keepalive_timeout=config.connections.idle_timeout
        )
        await self._runner.setup()
        await GuardedSite(self._runner, config.host, config.port, self.guard).start()
        self.port = self._runner.addresses[0][1]
        if not config.admin_token:
            log.warning("relay has no admin token: the admin API refuses every request")
        log.info("relay listening on %s:%d, public address %s", config.host, self.port, self.public_address)

    async def close(self) -> None:
        await asyncio.gather(*(tunnel.stop() for tunnel in list(self.tunnels.values())))
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.guard.close()

    @property
    def tls(self) -> bool:
        return bool(self.config.tls_cert)

    @property
    def public_host(self) -> str:
        if self.config.public_host:
            return self.config.public_host
        return "127.0.0.1" if self.config.host in ("", "0.0.0.0", "::") else self.config.host

    @property
    def public_port(self) -> int:
        return self.config.public_port or self.port

    @property
    def public_address(self) -> str:
        """``host[:port]`` as a token's ``uplink`` and the ws-endpoint ``domain``."""
        return _host_port(self.public_host, self.public_port, 443 if self.tls else 80)

    @property
    def url(self) -> str:
        host = f"[{self.public_host}]" if ":" in self.public_host else self.public_host
        return f"{'https' if self.tls else 'http'}://{host}:{self.public_port}"

    # --- devices ---------------------------------------------------------------

    def register_device(
        self, camid: int, cmngrid: int = 0, serial: str | None = None, password: str | None = None
    ) -> tuple[Device, bool]:
        """Issue (or re-issue) ``camid``'s access token; True when the device is new."""
        token = encode_access_token(
            {
                "camid": camid,
                "cmngrid": cmngrid,
                "uplink": self.public_address,
                "token": secrets.token_urlsafe(32),
                "access": "all",
            }
        )
        device, created = self.store.put_device(camid, cmngrid, token, serial, password)
        old = self.tunnels.get(camid)
        if old is not None and not created:
            # The old token is revoked; its tunnel must not outlive it.
            task = asyncio.get_running_loop().create_task(old.stop())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return device, created

    def tunnel(self, camid: int) -> RelayTunnel | None:
        return self.tunnels.get(camid)

    def buffered_bytes(self) -> int:
        """Bytes waiting in the relay for viewers or for WebSockets, all tunnels."""
        return sum(t.session.buffered_to_sockets() + t.session.queued_to_websocket for t in self.tunnels.values())

    # --- HTTP ---------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024, middlewares=[self.guard.middleware])
        app.add_routes(
            [
                web.get("/v1/token", self._provision),
                web.get("/api/ws-endpoint", self._ws_endpoint),
                web.get(TUNNEL_PATH, self._tunnel),
                web.get("/api/device/{camid}", self._device_lookup),
                web.post("/api/devices", self._add_device),
                web.get("/api/devices", self._list_devices),
                web.delete("/api/devices/{camid}", self._delete_device),
                web.get("/metrics", self.metrics.handle),
            ]
        )
        return app

    def _device_from_token(self, request: web.Request) -> Device | None:
        token = _header(request, "Authorization").strip()
        # The reference agent sends the raw token; tolerate a "Bearer " prefix, which
        # base64 can never start with, so nothing is ambiguous.
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        if not token:
            return None
        device = self.store.device_for_token(token)
        if device is None and self.config.open_enrollment:
            device = self._enroll_token(token)
        return device

    def _enroll_token(self, token: str) -> Device | None:
        try:
            decoded = decode_access_token(token)
        except InvalidToken:
            return None
        if self.store.device(decoded.camid) is not None:
            return None  # that camid holds another token: this one is not its
        log.info("enrolled camid %d by its token", decoded.camid)
        return self.store.put_device(decoded.camid, decoded.cmngrid or 0, token)[0]

    def _enroll_serial(self, serial: str, password: str) -> Device | None:
        if any(d.serial == serial.upper() for d in self.store.devices()):
            return None  # a known serial with a wrong password is refused, not re-enrolled
        camid = max([ENROLLED_CAMID_BASE - 1, *(d.camid for d in self.store.devices())]) + 1
        log.info("enrolled camid %d by serial", camid)
        return self.register_device(camid, 0, serial, password)[0]

    def _admin_denied(self, request: web.Request) -> web.Response | None:
        if not self.config.admin_token:
            return _json_error(401, "admin API disabled: the relay has no admin token")
        header = _header(request, "Authorization")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), self.config.admin_token.encode()
        ):
            return _json_error(401, "missing or wrong admin token")
        return None

    async def _provision(self, request: web.Request) -> web.Response:
        serial = request.query.get("serial_id", "").strip()
        if not serial:
            return _json_error(400, "serial_id is required", "serial_id")
        now = asyncio.get_running_loop().time()
        address = request.remote or "unknown"
        # An enrolling relay is reachable from its own machine only: no one to slow down.
        wait = None if self.config.open_enrollment else self._provisioning_failures.retry_after(address, now)
        if wait is not None:
            self.metrics.events.provisioning_answered(429)
            response = _json_error(429, "too many failed attempts from this address; try again later")
            response.headers["Retry-After"] = str(max(1, round(wait)))
            return response
        password = _header(request, "Authorization").strip()
        device = self.store.device_for_serial(serial, password) if password else None
        if device is None and password and self.config.open_enrollment:
            device = self._enroll_serial(serial, password)
        if device is None:
            self._provisioning_failures.record_failure(address, now)
            self.metrics.events.provisioning_answered(401)
            return _json_error(401, "no token registered for this serial and password")
        return web.json_response({"access_token": device.access_token})

    async def _ws_endpoint(self, request: web.Request) -> web.Response:
        if self._device_from_token(request) is None:
            return _json_error(403, "invalid token")
        return web.json_response({"domain": self.public_address, "path": TUNNEL_PATH})

    def _admin_camid(self, request: web.Request) -> int | web.Response:
        """The path's camid for an admin route, or the response refusing the request."""
        if denied := self._admin_denied(request):
            return denied
        text = request.match_info["camid"]
        if not text.isdigit() or not text.isascii() or len(text) > len(str(MAX_CAMID)) or int(text) > MAX_CAMID:
            return _json_error(400, CAMID_RULE, "camid")
        return int(text)

    async def _device_lookup(self, request: web.Request) -> web.Response:
        camid = self._admin_camid(request)
        if isinstance(camid, web.Response):
            return camid
        tunnel = self.tunnels.get(camid)
        if tunnel is None:
            return _json_error(404, f"device {camid} has no tunnel")
        return web.json_response(
            {"camid": camid, "proxy_id": tunnel.proxy_id, "forwards": self._public_forwards(tunnel)}
        )

    def _public_forwards(self, tunnel: RelayTunnel) -> list[dict[str, Any]]:
        result = []
        for forward in tunnel.hello.forwards:
            port = tunnel.ports.get(forward.name)
            if port is None:
                continue  # no port could be bound for it
            item = forward.to_json() | {"proxy_host": self.public_host, "proxy_port": port}
            if forward.protocol == "http":
                item["proxy_url"] = f"http://{_host_port(self.public_host, port, 80)}/"
            result.append(item)
        return result

    async def _add_device(self, request: web.Request) -> web.Response:
        if denied := self._admin_denied(request):
            return denied
        try:
            body = await asyncio.wait_for(request.json(), self.config.connections.body_timeout)
        except asyncio.TimeoutError:
            return _json_error(408, f"body not received within {self.config.connections.body_timeout:g} s", "body")
        except ValueError:
            return _json_error(400, "body must be JSON", "body")
        except RecursionError:
            return _json_error(400, "body must be JSON nested less deeply", "body")
        try:
            camid, cmngrid, serial, password = _parse_device_body(body)
        except _BadRequest as exc:
            return _json_error(400, exc.message, exc.field)
        device, created = self.register_device(camid, cmngrid, serial, password)
        log.info("device %d %s", camid, "added" if created else "re-issued a token")
        return web.json_response(
            {"camid": device.camid, "cmngrid": device.cmngrid, "serial": device.serial,
             "access_token": device.access_token, "created": created},
            status=201 if created else 200,
        )

    async def _list_devices(self, request: web.Request) -> web.Response:
        if denied := self._admin_denied(request):
            return denied
        return web.json_response(
            [
                {"camid": d.camid, "cmngrid": d.cmngrid, "serial": d.serial, "online": d.camid in self.tunnels}
                for d in self.store.devices()
            ]
        )

    async def _delete_device(self, request: web.Request) -> web.Response:
        camid = self._admin_camid(request)
        if isinstance(camid, web.Response):
            return camid
        if not self.store.remove_device(camid):
            return _json_error(404, f"device {camid} is not registered")
        tunnel = self.tunnels.get(camid)
        if tunnel is not None:
            await tunnel.stop()
        return web.Response(status=204)

    # --- the tunnel ------------------------------------------------------------

    async def _tunnel(self, request: web.Request) -> web.StreamResponse:
        device = self._device_from_token(request)
        if device is None:
            log.info("tunnel refused from %s: invalid token", request.remote)
            self.metrics.events.tunnel_refused("invalid_token")
            return _json_error(403, "invalid token")
        ws = web.WebSocketResponse(
            protocols=(SUBPROTOCOL,), autoping=False, max_msg_size=_MAX_MESSAGE, timeout=1.0
        )
        await ws.prepare(request)
        self.guard.trust(request)  # a device's tunnel from here on: its own limits apply
        label = f"relay camid {device.camid}"
        try:
            hello = await _receive_hello(ws)
        except ProtocolError as exc:
            log.warning("%s: bad hello from %s: %s", label, request.remote, exc)
            self.metrics.events.tunnel_refused("bad_hello")
            await ws.close(code=1008, message=str(exc)[:120].encode())
            return ws
        except asyncio.TimeoutError:
            log.warning("%s: no hello from %s within %gs", label, request.remote, HELLO_TIMEOUT)
            self.metrics.events.tunnel_refused("no_hello")
            await ws.close(code=1008, message=b"no hello")
            return ws
        if hello is None:
            return ws
        connection = TunnelConnection(
            Role.RELAY, hello, max_connections=self.config.max_connections, limits=self.config.limits
        )
        session = TunnelSession(ws, connection, label=label, liveness=self.config.liveness)
        tunnel = RelayTunnel(device.camid, hello, session)
        lock = self._device_locks.setdefault(device.camid, asyncio.Lock())
        async with lock:
            old = self.tunnels.get(device.camid)
            if old is not None:
                log.info("%s: new tunnel replaces the old one", label)
                await old.stop()
            if self.store.device(device.camid) is not device:
                # Re-issued or deleted while we waited: this token is no longer valid.
                self.metrics.events.tunnel_refused("token_revoked")
                await ws.close(code=1008, message=b"invalid token")
                return ws
            self.store.hold_forwards(device.camid, [f.name for f in hello.forwards])
            await self._open_listeners(tunnel)
            self.tunnels[device.camid] = tunnel
            self.metrics.events.tunnels_opened += 1
        # camgate's extension message (a reference agent ignores a TEXT after the hello):
        # the public ports, the D payload we take, and the offer of flow control.
        session.announce(
            endpoints=tuple(
                PublicEndpoint(f["name"], f["proxy_host"], f["proxy_port"]) for f in self._public_forwards(tunnel)
            ),
        )
        log.info(
            "%s: tunnel up from %s (agent %s), ports %s",
            label, request.remote, hello.agent_version, ", ".join(f"{n}={p}" for n, p in tunnel.ports.items()),
        )
        try:
            await session.run()
        finally:
            tunnel.close_listeners()
            if self.tunnels.get(device.camid) is tunnel:
                del self.tunnels[device.camid]
            self.metrics.events.tunnel_ended(session)
            tunnel.finished.set()
            log.info("%s: tunnel down", label)
        return ws

    async def _open_listeners(self, tunnel: RelayTunnel) -> None:
        for index, forward in enumerate(tunnel.hello.forwards):
            server = await self._bind_forward(tunnel, index, forward)
            if server is None:
                log.error("relay camid %d: no free public port for forward %s", tunnel.camid, forward.name)
                continue
            tunnel.listeners[forward.name] = server
            tunnel.ports[forward.name] = server.sockets[0].getsockname()[1]
            self.store.assign_port(tunnel.camid, forward.name, tunnel.ports[forward.name])

    async def _bind_forward(self, tunnel: RelayTunnel, index: int, forward: Forward) -> asyncio.Server | None:
        loop = asyncio.get_running_loop()
        remembered = self.store.port_for(tunnel.camid, forward.name)
        for port in self._candidate_ports(remembered):
            try:
                return await loop.create_server(
                    lambda: tunnel.session.viewer_protocol(index), self.config.host, port, reuse_address=True
                )
            except OSError as exc:
                if port == remembered:
                    log.warning(
                        "relay camid %d: forward %s cannot keep port %d (%s); picking another",
                        tunnel.camid, forward.name, port, exc.strerror,
                    )
        return None

    def _candidate_ports(self, remembered: int | None):
        if remembered is not None:
            yield remembered
        if self.config.port_range is None:
            yield 0
            return
        taken = self.store.ports_in_use()
        low, high = self.config.port_range
        for port in range(low, high + 1):
            if port not in taken:
                yield port


async def _receive_hello(ws: web.WebSocketResponse) -> Hello | None:
    """The first TEXT message, parsed; None when the client went away first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HELLO_TIMEOUT
    while True:
        msg = await asyncio.wait_for(ws.receive(), max(0.0, deadline - loop.time()))
        if msg.type is WSMsgType.TEXT:
            return parse_hello(msg.data)
        if msg.type is WSMsgType.PING:
            await ws.pong(msg.data)
        elif msg.type is WSMsgType.BINARY:
            raise ProtocolError("a binary frame came before the hello")
        elif msg.type is not WSMsgType.PONG:
            return None


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


async def start_relay(config: RelayConfig) -> RelayServer:
    server = RelayServer(config)
    await server.start()
    return server


def run_relay(config: RelayConfig) -> None:
    """Run the relay until SIGTERM or SIGINT, then close tunnels and listeners."""

    async def main() -> None:
        limit_repeated_errors()
        server = await start_relay(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
            log.info("relay shutting down")
        finally:
            await server.close()

    raise_open_files_limit()  # before the guard sizes its cap from the limit
    asyncio.run(main())
