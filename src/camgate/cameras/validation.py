"""Field rules shared by the REST API and the web forms, so both refuse the same input."""

from __future__ import annotations

import ipaddress
import re

from camgate.cameras.models import Camera
from camgate.probe.rtsp_url import MAX_PATH_LENGTH as MAX_RTSP_PATH_LENGTH  # noqa: F401 (one rule for API and UI)
from camgate.probe.rtsp_url import path_problem as rtsp_path_problem  # noqa: F401
from camgate.uplink.tokens import InvalidToken, decode_access_token

# RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")

# An IPv6 zone id (fe80::1%eth0) names a network interface: Linux allows 15 bytes.
_ZONE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")

PORT_MIN, PORT_MAX = 1, 65535

# The camid column (and a path's id) is a signed 64-bit integer.
CAMID_MIN, CAMID_MAX = -(2**63), 2**63 - 1


def ip_problem(value: str) -> str | None:
    """Why ``value`` is not an IPv4/IPv6 address or host name, or None if it is."""
    text = value.strip()
    if not text:
        return "Enter the camera's IP address or host name."
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        pass
    else:
        zone = getattr(address, "scope_id", None)
        if zone is not None and not _ZONE_ID.match(zone):
            return f"{value!r}: an IPv6 zone id is an interface name (letters, digits, '.', '_', '-'; at most 15)."
        return None
    if len(text) > 253:
        return "Host name is longer than 253 characters."
    labels = text.rstrip(".").split(".")
    if all(_HOST_LABEL.match(label) for label in labels) and not labels[-1].isdigit():
        return None
    return f"{value!r} is not an IPv4 or IPv6 address or a host name."


def port_problem(value: int) -> str | None:
    if not PORT_MIN <= value <= PORT_MAX:
        return f"Port must be between {PORT_MIN} and {PORT_MAX}."
    return None


# Said when a lost race on the unique camid column is caught at save time.
DUPLICATE_CAMID = "A camera with this token's camid already exists on this gateway."


def access_token_problem(value: str, camera_id: int | None = None) -> str | None:
    """Why ``value`` cannot be the access token of camera ``camera_id`` (None: a new
    camera), or None. Empty is allowed: the camera may be provisioned by serial and MAC.
    A camid names one camera, so a token whose camid another camera holds is refused."""
    if not value:
        return None
    try:
        camid = decode_access_token(value).camid
    except InvalidToken as error:
        return f"Invalid access token: {error}."
    if not CAMID_MIN <= camid <= CAMID_MAX:
        return f"Invalid access token: its camid {camid} does not fit in 64 bits."
    holder = Camera.objects.filter(camid=camid).exclude(pk=camera_id).values_list("camera_id", flat=True).first()
    if holder is not None:
        return f"A camera with camid {camid} already exists on this gateway (camera {holder})."
    return None


def normalise_ip(value: str) -> str:
    return value.strip().strip("[]") if ":" in value else value.strip()
