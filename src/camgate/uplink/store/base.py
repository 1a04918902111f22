"""What every relay state store offers: the relay talks to this interface only.

Two stores implement it: the JSON state file (``file.py``, one relay process, the
default) and PostgreSQL (``postgres.py``, any number of relay nodes sharing one fleet).
Every method is a coroutine so the relay's event loop never blocks on the database; a
store that cannot answer raises :class:`StoreUnavailable`, which the relay turns into a
503 naming the reason, while live tunnels keep flowing.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable

from ..relay_store import Device

# A device enrolled by serial gets a camid from here up, clear of the ids a VMS assigns.
ENROLLED_CAMID_BASE = 1_000_000_000


class StoreUnavailable(Exception):
    """The store cannot answer now (database down or unreachable); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class NodeInfo:
    """How the other nodes and the devices reach this relay node."""

    name: str
    public_host: str  # the host viewers dial for this node's public ports
    public_address: str  # host[:port] a device opens its WebSocket to (ws-endpoint's domain)
    port_range: tuple[int, int] | None = None


@dataclass(frozen=True)
class Holding:
    """Which node holds a device's tunnel, and the public forwards it answers for it."""

    camid: int
    node: str
    proxy_id: str
    forwards: list[dict[str, Any]] = field(default_factory=list)


DeviceChanged = Callable[[int], None]


class RelayStateStore(abc.ABC):
    """Devices and their tokens, public-port leases of this node, provisioning failures,
    and (in a shared store) which node holds which device."""

    # False: this process is the whole relay (state file); nothing else holds devices.
    shared: bool = False

    def __init__(self) -> None:
        self._on_device_changed: DeviceChanged | None = None

    def on_device_changed(self, callback: DeviceChanged) -> None:
        """Call ``callback(camid)`` when another node took ``camid`` over, re-issued its
        token or deleted it, so this node re-checks a tunnel it has for it."""
        self._on_device_changed = callback

    async def open(self, node: NodeInfo | None = None) -> None:  # noqa: B027 - a file has nothing to open
        """Get ready to answer, as ``node`` (how this relay is reached)."""

    async def close(self) -> None:  # noqa: B027
        pass

    # --- devices -------------------------------------------------------------

    @abc.abstractmethod
    async def devices(self) -> list[Device]: ...

    @abc.abstractmethod
    async def device(self, camid: int) -> Device | None: ...

    @abc.abstractmethod
    async def device_for_token(self, token: str) -> Device | None: ...

    @abc.abstractmethod
    async def device_for_serial(self, serial: str, password: str) -> Device | None: ...

    @abc.abstractmethod
    async def serial_known(self, serial: str) -> bool: ...

    @abc.abstractmethod
    async def put_device(
        self, camid: int, cmngrid: int, access_token: str, serial: str | None = None, password: str | None = None,
        only_new: bool = False,
    ) -> tuple[Device | None, bool]:
        """Add or re-issue a device; True when it is new. The old token stops working.
        With ``only_new``, a camid already registered is left alone: (None, False)."""

    @abc.abstractmethod
    async def next_enrolled_camid(self) -> int: ...

    @abc.abstractmethod
    async def remove_device(self, camid: int) -> bool: ...

    # --- this node's public ports ---------------------------------------------

    @abc.abstractmethod
    async def port_for(self, camid: int, forward_name: str) -> int | None: ...

    @abc.abstractmethod
    async def assign_port(self, camid: int, forward_name: str, port: int) -> bool:
        """Lease ``port`` on this node to the forward; False when another device holds it."""

    @abc.abstractmethod
    async def ports_in_use(self) -> set[int]:
        """Ports of this node some device holds: its current forwards' and, for the grace
        period, its previous set's."""

    @abc.abstractmethod
    async def hold_forwards(self, camid: int, names: list[str] | tuple[str, ...]) -> None:
        """``camid`` connects announcing ``names``: see relay_store.RelayStore.hold_forwards."""

    # --- provisioning failures ---------------------------------------------------

    @abc.abstractmethod
    async def retry_after(self, address: str) -> float | None:
        """Seconds until ``address`` may try provisioning again, or None if it may now."""

    @abc.abstractmethod
    async def record_failure(self, address: str) -> None: ...

    # --- holding devices ------------------------------------------------------------

    async def claim(self, camid: int, proxy_id: str, forwards: list[dict[str, Any]]) -> bool:
        """This node holds ``camid``'s tunnel now, taking it over from any other (which is
        told, and drops it); False when the device was deleted meanwhile."""
        return True

    async def release(self, camid: int, proxy_id: str) -> None:
        """The tunnel ``proxy_id`` ended; forget it unless another node holds the device."""

    async def holding(self, camid: int) -> Holding | None:
        """The holding of ``camid`` on another live node (None: on none, or on this one)."""
        return None

    async def endpoint_for(self, camid: int) -> str | None:
        """The ``public_address`` of the node ``camid`` should dial; None for this node."""
        return None

    async def counts(self) -> tuple[int, int | None]:
        """Devices registered, and those with a tunnel on any live node (None: only this
        node knows, by its own tunnels)."""
        return len(await self.devices()), None

    async def online(self) -> set[int] | None:
        """Camids with a tunnel on any live node; None: only this node knows (its own)."""
        return None

    async def moved_away(self, local: dict[int, str]) -> list[int]:
        """Which of this node's tunnels (camid -> proxy_id) are no longer its own: taken
        over by another node, re-issued or deleted meanwhile."""
        return []

    async def heartbeat(self, local: dict[int, str]) -> list[int]:
        """Say this node is alive, forget holdings of its own beyond ``local`` (its tunnels,
        camid -> proxy_id), and answer ``moved_away(local)``."""
        return []
