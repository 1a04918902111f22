"""Counting failed attempts per client address, so guessing is slow (no I/O here).

Provisioning passwords are camera MAC addresses: few enough unknown bits that a relay on
the internet must not let one address try them quickly. A device that is simply not
registered yet asks about once a minute, far below the limit, so it is never blocked.
"""

from __future__ import annotations

from collections import OrderedDict, deque


class FailureLimiter:
    def __init__(self, limit: int = 60, window: float = 60.0, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str, now: float) -> float | None:
        """Seconds until ``key`` may try again, or None if it may now."""
        failures = self._failures.get(key)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        if len(failures) < self.limit:
            return None
        return failures[0] + self.window - now

    def record_failure(self, key: str, now: float) -> None:
        failures = self._failures.setdefault(key, deque())
        self._failures.move_to_end(key)
        failures.append(now)
        if len(failures) > self.limit:
            failures.popleft()
        # Memory stays bounded whatever the number of addresses: forget the stalest.
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)
