"""The gateway's series, read when Prometheus scrapes: cameras and tunnels from the
database (what the agent last reported), reconcile passes from the agent itself.

Per camera, the labels are the local ``camera_id``, the VMS's ``camid`` (empty when its
token carries none) and the camera's ``name`` (may be empty); never an address, a token
or a credential.

To add per-camera series: write a function that takes the cameras
and yields metric families (``state_family`` and ``camera_gauge`` do the work), append
it to ``CAMERA_FAMILIES``, and name any related table it reads in ``CAMERA_RELATED``.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from camgate.agent.control import AgentUnavailable, send_command
from camgate.cameras.models import Camera, TunnelStatus, camera_health
from camgate.core import GATEWAY_STATUS_KEY, TunnelState
from camgate.probe.result import HealthState

log = logging.getLogger(__name__)

CAMERA_LABELS = ("camera_id", "camid", "name")
UNKNOWN = "unknown"  # not reported yet (the agent has not seen the camera)
TUNNEL_STATES = (*(state.value for state in TunnelState), UNKNOWN)
HEALTH_STATES = tuple(state.value for state in HealthState)
AGENT_ANSWER_TIMEOUT_S = 2.0  # a scrape must not hang on a stuck agent


def camera_labels(camera: Camera) -> list[str]:
    return [str(camera.camera_id), "" if camera.camid is None else str(camera.camid), camera.name]


def state_family(
    name: str, documentation: str, labels: Sequence[str], states: Sequence[str],
    rows: Iterable[tuple[list[str], str]],
) -> GaugeMetricFamily:
    """An enum as Prometheus likes it: one series per state, 1 for the current one."""
    family = GaugeMetricFamily(name, documentation, labels=[*labels, "state"])
    for label_values, current in rows:
        for state in states:
            family.add_metric([*label_values, state], 1.0 if state == current else 0.0)
    return family


def camera_gauge(name: str, documentation: str, cameras: Iterable[Camera], value: Callable[[Camera], float]):
    family = GaugeMetricFamily(name, documentation, labels=CAMERA_LABELS)
    for camera in cameras:
        family.add_metric(camera_labels(camera), value(camera))
    return family


def tunnel_families(prefix: str, what: str, labels: Sequence[str], rows: list[tuple[list[str], TunnelStatus | None]]):
    """State, open connections and bytes of tunnels, from the agent's reports."""
    yield state_family(
        f"{prefix}_state", f"State of {what} (1 for the current state; unknown: not reported yet).",
        labels, TUNNEL_STATES, ((values, status.state if status else UNKNOWN) for values, status in rows),
    )
    connections = GaugeMetricFamily(f"{prefix}_open_connections", f"Connections open through {what}.", labels=labels)
    traffic = CounterMetricFamily(
        f"{prefix}_bytes", f"Bytes carried by {what} since it last connected, by direction.",
        labels=[*labels, "direction"],
    )
    for values, status in rows:
        connections.add_metric(values, status.open_connections if status else 0)
        traffic.add_metric([*values, "to_cloud"], status.bytes_to_cloud if status else 0)
        traffic.add_metric([*values, "from_cloud"], status.bytes_from_cloud if status else 0)
    yield connections
    yield traffic


def enabled_families(cameras: list[Camera]) -> Iterator[Metric]:
    yield camera_gauge("camgate_camera_enabled", "1 when the camera's switch is on (it should have a tunnel).",
                       cameras, lambda camera: 1.0 if camera.enabled else 0.0)


def camera_tunnel_families(cameras: list[Camera]) -> Iterator[Metric]:
    rows = [(camera_labels(camera), camera.status) for camera in cameras]
    yield from tunnel_families("camgate_camera_tunnel", "the camera's tunnel", CAMERA_LABELS, rows)


def camera_health_families(cameras: list[Camera]) -> Iterator[Metric]:
    """What the agent's last probe found about each camera itself (not its tunnel)."""
    healths = [(camera, camera_health(camera)) for camera in cameras]
    yield state_family(
        "camgate_camera_health_state", "The camera's own health from its last probe (1 for the current state; "
        "unknown: not probed yet, or inactive).", CAMERA_LABELS, HEALTH_STATES,
        ((camera_labels(camera), health["state"]) for camera, health in healths),
    )
    latency = GaugeMetricFamily("camgate_camera_probe_latency_seconds",
                                "How long the camera's last probe took; absent before the first.", labels=CAMERA_LABELS)
    for camera, health in healths:
        if health["latency_ms"] is not None:
            latency.add_metric(camera_labels(camera), health["latency_ms"] / 1000)
    yield latency


CAMERA_RELATED: list[str] = ["tunnel_status", "health_report"]
CAMERA_FAMILIES: list[Callable[[list[Camera]], Iterable[Metric]]] = [
    enabled_families, camera_tunnel_families, camera_health_families,
]


def gateway_tunnel_families() -> Iterator[Metric]:
    status = TunnelStatus.objects.filter(key=GATEWAY_STATUS_KEY).first()
    yield from tunnel_families("camgate_gateway_tunnel", "the gateway's own tunnel", (), [([], status)])


def agent_families(answer: dict | None) -> Iterator[Metric]:
    yield GaugeMetricFamily("camgate_agent_up", "1 when the agent answered on its control socket.",
                            value=1.0 if answer else 0.0)
    if not answer:
        return
    yield GaugeMetricFamily("camgate_agent_start_time_seconds", "When the agent started (Unix time).",
                            value=answer["started_at"])
    yield HistogramMetricFamily(
        "camgate_agent_reconcile_duration_seconds", "Time the agent took for a reconcile pass.",
        buckets=[(str(bound), count) for bound, count in answer["buckets"]], sum_value=answer["seconds_sum"],
    )
    yield CounterMetricFamily("camgate_agent_reconcile_errors", "Reconcile passes that failed.",
                              value=answer["errors"])


def ask_agent() -> dict | None:
    """The agent's reconcile stats, or None when it cannot say (down, busy, or odd)."""
    try:
        answer = send_command("metrics", timeout=AGENT_ANSWER_TIMEOUT_S)
    except AgentUnavailable as error:
        log.info("metrics: no agent stats: %s", error)
        return None
    stats = answer.get("reconcile") if answer.get("ok") else None
    if not _well_formed(stats):
        log.warning("metrics: the agent's answer is not reconcile stats")
        return None
    return stats


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _well_formed(stats) -> bool:
    return (
        isinstance(stats, dict)
        and all(_number(stats.get(key)) for key in ("started_at", "errors", "seconds_sum"))
        and isinstance(stats.get("buckets"), list)
        and bool(stats["buckets"])
        and all(isinstance(pair, list) and len(pair) == 2 and _number(pair[1]) for pair in stats["buckets"])
        and stats["buckets"][-1][0] == "+Inf"
    )


class GatewayCollector:
    """Registered once; ``collect`` runs at every scrape."""

    def collect(self) -> Iterator[Metric]:
        cameras = list(Camera.objects.select_related(*CAMERA_RELATED).order_by("camera_id"))
        for families in CAMERA_FAMILIES:
            yield from families(cameras)
        yield from gateway_tunnel_families()
        yield from agent_families(ask_agent())
