"""The relay's Prometheus series (``GET /metrics``), read when Prometheus scrapes.

Live facts (devices, tunnels, open connections, bytes of live tunnels) are read from the
relay's state at scrape time (device counts from the store: fleet-wide when nodes share
one; traffic is this node's); only what leaves no trace in that state is counted as it
happens (``RelayEvents``): refused tunnels, refused provisioning, tunnels opened, and the
bytes of tunnels that have ended, so byte totals never go backwards when one closes.

Readable with the admin token (``Authorization: Bearer <token>``), or without any
``Authorization`` from the addresses in ``CAMGATE_RELAY_METRICS_ALLOW`` (loopback by
default).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Callable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from camgate.metrics.access import address_allowed, parse_allow_list
from camgate.metrics.exposition import render

from .store.base import StoreUnavailable

if TYPE_CHECKING:
    from .relay import RelayServer
    from .session import TunnelSession

# Why a tunnel (the device's WebSocket) was refused or dropped before it came up.
REFUSAL_REASONS = ("invalid_token", "bad_hello", "no_hello", "token_revoked", "store_unavailable")
PROVISIONING_REFUSALS = (401, 429)


class RelayEvents:
    def __init__(self) -> None:
        self.refused: Counter[str] = Counter({reason: 0 for reason in REFUSAL_REASONS})
        self.provisioning_refused: Counter[int] = Counter({status: 0 for status in PROVISIONING_REFUSALS})
        self.tunnels_opened = 0
        self.tunnels_moved = 0  # dropped here because another node holds the device now
        self.ended_bytes_to_devices = 0
        self.ended_bytes_from_devices = 0

    def tunnel_refused(self, reason: str) -> None:
        self.refused[reason] += 1

    def provisioning_answered(self, status: int) -> None:
        if status in self.provisioning_refused:
            self.provisioning_refused[status] += 1

    def tunnel_ended(self, session: "TunnelSession") -> None:
        self.ended_bytes_to_devices += session.connection.bytes_to_peer
        self.ended_bytes_from_devices += session.connection.bytes_from_peer


class RelayCollector:
    def __init__(self, server: "RelayServer", events: RelayEvents) -> None:
        self.server = server
        self.events = events
        # Read from the store before each scrape (collect() cannot await): registered
        # devices and those connected to any node; None while the store cannot answer.
        self.fleet: tuple[int, int | None] | None = None

    async def refresh(self) -> None:
        try:
            self.fleet = await self.server.store.counts()
        except StoreUnavailable:
            self.fleet = None

    def collect(self) -> Iterator[Metric]:
        server, events = self.server, self.events
        sessions = [tunnel.session for tunnel in server.tunnels.values()]
        yield GaugeMetricFamily("camgate_relay_store_up", "1 when the relay's store answers, 0 when it cannot.",
                                value=0 if self.fleet is None else 1)
        if self.fleet is not None:
            registered, connected = self.fleet
            yield GaugeMetricFamily("camgate_relay_devices_registered", "Devices the relay has issued a token to.",
                                    value=registered)
            yield GaugeMetricFamily("camgate_relay_devices_connected",
                                    "Devices with a live tunnel (to any live node when nodes share a store).",
                                    value=len(server.tunnels) if connected is None else connected)
        yield GaugeMetricFamily("camgate_relay_node_devices_connected", "Devices with a live tunnel to this node.",
                                value=len(server.tunnels))
        yield CounterMetricFamily("camgate_relay_tunnels_moved",
                                  "Tunnels dropped here because another node took the device over.",
                                  value=events.tunnels_moved)
        yield CounterMetricFamily("camgate_relay_tunnels_opened", "Tunnels that came up since the relay started.",
                                  value=events.tunnels_opened)
        yield GaugeMetricFamily("camgate_relay_open_connections", "Viewer connections open through all tunnels.",
                                value=sum(session.connection.open_connections for session in sessions))
        traffic = CounterMetricFamily("camgate_relay_bytes", "Payload bytes carried through tunnels, by direction.",
                                      labels=["direction"])
        traffic.add_metric(["to_devices"], events.ended_bytes_to_devices + sum(s.connection.bytes_to_peer for s in sessions))
        traffic.add_metric(["from_devices"], events.ended_bytes_from_devices + sum(s.connection.bytes_from_peer for s in sessions))
        yield traffic
        refused = CounterMetricFamily("camgate_relay_refused_connections", "Device (tunnel) connections refused, by reason.",
                                      labels=["reason"])
        for reason, count in sorted(events.refused.items()):
            refused.add_metric([reason], count)
        yield refused
        provisioning = CounterMetricFamily(
            "camgate_relay_provisioning_refused", "Provisioning requests refused: 401 wrong serial or password, "
            "429 too many failures from one address.", labels=["code"])
        for status, count in sorted(events.provisioning_refused.items()):
            provisioning.add_metric([str(status)], count)
        yield provisioning


class RelayMetrics:
    """The relay's events, its collector and its ``/metrics`` handler."""

    def __init__(
        self, server: "RelayServer", allow: tuple[str, ...], admin_denied: Callable[[web.Request], web.Response | None]
    ) -> None:
        self.events = RelayEvents()
        self.allow = parse_allow_list("CAMGATE_RELAY_METRICS_ALLOW", allow)
        self._admin_denied = admin_denied
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = RelayCollector(server, self.events)
        self.registry.register(self.collector)

    async def handle(self, request: web.Request) -> web.Response:
        if "Authorization" in request.headers:
            if denied := self._admin_denied(request):
                return denied
        elif not address_allowed(request.remote, self.allow):
            return web.json_response(
                {"error": "the admin token is required from this address (Authorization: Bearer <token>)"},
                status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        await self.collector.refresh()
        body, content_type = render(self.registry, request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
