"""Writes the relay's state file off the event loop, one write for many changes.

A change marks the state dirty and starts a writer task if none runs; the writer copies
the state (cheap, in the loop), writes it in a thread, and goes again while changes
came meanwhile. So 2000 devices connecting at once cost a few writes, not one each, and
the event loop never waits on the disk. Whoever must know a change is on disk (a token
just issued, before it is handed out) awaits :meth:`StateWriter.saved`, which returns
once a write that began after the change has finished, or raises StoreUnavailable.
"""

from __future__ import annotations

import asyncio
import logging

from ..relay_store import RelayStore, write_snapshot
from .base import StoreUnavailable

log = logging.getLogger(__name__)


class StateWriter:
    def __init__(self, state: RelayStore) -> None:
        assert state.path is not None
        self.state = state
        self.changes = 0  # changes made so far
        self.written = 0  # changes on disk
        self._task: asyncio.Task[None] | None = None
        state.deferred_save = self.changed

    def changed(self) -> None:
        self.changes += 1
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a tool, a test): write now
            write_snapshot(self.state.path, self.state.snapshot())
            self.written = self.changes
            return
        self._start()

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write_all(), name="relay state writer")
            self._task.add_done_callback(_log_failure)

    async def _write_all(self) -> None:
        while self.written < self.changes:
            target = self.changes
            await asyncio.to_thread(write_snapshot, self.state.path, self.state.snapshot())
            self.written = target

    async def saved(self) -> None:
        """Return once every change made so far is on disk."""
        target = self.changes
        while self.written < target:
            self._start()  # again, if the last write failed
            task = self._task
            assert task is not None
            try:
                await asyncio.shield(task)
            except OSError as exc:
                raise StoreUnavailable(f"the state file cannot be written: {exc.strerror or exc}") from exc


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("writing the relay state file failed: %s", task.exception())
