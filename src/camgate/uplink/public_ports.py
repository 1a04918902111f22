"""A tunnel's public ports on the relay: one listener per forward, on the port the device
had before when it can be had, else on one picked from the range."""

from __future__ import annotations

import asyncio
import logging

from .listen_sockets import PublicListeners
from .port_picker import PortPicker
from .protocol import Forward
from .relay_tunnel import RelayTunnel
from .store import RelayStateStore

log = logging.getLogger(__name__)


class PublicPorts:
    """Binds the listeners of each tunnel that comes up, and leases their ports in the store."""

    def __init__(self, host: str, port_range: tuple[int, int] | None, store: RelayStateStore) -> None:
        self.picker = PortPicker(port_range)
        self.listeners = PublicListeners(host)
        self.store = store

    async def open(self, tunnel: RelayTunnel) -> None:
        """A listener for each of the tunnel's forwards, in ``tunnel.listeners`` and its
        port in ``tunnel.ports``; a forward no port could be bound for is logged and left out."""
        for index, forward in enumerate(tunnel.hello.forwards):
            bound = await self._bind(tunnel, index, forward)
            if bound is None:
                log.error("relay camid %d: no free public port for forward %s", tunnel.camid, forward.name)
                continue
            tunnel.listeners[forward.name], tunnel.ports[forward.name] = bound

    async def _bind(self, tunnel: RelayTunnel, index: int, forward: Forward) -> tuple[asyncio.Server, int] | None:
        """A listener for ``forward`` and its port; None when no port could be bound.

        The device's remembered port first; the ports in use are asked for only when that
        one cannot be had. Asked for each bind, the set of every device's ports took the
        relay 0.1 s of CPU in all when a thousand devices reconnected after a restart
        (bench/recovery.py's profile), and costs a query each with a shared store."""
        remembered = await self.store.port_for(tunnel.camid, forward.name)
        if remembered is not None:
            bound = await self._listen(tunnel, index, forward, remembered, remembered)
            if bound is not None:
                return bound
        taken = await self.store.ports_in_use()
        for port in self.picker.candidates(taken):
            bound = await self._listen(tunnel, index, forward, port, remembered)
            if bound is not None:
                return bound
        return None

    async def _listen(
        self, tunnel: RelayTunnel, index: int, forward: Forward, port: int, remembered: int | None
    ) -> tuple[asyncio.Server, int] | None:
        """A listener for ``forward`` on ``port`` (0: an ephemeral one) and its port; None
        when that port cannot be bound, or was leased meanwhile to another device."""
        self.picker.binding.add(port)
        try:
            try:
                server = await self.listeners.listen(lambda: tunnel.session.viewer_protocol(index), port)
            except OSError as exc:
                if port == remembered:
                    log.warning(
                        "relay camid %d: forward %s cannot keep port %d (%s); picking another",
                        tunnel.camid, forward.name, port, exc.strerror,
                    )
                return None
            # Asked only for an ephemeral port: uvloop keeps the socket objects that
            # .sockets makes, 0.2 KiB a listener for the life of the tunnel.
            bound = port or server.sockets[0].getsockname()[1]
            if bound == remembered or await self.store.assign_port(tunnel.camid, forward.name, bound):
                return server, bound
            server.close()  # leased meanwhile to another device of this node
            return None
        finally:
            self.picker.binding.discard(port)
