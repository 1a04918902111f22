"""How the front tells the web app which of its listeners a request came in on.

Only the front reaches the app server (a Unix socket in a private directory), and it
removes any copy of this header a client sent, so the app can believe it. A request
that carries it without the front can only claim less trust, never more.
"""

from __future__ import annotations

from collections.abc import Mapping

ORIGIN_HEADER = "X-Camgate-Origin"
ORIGIN_META = "HTTP_X_CAMGATE_ORIGIN"  # the same header, as WSGI names it
TUNNEL = "tunnel"


def came_through_tunnel(meta: Mapping) -> bool:
    """True for a request from the gateway's own tunnel: the agent connects from
    loopback on behalf of anyone on the internet, so nothing about it is believed."""
    return meta.get(ORIGIN_META) == TUNNEL
