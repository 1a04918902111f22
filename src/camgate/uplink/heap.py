"""Keep glibc's heap steady under tunnel traffic.

Each WebSocket read allocates a 256 KiB buffer, and each message 64 KiB more; they live
for microseconds. glibc's malloc adjusts its thresholds as it goes: whether it serves
such blocks from the heap, or from fresh mmap()ed pages, and whether it gives the free
top of the heap back to the kernel after each burst, depends on how the heap happened
to be laid out when traffic started. In the unlucky layout every block costs dozens of
page faults: the same relay was measured using up to half again as much CPU per
megabyte from one run to the next, with no change in the code. Fixing the thresholds once makes it
steady: blocks under 1 MiB come from the heap, and up to 2 MiB of free heap is kept
for the next burst instead of being returned and faulted back in.

This only matters, and only works, where the C library is glibc; elsewhere it does
nothing.
"""

from __future__ import annotations

import ctypes
import logging
import platform

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1024 * 1024
TRIM_THRESHOLD = 2 * 1024 * 1024

_done = False


def steady_heap() -> bool:
    """Fix malloc's thresholds for this process (once); True if they are fixed."""
    global _done
    if _done:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success.
    _done = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not _done:
        log.debug("mallopt refused the tunnel's heap thresholds; keeping glibc's defaults")
    return _done
