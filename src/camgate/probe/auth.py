"""HTTP authentication as RTSP cameras use it: Basic, and Digest (RFC 2617 / RFC 7616).

Digest as cameras speak it: realm and nonce, MD5 by default (SHA-256 when that is all
that is offered), ``qop=auth`` when the camera offers it (with cnonce and a nonce count)
and the plain RFC 2069 answer when it does not, ``opaque`` echoed back.

Text convention: every header value is "latin-1 text", one character per byte, so
whatever bytes the camera sent (a realm in UTF-8, say) hash back to the same bytes. The
stored username and password are turned into that form from UTF-8 by ``as_wire_text``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
# Preference when a camera offers several Digest challenges: the hash RFC 7616 prefers,
# then the MD5 every camera speaks.
_ALGORITHM_ORDER = ("SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS")


class AuthUnsupported(Exception):
    """No offered challenge is one we can answer; str() says which were offered."""


@dataclass
class Challenge:
    scheme: str  # lower-cased: "digest", "basic", ...
    params: dict[str, str] = field(default_factory=dict)  # names lower-cased


def as_wire_text(text: str) -> str:
    return text.encode("utf-8").decode("latin-1")


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Every challenge in the WWW-Authenticate values: cameras send one header per
    scheme, and RFC 7235 also allows several challenges in one, comma-separated."""
    challenges: list[Challenge] = []
    for value in values:
        challenges += _parse_one_header(value)
    return challenges


def _parse_one_header(text: str) -> list[Challenge]:
    found: list[Challenge] = []
    position, length = 0, len(text)
    while position < length:
        while position < length and text[position] in " \t,":
            position += 1
        match = _TOKEN.match(text, position)
        if not match:
            break
        word, position = match.group(), match.end()
        rest = text[position:].lstrip(" \t")
        if rest.startswith("=") and found:
            # name=value of the challenge being read.
            position = length - len(rest) + 1
            value, position = _read_value(text, position)
            found[-1].params[word.lower()] = value
        elif rest.startswith("=") and not found:
            break  # parameters before any scheme: not a challenge
        else:
            found.append(Challenge(word.lower()))
            # A token68 (Basic's in some servers) or the first parameter follows.
    return found


def _read_value(text: str, position: int) -> tuple[str, int]:
    while position < len(text) and text[position] in " \t":
        position += 1
    if position < len(text) and text[position] == '"':
        out, position = [], position + 1
        while position < len(text) and text[position] != '"':
            if text[position] == "\\" and position + 1 < len(text):
                position += 1
            out.append(text[position])
            position += 1
        return "".join(out), position + 1
    end = position
    while end < len(text) and text[end] not in ", \t":
        end += 1
    return text[position:end], end


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def basic_authorization(username: str, password: str) -> str:
    """Basic credentials; ``username`` and ``password`` in latin-1 text (see above)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode("latin-1")).decode("ascii")


def _h(algorithm: str, text: str) -> str:
    return _HASHES[algorithm.upper().removesuffix("-SESS")](text.encode("latin-1")).hexdigest()


def digest_response(
    *, username: str, password: str, realm: str, nonce: str, method: str, uri: str,
    algorithm: str = "MD5", qop: str | None = None, nc: int = 1, cnonce: str = "",
) -> str:
    """The ``response`` value of RFC 7616 section 3.4.1 (RFC 2069's when ``qop`` is None)."""
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if qop is None:
        return _h(algorithm, f"{ha1}:{nonce}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}")


class DigestSession:
    """Answers one Digest challenge, request after request (the nonce count goes up)."""

    def __init__(self, challenge: Challenge, username: str, password: str, cnonce: str | None = None) -> None:
        params = challenge.params
        self.realm = params.get("realm", "")
        self.nonce = params.get("nonce", "")
        self.opaque = params.get("opaque")
        self.algorithm = params.get("algorithm", "MD5").upper()
        # Echo algorithm only when the camera named one: some old cameras choke on it.
        self.echo_algorithm = "algorithm" in params
        offered = {item.strip().lower() for item in params.get("qop", "").split(",") if item.strip()}
        self.qop = "auth" if "auth" in offered else None
        self.username, self.password = username, password
        self.cnonce = cnonce or os.urandom(8).hex()
        self.nc = 0

    def authorization(self, method: str, uri: str) -> str:
        self.nc += 1
        response = digest_response(
            username=self.username, password=self.password, realm=self.realm, nonce=self.nonce,
            method=method, uri=uri, algorithm=self.algorithm, qop=self.qop, nc=self.nc, cnonce=self.cnonce,
        )
        parts = [f"username={_quote(self.username)}", f"realm={_quote(self.realm)}",
                 f"nonce={_quote(self.nonce)}", f"uri={_quote(uri)}", f"response={_quote(response)}"]
        if self.echo_algorithm:
            parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts += [f"qop={self.qop}", f"nc={self.nc:08x}", f"cnonce={_quote(self.cnonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        return "Digest " + ", ".join(parts)


def pick_authorizer(challenges: list[Challenge], username: str, password: str):
    """A callable (method, uri) -> Authorization value for the best challenge offered,
    or AuthUnsupported. Digest beats Basic: Basic sends the password itself."""
    digests = [c for c in challenges if c.scheme == "digest" and c.params.get("nonce")
               and c.params.get("algorithm", "MD5").upper() in _ALGORITHM_ORDER]
    if digests:
        best = min(digests, key=lambda c: _ALGORITHM_ORDER.index(c.params.get("algorithm", "MD5").upper()))
        return DigestSession(best, username, password).authorization
    if any(c.scheme == "basic" for c in challenges):
        value = basic_authorization(username, password)
        return lambda method, uri: value
    offered = ", ".join(sorted({c.scheme.capitalize() for c in challenges})) or "none"
    raise AuthUnsupported(f"the camera asks for a login scheme the probe does not speak ({offered})")
