"""What tunnels should exist, as a pure function of the camera table and the settings.

The agent compares this plan with the tunnels it runs: a tunnel whose spec is unchanged
keeps running, so editing a camera's serial (which its tunnel does not use) does not
drop its viewers, while editing its ip does restart it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from camgate import config
from camgate.core import GATEWAY_STATUS_KEY
from camgate.uplink.spec import DEFAULT_PROVISIONING_URL, TunnelSpec
from camgate.uplink.enrollment import ENROLLMENT_SECRET_ENV
from camgate.uplink.protocol import Forward, ProtocolError


@dataclass(frozen=True)
class UplinkSettings:
    uplink_host: str | None = None  # overrides every token's uplink when set
    tls: bool = True
    verify: bool = True
    cafile: str | None = None
    provisioning_url: str = DEFAULT_PROVISIONING_URL
    gateway_tunnel: bool = True
    # The web server's tunnel port (`camgate web`'s --tunnel-port, its port + 1): requests
    # there are never taken for a trusted proxy's, though the agent sends them from
    # loopback on behalf of anyone on the internet.
    gateway_http_host: str = "127.0.0.1"
    gateway_http_port: int = 8001
    ssh_host: str = "127.0.0.1"
    ssh_port: int = 22  # 0: no SSH forward
    # The relay is camgate's own on loopback (`camgate run` with no cloud set): a camera
    # with neither token nor serial + MAC enrolls under a name made from its local id.
    embedded_relay: bool = False
    # Shown to the embedded relay so it enrolls this instance's devices (enrollment.py);
    # not one of ENVIRONMENT_NAMES, so the settings page never shows it.
    enrollment_secret: str = field(default="", repr=False)

    @classmethod
    def from_environment(cls) -> "UplinkSettings":
        values = {}
        for name, variable in ENVIRONMENT_NAMES.items():
            default = getattr(cls, name)
            if isinstance(default, bool):
                values[name] = config.env_bool(variable, default)
            elif isinstance(default, int):
                values[name] = config.env_int(variable, default)
            else:
                values[name] = config.env_str(variable) or default
        return cls(**values, enrollment_secret=config.env_str(ENROLLMENT_SECRET_ENV))

    def as_environment(self) -> dict[str, str]:
        """These settings under their environment variables' names, as the settings page
        shows them: what the agent really runs with (under `camgate run` the supervisor
        points it at the embedded relay, whatever the web server's environment says)."""
        return {variable: _as_text(getattr(self, name)) for name, variable in ENVIRONMENT_NAMES.items()}


def _as_text(value) -> str:
    """A setting's value as the environment spells it (what from_environment reads back)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# The environment variable behind each UplinkSettings field.
ENVIRONMENT_NAMES = {
    "uplink_host": "CAMGATE_UPLINK_HOST",
    "tls": "CAMGATE_UPLINK_TLS",
    "verify": "CAMGATE_UPLINK_VERIFY",
    "cafile": "CAMGATE_UPLINK_CAFILE",
    "provisioning_url": "CAMGATE_PROVISIONING_URL",
    "gateway_tunnel": "CAMGATE_GATEWAY_TUNNEL",
    "gateway_http_host": "CAMGATE_GATEWAY_HTTP_HOST",
    "gateway_http_port": "CAMGATE_GATEWAY_HTTP_PORT",
    "ssh_host": "CAMGATE_SSH_HOST",
    "ssh_port": "CAMGATE_SSH_PORT",
    "embedded_relay": "CAMGATE_EMBEDDED_RELAY",
}


@dataclass(frozen=True, slots=True)
class CameraRow:
    """The camera fields a tunnel depends on (and nothing else, so edits to other
    fields never restart a tunnel)."""

    camera_id: int
    access_token: str
    ip: str
    http_port: int
    rtsp_port: int
    serial: str | None
    mac: str | None
    rtsp_only: bool


@dataclass(frozen=True, slots=True)  # slots: one per camera
class PlannedTunnel:
    key: str
    camera_id: int | None
    spec: TunnelSpec | None
    problem: str = ""  # why there is no spec: shown as the tunnel's failed reason


def camera_key(camera_id: int) -> str:
    return f"camera-{camera_id}"


def _common(settings: UplinkSettings) -> dict:
    return {
        "uplink": settings.uplink_host,
        "tls": settings.tls,
        "verify": settings.verify,
        "cafile": settings.cafile,
        "provisioning_url": settings.provisioning_url,
        # Only ever to camgate's own relay on loopback, never to a cloud.
        "enrollment_secret": settings.enrollment_secret if settings.embedded_relay else "",
    }


def plan_camera(camera: CameraRow, settings: UplinkSettings, gateway_uuid: str) -> PlannedTunnel:
    key = camera_key(camera.camera_id)
    forwards = [Forward("rtsp", "tcp", camera.ip, camera.rtsp_port)]
    if not camera.rtsp_only:
        forwards.insert(0, Forward("http", "http", camera.ip, camera.http_port))
    if camera.access_token:
        credentials = {"token": camera.access_token}
    elif camera.serial and camera.mac:
        credentials = {"serial": camera.serial, "password": camera.mac}
    elif settings.embedded_relay:
        credentials = {"serial": f"CAMGATE-{gateway_uuid}-CAMERA-{camera.camera_id}", "password": gateway_uuid}
    else:
        return PlannedTunnel(key, camera.camera_id, None, "no access token, and no serial + MAC to provision one")
    try:
        spec = TunnelSpec(key=key, forwards=tuple(forwards), **credentials, **_common(settings))
    except ProtocolError as error:
        return PlannedTunnel(key, camera.camera_id, None, str(error))
    return PlannedTunnel(key, camera.camera_id, spec)


def plan_gateway(gateway_uuid: str, settings: UplinkSettings) -> PlannedTunnel:
    forwards = [Forward("web", "http", settings.gateway_http_host, settings.gateway_http_port)]
    if settings.ssh_port:
        forwards.append(Forward("ssh", "tcp", settings.ssh_host, settings.ssh_port))
    spec = TunnelSpec(
        key=GATEWAY_STATUS_KEY,
        forwards=tuple(forwards),
        serial=gateway_uuid,
        password=gateway_uuid,
        **_common(settings),
    )
    return PlannedTunnel(GATEWAY_STATUS_KEY, None, spec)


def camera_row(camera) -> CameraRow:
    """The CameraRow of any object with the camera's fields (a model instance)."""
    return CameraRow(**{name: getattr(camera, name) for name in CameraRow.__dataclass_fields__})


def tunnel_restarts(before: CameraRow, after: CameraRow) -> bool:
    """Whether the agent restarts a camera's tunnel for this edit: only when its spec
    changes (an http_port edit of an RTSP-only camera, say, changes nothing)."""
    settings = UplinkSettings(embedded_relay=True)
    return plan_camera(before, settings, "").spec != plan_camera(after, settings, "").spec


def plan_tunnels(active_cameras: list[CameraRow], gateway_uuid: str, settings: UplinkSettings) -> dict[str, PlannedTunnel]:
    plan = {camera_key(c.camera_id): plan_camera(c, settings, gateway_uuid) for c in active_cameras}
    if settings.gateway_tunnel:
        plan[GATEWAY_STATUS_KEY] = plan_gateway(gateway_uuid, settings)
    return plan
