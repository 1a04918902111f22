"""What one tunnel should be (:class:`TunnelSpec`), apart from the client that keeps it up.

The web server decides whether an edit restarts a camera's tunnel from the specs it would
give (agent/plan.py): that needs the spec, not aiohttp's client and the session's I/O,
which :mod:`.client` imports (a few hundred milliseconds of every web server's start).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .protocol import AGENT_VERSION, LIMITS, Forward, ProtocolError, check_forwards

DEFAULT_PROVISIONING_URL = "https://camera.vxg.io"


@dataclass(frozen=True, kw_only=True, slots=True)  # slots: the agent holds one per camera
class TunnelSpec:
    """What one tunnel should be. Either ``token`` or ``serial`` + ``password`` is needed."""

    key: str  # names the device in logs and status, e.g. "camera 12" or "gateway"
    forwards: tuple[Forward, ...]
    token: str = field(default="", repr=False)
    serial: str = ""
    password: str = field(default="", repr=False)
    uplink: str | None = None  # "host" or "host:port", instead of the token's uplink
    tls: bool = True
    verify: bool = True
    cafile: str | None = None  # extra CA to trust (a self-hosted relay's own CA)
    provisioning_url: str = DEFAULT_PROVISIONING_URL
    enrollment_secret: str = field(default="", repr=False)  # the embedded relay's (enrollment.py)
    websocket_buffer_size: int = LIMITS.reference_payload
    agent_version: str = AGENT_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "forwards", check_forwards(self.forwards))
        if not self.token and not self.serial:
            raise ProtocolError(f"{self.key}: a tunnel needs a token or a serial to provision one")
