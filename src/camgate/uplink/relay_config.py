"""How a relay (node) is configured: what `camgate relay` and `camgate run` set."""

from __future__ import annotations

from dataclasses import dataclass, field

from camgate.core import DEFAULT_PORT_RANGE

from .connection_guard import ConnectionLimits
from .flow import FlowLimits
from .protocol import LIMITS
from .relay_store import PREVIOUS_PORTS_GRACE_S
from .session import LivenessTimes


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
    # postgresql://... : the state shared with other relay nodes instead of the state file.
    store_url: str | None = None
    node_name: str | None = None  # this node's name in the shared store (default: public address)
    # The address tokens name (their "uplink", where a device asks ws-endpoint): with several
    # nodes, a name reaching any live one (DNS listing them, or a load balancer).
    uplink_host: str | None = None
    heartbeat_interval: float = 5.0
    node_ttl: float = 15.0  # a node is taken for dead when its heartbeat is older than this
    # How long a device keeps the ports of forwards it stopped announcing.
    previous_ports_grace: float = PREVIOUS_PORTS_GRACE_S
    tls_cert: str | None = None
    tls_key: str | None = None
    max_connections: int = LIMITS.max_connections
    # Enroll whoever asks: provisioning issues a token to an unknown serial, and a
    # well-formed token for an unknown camid is taken as that device's. Only for a relay
    # nothing but its own machine can reach (`camgate run`'s embedded relay).
    open_enrollment: bool = False
    # With open_enrollment: enroll only requests that carry this secret (enrollment.py);
    # empty: whoever asks (tests).
    enrollment_secret: str = field(default="", repr=False)
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
