"""The relay's state in its JSON state file (relay_store.RelayStore): one relay process,
zero setup. The default, and what `camgate run`'s embedded relay uses."""

from __future__ import annotations

import asyncio
import contextlib
import os

from ..ratelimit import FailureLimiter
from ..relay_store import PREVIOUS_PORTS_GRACE_S, Device, RelayStore
from .base import ENROLLED_CAMID_BASE, RelayStateStore, StoreUnavailable
from .file_writer import StateWriter


class FileStore(RelayStateStore):
    def __init__(
        self, path: str | os.PathLike[str] | None = None, previous_ports_grace: float = PREVIOUS_PORTS_GRACE_S
    ) -> None:
        super().__init__()
        # Synchronous and in memory: what the relay's own code and tests may read directly.
        self.state = RelayStore(path, previous_ports_grace)
        # Changes are written off the event loop; a device is on disk before it is answered.
        self._writer = StateWriter(self.state) if path else None
        self._failures = FailureLimiter()

    async def close(self) -> None:
        with contextlib.suppress(StoreUnavailable):  # said in the log already
            await self._saved()

    async def _saved(self) -> None:
        if self._writer is not None:
            await self._writer.saved()

    async def devices(self) -> list[Device]:
        return self.state.devices()

    async def device(self, camid: int) -> Device | None:
        return self.state.device(camid)

    async def device_for_token(self, token: str) -> Device | None:
        return self.state.device_for_token(token)

    async def device_for_serial(self, serial: str, password: str) -> Device | None:
        return self.state.device_for_serial(serial, password)

    async def serial_known(self, serial: str) -> bool:
        return any(d.serial == serial.upper() for d in self.state.devices())

    async def put_device(
        self, camid: int, cmngrid: int, access_token: str, serial: str | None = None, password: str | None = None,
        only_new: bool = False,
    ) -> tuple[Device | None, bool]:
        if only_new and self.state.device(camid) is not None:
            return None, False
        result = self.state.put_device(camid, cmngrid, access_token, serial, password)
        await self._saved()
        return result

    async def next_enrolled_camid(self) -> int:
        return max([ENROLLED_CAMID_BASE - 1, *(d.camid for d in self.state.devices())]) + 1

    async def remove_device(self, camid: int) -> bool:
        removed = self.state.remove_device(camid)
        await self._saved()
        return removed

    async def port_for(self, camid: int, forward_name: str) -> int | None:
        return self.state.port_for(camid, forward_name)

    async def assign_port(self, camid: int, forward_name: str, port: int) -> bool:
        self.state.assign_port(camid, forward_name, port)
        return True

    async def ports_in_use(self) -> set[int]:
        return self.state.ports_in_use()

    async def hold_forwards(self, camid: int, names: list[str] | tuple[str, ...]) -> None:
        self.state.hold_forwards(camid, names)

    async def retry_after(self, address: str) -> float | None:
        return self._failures.retry_after(address, asyncio.get_running_loop().time())

    async def record_failure(self, address: str) -> None:
        self._failures.record_failure(address, asyncio.get_running_loop().time())
