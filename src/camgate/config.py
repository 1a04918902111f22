"""Settings read from the environment (and a `.env` file), and the data directory.

One place for every knob, so the web server, the agent, the CLI and the settings page
all agree on what is in effect and where it came from.
"""

from __future__ import annotations

import os
import uuid
from typing import NamedTuple
from pathlib import Path

import platformdirs
from dotenv import load_dotenv

from camgate.core import port_range_text

# A .env in the working directory is read once; real environment variables win.
load_dotenv(Path.cwd() / ".env", override=False)

# Every step of a camera health probe (name lookup, connect, each RTSP or HTTP answer)
# gets this long: a camera that takes a connection and never answers is "unreachable".
PROBE_STEP_TIMEOUT_S = 5.0
DEFAULT_PROBE_INTERVAL_S = 30

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    pass


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def max_body_bytes() -> int:
    """Largest request body accepted: Django's middleware and the web front agree."""
    return env_int("CAMGATE_MAX_BODY_BYTES", 1024 * 1024)


def data_dir() -> Path:
    """Where the database and the gateway UUID live; never inside the code tree."""
    configured = os.environ.get("CAMGATE_DATA_DIR")
    path = Path(configured) if configured else Path(platformdirs.user_data_dir("camgate"))
    # Owner-only: it holds camera passwords and tokens (datadir.secure fixes old installs).
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def gateway_uuid() -> str:
    """The gateway's identity, created once and kept in the data directory.

    It names the gateway's own tunnel (serial = password = UUID), so it must never
    change across restarts or upgrades.
    """
    path = data_dir() / "gateway-uuid"
    try:
        return str(uuid.UUID(path.read_text().strip()))
    except FileNotFoundError:
        pass
    from camgate.datadir import write_private_file

    # Created whole (a temporary file linked into place), so a reader never sees half a
    # UUID; if another process won the race, its UUID is the one.
    tmp = path.with_name(f".gateway-uuid.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    write_private_file(tmp, str(uuid.uuid4()) + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return str(uuid.UUID(path.read_text().strip()))


class Setting(NamedTuple):
    """One documented setting, for the README table and the settings page."""

    name: str
    default: str
    help: str
    secret: bool = False

    @property
    def from_environment(self) -> bool:
        return self.name in os.environ

    @property
    def display_value(self) -> str:
        value = os.environ.get(self.name, self.default)
        if self.secret and value:
            return "(set)"
        return value


SETTINGS: tuple[Setting, ...] = (
    Setting("CAMGATE_DATA_DIR", "per-user data dir", "Database (SQLite) and gateway UUID."),
    Setting("CAMGATE_SECRET_KEY", "generated into the data dir", "Django secret key.", secret=True),
    Setting("CAMGATE_DEBUG", "false", "Django debug pages; never on a real site."),
    Setting("CAMGATE_ALLOWED_HOSTS", "*", "Comma-separated host names the web server answers."),
    Setting("CAMGATE_TRUSTED_PROXIES", "127.0.0.1,::1", "Addresses whose X-Forwarded-* headers are trusted."),
    Setting("CAMGATE_CSRF_TRUSTED_ORIGINS", "", "Extra origins allowed to POST forms (https://gw.example.com)."),
    Setting("GATEWAY_ADMIN_USERNAME", "admin", "Admin user created at first start."),
    Setting("GATEWAY_ADMIN_PASSWORD", "admin", "Its password at first start; change it.", secret=True),
    Setting("CAMGATE_GATEWAY_NAME", "host name", "Name shown on the dashboard."),
    Setting("CAMGATE_MAX_BODY_BYTES", "1048576", "Largest API request body accepted (413 above)."),
    Setting("CAMGATE_UPLINK_HOST", "", "Relay host[:port] for every tunnel, instead of the token's uplink. Unset: camgate run starts a relay on loopback."),
    Setting("CAMGATE_UPLINK_TLS", "true", "Reach the relay over TLS (wss/https)."),
    Setting("CAMGATE_UPLINK_VERIFY", "true", "Verify the relay's TLS certificate."),
    Setting("CAMGATE_UPLINK_CAFILE", "", "Extra CA certificate (PEM) to trust for a self-hosted relay."),
    Setting("CAMGATE_PROVISIONING_URL", "https://camera.vxg.io", "Where devices without a token get one by serial."),
    Setting("CAMGATE_GATEWAY_TUNNEL", "true", "Keep the gateway's own tunnel (web + SSH) to the relay."),
    Setting("CAMGATE_GATEWAY_HTTP_HOST", "127.0.0.1", "Host of the web server the gateway tunnel forwards."),
    Setting("CAMGATE_GATEWAY_HTTP_PORT", "8001", "Port the gateway tunnel forwards: the web server's tunnel port, never its main one."),
    Setting("CAMGATE_SSH_HOST", "127.0.0.1", "Host of the SSH server the gateway tunnel forwards."),
    Setting("CAMGATE_SSH_PORT", "22", "SSH port the gateway tunnel forwards (0: none)."),
    Setting("CAMGATE_PROBE_INTERVAL", str(DEFAULT_PROBE_INTERVAL_S), "Seconds between two health probes of a camera."),
    Setting("CAMGATE_PROBE_NETWORKS", "", "Comma-separated networks (CIDR) health probes, ONVIF reads and discovery may reach; empty: any."),
    Setting("CAMGATE_DISCOVERY_INTERFACES", "", "Comma-separated interfaces ONVIF discovery multicasts on; empty: every IPv4 one but loopback."),
    Setting("CAMGATE_EMBEDDED_RELAY_PORT", "8800", "Port of the loopback relay that camgate run starts; unset: its --port + 800 (8800 for 8000)."),
    Setting("CAMGATE_RELAY_PORT_RANGE", port_range_text(), "Public ports the embedded relay gives forwards."),
    Setting("CAMGATE_RELAY_ADMIN_TOKEN", "generated into the data dir", "Bearer token of the relay's admin API.", secret=True),
    Setting("CAMGATE_SNAPSHOT_MIN_INTERVAL", "10", "Seconds between two snapshot captures of one camera."),
    Setting("CAMGATE_SNAPSHOT_TIMEOUT", "10", "Seconds a snapshot capture may take (then 503)."),
    Setting("CAMGATE_METRICS_ALLOW", "127.0.0.1,::1", "Addresses/CIDRs that may read /metrics without an API token (empty: none)."),
    Setting("CAMGATE_RELAY_METRICS_ALLOW", "127.0.0.1,::1", "Addresses/CIDRs that may read the relay's /metrics without its admin token."),
)
