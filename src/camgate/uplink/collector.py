"""The relay process's garbage collector: set for the reconnect storm after a restart.

With CPython's defaults (a young collection every 700 new objects, a full one whenever
a quarter more objects have survived) a relay taking back a thousand tunnels after a
restart spent 0.24-0.44 s of its CPU collecting, in pauses of up to 150 ms, each time
going over the tens of thousands of objects its imports left, which live as long as
the process (bench/recovery.py, with gc.callbacks timing each collection). Those are
frozen out of every collection once the relay has started, and young collections come
ten times less often: 0.10-0.17 s, in pauses of at most 40 ms.
"""

from __future__ import annotations

import gc

YOUNG_COLLECTION_EVERY = 7000  # new objects (CPython's default: 700)
OLDER_COLLECTIONS_EVERY = 20  # younger collections (CPython's default: 10)


def settle() -> None:
    """Collect what starting left, then leave what survives out of later collections."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, OLDER_COLLECTIONS_EVERY, OLDER_COLLECTIONS_EVERY)
