"""A camera's stream path (``rtsp_path``) and the RTSP URLs built from it.

The path is the part of the camera's RTSP URL after host and port, query included
(``/Streaming/Channels/101?transportmode=unicast``). It is joined to an address only
here, so no URL camgate shows or sends ever carries credentials: the probe presents
them in an Authorization header, and the path itself may not hold them.
"""

from __future__ import annotations

import re
import string

MAX_PATH_LENGTH = 512
DEFAULT_PATH = "/"

# RFC 3986 path and query characters, less "@" (it reads as userinfo to careless URL
# parsers) and "#" (a fragment is never sent). Anything else is percent-encoded.
_ALLOWED = frozenset(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:/?%")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CREDENTIAL_KEYS = re.compile(r"(?:^|[?&;])(?:password|passwd|pwd|pass)=", re.IGNORECASE)


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot be a camera's stream path, or None. Empty means "/"."""
    if path == "":
        return None
    if len(path) > MAX_PATH_LENGTH:
        return f"The stream path is longer than {MAX_PATH_LENGTH} characters."
    if not path.startswith("/"):
        return "The stream path must start with '/', e.g. /Streaming/Channels/101."
    if any(ch.isspace() or not ch.isprintable() for ch in path):
        return "The stream path may not contain spaces or control characters (percent-encode them)."
    if "@" in path or path.startswith("//") or "://" in path:
        return ("Give only the path after host and port, without a login: store the camera's "
                "username and password in their own fields.")
    if _CREDENTIAL_KEYS.search(path):
        return "The stream path may not carry a password: store it in the camera's password field."
    bad = sorted({ch for ch in path if ch not in _ALLOWED})
    if bad:
        return f"The stream path may not contain {' '.join(repr(ch) for ch in bad[:5])} (percent-encode it)."
    if _PERCENT.search(path):
        return "A '%' in the stream path must start a percent-encoding such as %20."
    return None


def effective_path(path: str | None) -> str:
    return path or DEFAULT_PATH


def netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def stream_url(host: str, port: int, path: str | None) -> str:
    """rtsp://host:port/path: never with credentials."""
    return f"rtsp://{netloc(host, port)}{effective_path(path)}"
