"""When to ping a silent peer and when to give it up (uplink protocol, section 4), by a
clock the caller passes in. No I/O."""

from __future__ import annotations

from .protocol import DEAD_AFTER_SECONDS, PING_AFTER_SECONDS

class Liveness:
    """When to ping a silent peer and when to declare it dead, by a clock you pass in."""

    PING = "ping"
    DEAD = "dead"

    def __init__(
        self, now: float, ping_after: float = PING_AFTER_SECONDS, dead_after: float = DEAD_AFTER_SECONDS
    ) -> None:
        if not 0 < ping_after < dead_after:
            raise ValueError("need 0 < ping_after < dead_after")
        self.ping_after = ping_after
        self.dead_after = dead_after
        self._last_heard = now
        self._pinged = False

    def heard(self, now: float) -> None:
        """Anything arrived from the peer (a frame, a ping or a pong)."""
        self._last_heard = now
        self._pinged = False

    def poll(self, now: float) -> str | None:
        """``"ping"`` once per silent spell, ``"dead"`` after ``dead_after``, else None."""
        silent = now - self._last_heard
        if silent >= self.dead_after:
            return self.DEAD
        if silent >= self.ping_after and not self._pinged:
            self._pinged = True
            return self.PING
        return None
