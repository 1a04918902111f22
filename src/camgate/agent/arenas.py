"""One malloc arena for all the agent's threads.

glibc gives each thread that allocates an arena of its own (up to eight per core), and
an arena keeps memory that was freed in it for the next allocation there (up to the
trim threshold, 2 MiB once uplink/heap.py has set it). The agent's threads (database
calls, name lookups) allocate little and seldom, yet with 500 cameras their arenas held
0.6 MiB more than one shared arena does. Sharing the main thread's arena costs them a
lock they take so rarely that nobody waits.

Only where the C library is glibc; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes

from camgate.uplink.heap import glibc_function

M_ARENA_MAX = -8  # from glibc's malloc.h


def one_arena() -> bool:
    """Call before the process starts a thread; True if glibc took it."""
    mallopt = glibc_function("mallopt")
    return mallopt is not None and mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(1)) == 1
