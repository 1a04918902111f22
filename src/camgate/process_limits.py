"""Raising the open-files limit of processes that hold a socket per peer.

The relay holds one per tunnel, per public listener and per viewer; the agent one per
tunnel and per viewer connection. Many systems start processes with a soft limit of
1024 open files though the hard limit is far higher, and the soft one is theirs to raise.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)

# Where the hard limit is "unlimited" (not on Linux, whose ceiling is fs.nr_open), ask
# for this many: more than a relay needs, and accepted where unlimited is not.
_UNLIMITED_ASK = 1 << 20


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _UNLIMITED_ASK if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            log.warning("open files limit stays at %d (cannot raise it to %d: %s)", soft, target, error)
            return soft
        log.info("open files limit raised from %d to %d", soft, target)
        return target
    return soft
