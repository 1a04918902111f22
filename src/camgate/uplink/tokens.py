"""The uplink access token (uplink protocol, section 1).

A token is standard base64 of a UTF-8 JSON object. It is decoded and parsed, never
matched on a prefix: tokens beginning ``eyJjYW1pZCI6`` and ``eyJhY2Nlc3Mi`` are both
common. This module is shared by the REST API (camera resolution by ``camid``) and the
tunnel client (which relay to dial), and does no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any


class InvalidToken(ValueError):
    """The text is not base64 of a JSON object with an integer ``camid``."""


def _is_int(value: Any) -> bool:
    # bool is a subclass of int in Python; a token saying "camid": true is not an id.
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class AccessToken:
    raw: str
    camid: int
    payload: dict[str, Any] = field(repr=False)

    @property
    def cmngrid(self) -> int | None:
        value = self.payload.get("cmngrid")
        return value if _is_int(value) else None

    @property
    def uplink(self) -> str | None:
        value = self.payload.get("uplink")
        return value if isinstance(value, str) and value else None

    @property
    def access(self) -> str | None:
        value = self.payload.get("access")
        return value if isinstance(value, str) else None

    def __repr__(self) -> str:  # the raw token is a secret: keep it out of logs
        return f"AccessToken(camid={self.camid}, uplink={self.uplink!r})"


def decode_access_token(raw: str) -> AccessToken:
    """Decode and validate ``raw``; raise :class:`InvalidToken` saying why."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidToken("token is empty")
    text = raw.strip()
    # Some issuers drop the padding; restoring it costs nothing and is unambiguous.
    padded = text + "=" * (-len(text) % 4)
    try:
        decoded = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidToken("token is not valid base64") from None
    try:
        payload = json.loads(decoded.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        # ValueError also covers an integer of more than 4300 digits (Python's limit).
        raise InvalidToken("token does not decode to JSON") from None
    except RecursionError:
        # Arrays or objects nested thousands deep: the token comes from whoever sent the
        # request, so this is bad input like any other, not a crash.
        raise InvalidToken("token's JSON is nested too deeply") from None
    if not isinstance(payload, dict):
        raise InvalidToken("token does not decode to a JSON object")
    camid = payload.get("camid")
    if not _is_int(camid):
        raise InvalidToken("token has no integer camid")
    return AccessToken(raw=text, camid=camid, payload=payload)


def try_decode_camid(raw: str | None) -> int | None:
    """The token's camid, or None for an empty or undecodable token."""
    if not raw:
        return None
    try:
        return decode_access_token(raw).camid
    except InvalidToken:
        return None


def encode_access_token(payload: dict[str, Any]) -> str:
    """Encode a payload the way the reference cloud does (standard base64 of JSON)."""
    if not _is_int(payload.get("camid")):
        raise InvalidToken("token has no integer camid")
    return base64.b64encode(json.dumps(payload).encode("utf-8")).decode("ascii")
