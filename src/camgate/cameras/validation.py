"""Field rules shared by the REST API and the web forms, so both refuse the same input."""

from __future__ import annotations

import ipaddress
import re

from camgate.uplink.tokens import InvalidToken, decode_access_token

# RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")

PORT_MIN, PORT_MAX = 1, 65535


def ip_problem(value: str) -> str | None:
    """Why ``value`` is not an IPv4/IPv6 address or host name, or None if it is."""
    text = value.strip()
    if not text:
        return "Enter the camera's IP address or host name."
    try:
        ipaddress.ip_address(text.strip("[]"))
        return None
    except ValueError:
        pass
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


def access_token_problem(value: str) -> str | None:
    """Empty is allowed (the camera may be provisioned by serial and MAC)."""
    if not value:
        return None
    try:
        decode_access_token(value)
    except InvalidToken as error:
        return f"Invalid access token: {error}."
    return None


def normalise_ip(value: str) -> str:
    return value.strip().strip("[]") if ":" in value else value.strip()
