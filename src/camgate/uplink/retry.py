"""When a tunnel client tries again: after a loss, after failures, and after an answer
that will not change soon. Pure: the client asks, and sleeps what it is told."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Pauses before reconnecting.

    A tunnel lost after a quiet spell (the relay restarted, a network blip) is retried at
    once: within ``storm_window``, at random, so that a thousand devices do not all
    arrive in the same instant. Only failed attempts, or losses in quick succession (a
    relay that drops us right after accepting), back off: ``first``, then doubling (each
    pause drawn from its upper half) up to ``cap``.

    But a try whose connection was refused within ``restarting`` seconds of a loss is
    retried within ``first`` again, not doubled, and not counted as a failure: nothing
    listens on the relay's port while it restarts, for a second or two, and a refused
    connection costs it nothing. So a device is back within ``first`` of the relay
    listening again, not after a pause grown meanwhile to seconds; and the devices'
    tries, each at a random point of ``first``, stay spread over it.
    """

    storm_window: float = 0.5
    first: tuple[float, float] = (0.25, 0.5)
    cap: float = 30.0
    quiet_after: float = 10.0  # a loss this long after the last one counts as the first
    restarting: float = 10.0  # how long after a loss a refused connection means a restart

    def after_loss(self) -> float:
        return random.uniform(0.0, self.storm_window)

    def while_restarting(self, since_loss: float | None) -> float | None:
        """The pause after a refused connection ``since_loss`` seconds after the tunnel
        was lost (None: it was never up); None when that is no longer a restart."""
        if since_loss is None or since_loss >= self.restarting:
            return None
        return random.uniform(*self.first)

    def delay(self, failures: int) -> float:
        low, high = self.first
        if failures <= 1:
            return random.uniform(low, high)
        top = min(self.cap, high * 2 ** (failures - 1))
        return random.uniform(max(low, top / 2), top)


@dataclass(frozen=True)
class SlowRetry:
    """Retrying an answer that will not change soon (no token registered for a serial):
    every ``every`` seconds for ``for_`` seconds, then every ``then``."""

    every: float = 60.0
    for_: float = 300.0
    then: float = 3600.0

    def delay(self, waited: float) -> float:
        return self.every if waited < self.for_ else self.then


class RecentRefusals:
    """Addresses that refused a connection a moment ago, for all of a process's tunnel
    clients. While a relay restarts, an agent's thousand tunnels each dialling it every
    0.25-0.5 s (see Backoff) keep most of a core busy for nothing; after one of them is
    refused, the others skip their tries there for ``hold`` seconds, so that about one
    dial each ``hold`` finds the relay back, and every tunnel tries again within
    ``first`` plus ``hold`` of it listening."""

    def __init__(self, hold: float = 0.1) -> None:
        self.hold = hold
        self._at: dict[str, float] = {}

    def refused(self, address: str, now: float) -> None:
        self._at[address] = now

    def just_refused(self, address: str, now: float) -> bool:
        at = self._at.get(address)
        if at is None:
            return False
        if now - at < self.hold:
            return True
        del self._at[address]
        return False
