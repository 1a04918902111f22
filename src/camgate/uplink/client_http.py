"""The HTTP client tunnel clients make their calls with (provisioning, ws-endpoint and
the WebSocket itself).

A TunnelClient alone opens its own. A process that runs many (the agent: one per camera)
gives them one to share: an aiohttp session with its connector, cookie jar, locks and
DNS cache is several KiB, which the agent held once per camera for nothing. The shared
connector has no cap on connections, because every tunnel's WebSocket holds one for as
long as the tunnel is up.
"""

from __future__ import annotations

import aiohttp

DEFAULT_HTTP_TIMEOUT = 20.0  # seconds for a provisioning or ws-endpoint call, and to connect


def client_timeout(http_timeout: float = DEFAULT_HTTP_TIMEOUT) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, sock_connect=10, connect=http_timeout)


def shared_session(local_addr: tuple[str, int] | None = None) -> aiohttp.ClientSession:
    """A session for many tunnel clients; call it in their event loop, and close it after
    stopping them. ``local_addr``: the address to connect from (benchmarks spread a fleet
    of clients over several loopback addresses, as devices come from many sites)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, local_addr=local_addr), timeout=client_timeout()
    )
