"""Keep glibc's heap steady under tunnel traffic.

Each large WebSocket message gets a buffer of its own (up to 256 KiB), which lives for
microseconds. glibc's malloc adjusts its thresholds as it goes: whether it serves
such blocks from the heap, or from fresh mmap()ed pages, and whether it gives the free
top of the heap back to the kernel after each burst, depends on how the heap happened
to be laid out when traffic started. In the unlucky layout every block costs dozens of
page faults: the same relay was measured using up to half again as much CPU per
megabyte from one run to the next, with no change in the code. Fixing the thresholds once makes it
steady: blocks under 1 MiB come from the heap, and up to 2 MiB of free heap is kept
for the next burst instead of being returned and faulted back in.

And a process that holds thousands of idle tunnels (the relay) gives the heap's free
pages back once a burst of tunnel set-ups is over (:class:`HeapTrimmer`).

This only matters, and only works, where the C library is glibc; elsewhere it does
nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import platform
from typing import Any

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1024 * 1024
TRIM_THRESHOLD = 2 * 1024 * 1024

_done = False


def glibc_function(name: str) -> Any:
    """glibc's function ``name`` (ctypes), or None where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def steady_heap() -> bool:
    """Fix malloc's thresholds for this process (once); True if they are fixed."""
    global _done
    if _done:
        return True
    mallopt = glibc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success.
    _done = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not _done:
        log.debug("mallopt refused the tunnel's heap thresholds; keeping glibc's defaults")
    return _done


def release_free_heap() -> bool:
    """Give the heap's free pages back to the kernel (glibc's malloc_trim), keeping the
    free top that steady_heap keeps for traffic; True where glibc could. Free chunks inside
    the heap are otherwise never returned: after thousands of tunnels have been set up
    at once (a relay restart), the set-up's transient blocks leave holes between the
    tunnels' long-lived objects, about 9 KiB per tunnel that stays resident for ever."""
    malloc_trim = glibc_function("malloc_trim")
    if malloc_trim is None:
        return False
    malloc_trim.argtypes = (ctypes.c_size_t,)
    malloc_trim.restype = ctypes.c_int
    malloc_trim(TRIM_THRESHOLD)  # 1 if it gave pages back, 0 if there were none to give
    return True


class HeapTrimmer:
    """Calls :func:`release_free_heap` once a burst of changes is over: ``quiet`` seconds
    after the last :meth:`changed`, and at most once per burst."""

    def __init__(self, quiet: float = 2.0) -> None:
        self.quiet = quiet
        self.trims = 0
        self._last_change = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def changed(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_change = loop.time()
        if self._timer is None:
            self._timer = loop.call_later(self.quiet, self._due)

    def _due(self) -> None:
        loop = asyncio.get_running_loop()
        wait = self._last_change + self.quiet - loop.time()
        if wait > 0:  # changes came meanwhile: the burst goes on
            self._timer = loop.call_later(wait, self._due)
            return
        self._timer = None
        self.trims += 1
        release_free_heap()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
