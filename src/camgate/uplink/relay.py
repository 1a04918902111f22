"""The cloud relay: one aiohttp app on one port, plus a public TCP listener per forward.

Routes (uplink protocol, sections 2-5, and camgate's admin API):

    GET    /v1/token?serial_id=SERIAL    Authorization: PASSWORD   provisioning
    GET    /api/ws-endpoint              Authorization: <token>    where to dial
    GET    /ra-proxy                     Authorization: <token>    the tunnel (WebSocket)
    GET    /api/device/<camid> ... /api/devices                    the admin API (relay_admin.py)
    GET    /metrics                      Bearer <admin token>      Prometheus (or from an allowed address)

A device's forwards keep their public port across reconnects and relay restarts: the
port is remembered per (camid, forward name) in the relay's state, for the forwards the
device announces and, for a grace period, those it announced before (relay_store.py).

The state lives in a store (store/): the JSON state file by default, or PostgreSQL shared
by several relay nodes (``store_url``), each answering for the whole fleet and sending a
device to the node that holds it (relay_node.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import ssl
from typing import Any

from aiohttp import web

from camgate import event_loop
from camgate.log_rate import limit_repeated_errors
from camgate.process_limits import raise_open_files_limit

from . import collector
from .connection_guard import ConnectionGuard
from .guarded_listener import GuardedSite
from .heap import HeapTrimmer
from .connection import Role, TunnelConnection
from .enrollment import ENROLLMENT_HEADER, presents_secret
from .protocol import SUBPROTOCOL, ProtocolError, PublicEndpoint
from .relay_admin import RelayAdminApi
from .relay_config import RelayConfig, _host_port
from .relay_http import header, json_error, store_unavailable_middleware
from .relay_metrics import RelayMetrics
from .public_ports import PublicPorts
from .relay_node import NodeKeeper
from .relay_tunnel import HELLO_TIMEOUT, DeviceLocks, RelayTunnel, receive_hello
from .ws_link import WebSocketLink
from .ws_link import accept as accept_websocket
from .relay_store import Device
from .store import ENROLLED_CAMID_BASE, NodeInfo, RelayStateStore, StoreUnavailable, open_store
from .store.file import FileStore
from .session import TunnelSession
from .tokens import InvalidToken, decode_access_token, encode_access_token

log = logging.getLogger(__name__)

TUNNEL_PATH = "/ra-proxy"
_MAX_MESSAGE = 1024 * 1024  # WebSocket messages beyond this end the tunnel (aiohttp limit)
_CLOSE_TIMEOUT = 1.0  # how long a closing tunnel waits for the peer's CLOSE
# What closing waits for requests still in hand once the tunnels are closed (aiohttp's
# default is 60 s): a tunnel's handshake caught by the close never gets its hello, since
# aiohttp reads nothing more from a connection once it closes, and would hold it 10 s.
CLOSE_GRACE_S = 1.0
__all__ = ["ENROLLED_CAMID_BASE", "RelayConfig", "RelayServer", "_host_port", "run_relay", "start_relay"]


class RelayServer:
    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.store: RelayStateStore = open_store(config)
        self.tunnels: dict[int, RelayTunnel] = {}
        self.device_locks = DeviceLocks()  # one tunnel per device at a time through _tunnel
        self._background: set[asyncio.Task[None]] = set()  # held so they are not collected
        self._carrying: set[asyncio.Task[None]] = set()  # tunnels aiohttp has let go of (_carry_own)
        self.heap = HeapTrimmer()  # after tunnels come or go in numbers, their free heap goes back
        self.guard = ConnectionGuard(config.connections)
        self.public_ports = PublicPorts(config.host, config.port_range, self.store)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.admin = RelayAdminApi(self, config.admin_token)
        self.metrics = RelayMetrics(self, config.metrics_allow, self.admin.denied)
        self.node = NodeKeeper(self, config.heartbeat_interval) if self.store.shared else None
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
            self.app, access_log=None, handle_signals=False, keepalive_timeout=config.connections.idle_timeout,
            shutdown_timeout=CLOSE_GRACE_S,
        )
        await self._runner.setup()
        # The store opens before the port answers, so no request meets it unopened; only
        # a relay on an ephemeral port (tests) must bind first to know its address.
        self.port = config.port
        if config.port:
            await self._open_store()
        await GuardedSite(self._runner, config.host, config.port, self.guard).start()
        self.port = self._runner.addresses[0][1]
        if not config.port:
            await self._open_store()
        if self.node is not None:
            self.node.start()
        if not config.admin_token:
            log.warning("relay has no admin token: the admin API refuses every request")
        log.info("relay listening on %s:%d, public address %s", config.host, self.port, self.public_address)

    async def _open_store(self) -> None:
        try:
            await self.store.open(NodeInfo(self.node_name or "", self.public_host, self.public_address,
                                           self.config.port_range))
        except BaseException:
            await self._runner.cleanup()
            raise

    async def close(self) -> None:
        if self._runner is not None:
            # Stop listening first: a device that retries at once meets a refused
            # connection (and tries again soon), not a relay that takes its tunnel and drops it.
            for site in list(self._runner.sites):
                await site.stop()
        if self.node is not None:
            await self.node.stop()
        await asyncio.gather(*(tunnel.stop() for tunnel in list(self.tunnels.values())))
        for task in list(self._carrying):  # those still waiting for a hello or their turn
            task.cancel()
        await asyncio.gather(*self._carrying, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.guard.close()
        self.heap.close()
        await self.store.close()

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
    def node_name(self) -> str | None:
        """This node's name in a shared store; None with the state file."""
        if not self.store.shared:
            return None
        return self.config.node_name or self.public_address

    @property
    def uplink(self) -> str:
        """The address a token names: where its device asks ws-endpoint."""
        return self.config.uplink_host or self.public_address

    @property
    def url(self) -> str:
        host = f"[{self.public_host}]" if ":" in self.public_host else self.public_host
        return f"{'https' if self.tls else 'http'}://{host}:{self.public_port}"

    # --- devices ---------------------------------------------------------------

    def _new_token(self, camid: int, cmngrid: int) -> str:
        return encode_access_token(
            {"camid": camid, "cmngrid": cmngrid, "uplink": self.uplink, "token": secrets.token_urlsafe(32),
             "access": "all"}
        )

    async def issue_device(
        self, camid: int, cmngrid: int = 0, serial: str | None = None, password: str | None = None,
        only_new: bool = False,
    ) -> tuple[Device | None, bool]:
        """Issue (or re-issue) ``camid``'s access token; True when the device is new."""
        device, created = await self.store.put_device(
            camid, cmngrid, self._new_token(camid, cmngrid), serial, password, only_new)
        if device is not None:
            self._revoke_old_tunnel(camid, created)
        return device, created

    def register_device(
        self, camid: int, cmngrid: int = 0, serial: str | None = None, password: str | None = None
    ) -> tuple[Device, bool]:
        """issue_device without awaiting, for a relay on its state file (tests, benchmarks)."""
        if not isinstance(self.store, FileStore):
            raise TypeError("register_device needs the state-file store; await issue_device instead")
        device, created = self.store.state.put_device(camid, cmngrid, self._new_token(camid, cmngrid), serial, password)
        self._revoke_old_tunnel(camid, created)
        return device, created

    def _revoke_old_tunnel(self, camid: int, created: bool) -> None:
        old = self.tunnels.get(camid)
        if old is not None and not created:
            # The old token is revoked; its tunnel must not outlive it.
            task = asyncio.get_running_loop().create_task(old.stop())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def tunnel(self, camid: int) -> RelayTunnel | None:
        return self.tunnels.get(camid)

    def buffered_bytes(self) -> int:
        """Bytes waiting in the relay for viewers or for WebSockets, all tunnels."""
        return sum(t.session.buffered_to_sockets() + t.session.queued_to_websocket for t in self.tunnels.values())

    # --- HTTP ---------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application(
            client_max_size=64 * 1024, middlewares=[self.guard.middleware, store_unavailable_middleware]
        )
        app.add_routes(
            [
                web.get("/v1/token", self._provision),
                web.get("/api/ws-endpoint", self._ws_endpoint),
                web.get(TUNNEL_PATH, self._tunnel),
                *self.admin.routes(),
                web.get("/metrics", self.metrics.handle),
            ]
        )
        return app

    async def _device_from_token(self, request: web.Request) -> Device | None:
        token = header(request, "Authorization").strip()
        # The reference agent sends the raw token; tolerate a "Bearer " prefix, which
        # base64 can never start with, so nothing is ambiguous.
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        if not token:
            return None
        device = await self.store.device_for_token(token)
        if device is None and self._may_enroll(request):
            device = await self._enroll_token(token)
        return device

    def _may_enroll(self, request: web.Request) -> bool:
        if not self.config.open_enrollment:
            return False
        secret = self.config.enrollment_secret
        return not secret or presents_secret(secret, header(request, ENROLLMENT_HEADER))

    async def _enroll_token(self, token: str) -> Device | None:
        try:
            decoded = decode_access_token(token)
        except InvalidToken:
            return None
        # only_new: a camid that holds another token is not this one's
        device, _ = await self.store.put_device(decoded.camid, decoded.cmngrid or 0, token, only_new=True)
        if device is not None:
            log.info("enrolled camid %d by its token", decoded.camid)
        return device

    async def _enroll_serial(self, serial: str, password: str) -> Device | None:
        if await self.store.serial_known(serial):
            return None  # a known serial with a wrong password is refused, not re-enrolled
        for _ in range(3):  # another node may take the same camid first
            camid = await self.store.next_enrolled_camid()
            device, _ = await self.issue_device(camid, 0, serial, password, only_new=True)
            if device is not None:
                log.info("enrolled camid %d by serial", camid)
                return device
        return None

    async def _provision(self, request: web.Request) -> web.Response:
        serial = request.query.get("serial_id", "").strip()
        if not serial:
            return json_error(400, "serial_id is required", "serial_id")
        address = request.remote or "unknown"
        # An enrolling relay is reachable from its own machine only: no one to slow down.
        wait = None if self.config.open_enrollment else await self.store.retry_after(address)
        if wait is not None:
            self.metrics.events.provisioning_answered(429)
            response = json_error(429, "too many failed attempts from this address; try again later")
            response.headers["Retry-After"] = str(max(1, round(wait)))
            return response
        password = header(request, "Authorization").strip()
        device = await self.store.device_for_serial(serial, password) if password else None
        if device is None and password and self._may_enroll(request):
            device = await self._enroll_serial(serial, password)
        if device is None:
            await self.store.record_failure(address)
            self.metrics.events.provisioning_answered(401)
            return json_error(401, "no token registered for this serial and password")
        return web.json_response({"access_token": device.access_token})

    async def _ws_endpoint(self, request: web.Request) -> web.Response:
        device = await self._device_from_token(request)
        if device is None:
            return json_error(403, "invalid token")
        # The node holding the device, else the least loaded live one (None: this node).
        domain = await self.store.endpoint_for(device.camid)
        return web.json_response({"domain": domain or self.public_address, "path": TUNNEL_PATH})

    def public_forwards(self, tunnel: RelayTunnel) -> list[dict[str, Any]]:
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

    # --- the tunnel ------------------------------------------------------------

    async def _tunnel(self, request: web.Request) -> web.StreamResponse:
        device = await self._device_from_token(request)
        if device is None:
            log.info("tunnel refused from %s: invalid token", request.remote)
            self.metrics.events.tunnel_refused("invalid_token")
            return json_error(403, "invalid token")
        ws = web.WebSocketResponse(
            protocols=(SUBPROTOCOL,), autoping=False, max_msg_size=_MAX_MESSAGE, timeout=_CLOSE_TIMEOUT
        )
        try:
            link = await accept_websocket(ws, request)  # camgate reads it from here on (ws_link.py)
        except ConnectionResetError:
            # The device left during the handshake: no one to serve. Not the half-made
            # WebSocket, which aiohttp would close and log a traceback for ("Call
            # .prepare() first"): its write of this fails quietly instead.
            log.info("relay camid %d: left during the WebSocket handshake", device.camid)
            return web.Response()
        self.guard.trust(request)  # a device's tunnel from here on: its own limits apply
        guarded = self.guard.by_transport.get(request.transport)
        if not isinstance(link, WebSocketLink) or guarded is None:  # the tunnel runs in this handler
            await self._carry(device, link, request.remote)
            return ws
        remote = request.remote
        _release(request, guarded)
        link.detach()
        task = asyncio.get_running_loop().create_task(
            self._carry_own(device, link, remote), name=f"relay camid {device.camid}")
        self._carrying.add(task)
        task.add_done_callback(self._carrying.discard)
        return web.Response()  # aiohttp holds no transport now: its write of this fails quietly

    async def _carry_own(self, device: Device, link: WebSocketLink, remote: str | None) -> None:
        try:
            await self._carry(device, link, remote)
        finally:  # cancelled as the relay closes, before a session closed it
            link.close_connection()

    async def _carry(self, device: Device, ws: Any, remote: str | None) -> None:
        """The tunnel on WebSocket ``ws``, from the hello until it ends."""
        label = f"relay camid {device.camid}"
        try:
            hello = await receive_hello(ws)
        except ProtocolError as exc:
            log.warning("%s: bad hello from %s: %s", label, remote, exc)
            self.metrics.events.tunnel_refused("bad_hello")
            await ws.close(code=1008, message=str(exc)[:120].encode())
            return
        except asyncio.TimeoutError:
            log.warning("%s: no hello from %s within %gs", label, remote, HELLO_TIMEOUT)
            self.metrics.events.tunnel_refused("no_hello")
            await ws.close(code=1008, message=b"no hello")
            return
        if hello is None:
            return
        connection = TunnelConnection(
            Role.RELAY, hello, max_connections=self.config.max_connections, limits=self.config.limits
        )
        session = TunnelSession(ws, connection, label=label, liveness=self.config.liveness)
        tunnel = RelayTunnel(device.camid, hello, session)
        async with self.device_locks.hold(device.camid):
            old = self.tunnels.get(device.camid)
            if old is not None:
                log.info("%s: new tunnel replaces the old one", label)
                await old.stop()
            refusal = await self._take_device(device, tunnel)
            if refusal is not None:
                tunnel.close_listeners()
                reason, code, message = refusal
                self.metrics.events.tunnel_refused(reason)
                await ws.close(code=code, message=message)
                return
            self.tunnels[device.camid] = tunnel
            self.metrics.events.tunnels_opened += 1
            self.heap.changed()
        # camgate's extension message (a reference agent ignores a TEXT after the hello):
        # the public ports, the D payload we take, and the offer of flow control.
        session.announce(
            endpoints=tuple(
                PublicEndpoint(f["name"], f["proxy_host"], f["proxy_port"]) for f in self.public_forwards(tunnel)
            ),
        )
        log.info(
            "%s: tunnel up from %s (agent %s), ports %s",
            label, remote, hello.agent_version, ", ".join(f"{n}={p}" for n, p in tunnel.ports.items()),
        )
        try:
            await session.run()
        finally:
            tunnel.close_listeners()
            if self.tunnels.get(device.camid) is tunnel:
                del self.tunnels[device.camid]
            self.metrics.events.tunnel_ended(session)
            tunnel.ended()
            self.heap.changed()
            log.info("%s: tunnel down", label)
            with contextlib.suppress(StoreUnavailable):  # the next heartbeat forgets it then
                await self.store.release(device.camid, tunnel.proxy_id)

    async def _take_device(self, device: Device, tunnel: RelayTunnel) -> tuple[str, int, bytes] | None:
        """Lease the tunnel's ports and make this node the device's holder; or why not
        (the metrics reason, WebSocket close code and message)."""
        revoked = ("token_revoked", 1008, b"invalid token")
        claiming = self.node.claiming if self.node is not None else {}
        try:
            current = await self.store.device(device.camid)
            if current is None or current.access_token != device.access_token:
                return revoked  # re-issued or deleted while we waited
            await self.store.hold_forwards(device.camid, [f.name for f in tunnel.hello.forwards])
            await self.public_ports.open(tunnel)
            claiming[device.camid] = tunnel.proxy_id
            if not await self.store.claim(device.camid, tunnel.proxy_id, self.public_forwards(tunnel)):
                return revoked
        except StoreUnavailable as exc:
            log.warning("relay camid %d: tunnel refused: %s", device.camid, exc.reason)
            return "store_unavailable", 1013, b"relay store unavailable"  # 1013: try again later
        finally:
            claiming.pop(device.camid, None)
        return None


async def start_relay(config: RelayConfig) -> RelayServer:
    server = RelayServer(config)
    await server.start()
    return server


def run_relay(config: RelayConfig) -> None:
    """Run the relay until SIGTERM or SIGINT, then close tunnels and listeners."""

    async def main() -> None:
        limit_repeated_errors()
        collector.settle()  # its modules loaded: their objects are the process's for good
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
    event_loop.run(main())


def _release(request: web.BaseRequest, guarded: Any) -> None:
    """aiohttp lets go of ``request``'s connection, which a WebSocketLink reads now.

    aiohttp keeps a great deal per WebSocket it serves for as long as its handler runs:
    the upgrade request and its headers, a request handler with its HTTP parser and
    queue, two tasks and their frames, the response and its writer; on a relay holding
    thousands of idle tunnels that was about 9 KiB of each one's 25. So the handler is
    told the connection is gone (its transport taken away first, or it would close it),
    the guard's connection passes nothing more to it (the link tells the guard itself),
    and the tunnel goes on in a task of the relay's own."""
    guarded.inner = None
    handler = request.protocol
    handler.transport = None
    handler.connection_lost(None)
