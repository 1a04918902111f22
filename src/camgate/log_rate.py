"""Logging the same problem at a bounded rate.

A peer can make a long-running process hit the same error thousands of times a second
(asyncio logs every accept() that finds no free file descriptor, with a traceback), and
the log then costs more disk and CPU than the fault. :class:`RepeatLimiter` lets through
the first ``burst`` records of a kind in each ``window`` seconds and then says how many
it held back; a kind is the logger, level and message template (its arguments may vary).
Records below WARNING pass untouched: they are not errors, and tunnels coming up must
all be logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any, Callable, Hashable

BURST = 10
WINDOW_S = 60.0


class RepeatCounter:
    """For each kind: whether one more may be logged now, and how many were held back."""

    def __init__(
        self, burst: int = BURST, window: float = WINDOW_S, max_kinds: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.window = window
        self.max_kinds = max_kinds
        self.clock = clock
        self._kinds: OrderedDict[Hashable, list[float]] = OrderedDict()  # kind -> [start, logged, held]

    def allow(self, kind: Hashable) -> int | None:
        """None to hold this one back; otherwise how many of its kind were held back
        since the last one logged (0 usually)."""
        now = self.clock()
        entry = self._kinds.get(kind)
        if entry is None or now - entry[0] >= self.window:
            held = int(entry[2]) if entry is not None else 0
            self._kinds[kind] = [now, 1, 0]
            self._kinds.move_to_end(kind)
            while len(self._kinds) > self.max_kinds:
                self._kinds.popitem(last=False)
            return held
        if entry[1] < self.burst:
            entry[1] += 1
            return 0
        entry[2] += 1
        return None


def _held_back_note(held: int, window: float) -> str:
    return f" [{held} more like this in the last {window:g} s were not logged]"


class RepeatLimiter(logging.Filter):
    """A logging filter (for handlers) applying a :class:`RepeatCounter` to warnings and errors."""

    def __init__(self, counter: RepeatCounter | None = None) -> None:
        super().__init__()
        self.counter = counter or RepeatCounter()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        held = self.counter.allow((record.name, record.levelno, str(record.msg)))
        if held is None:
            return False
        if held:
            record.msg = record.getMessage() + _held_back_note(held, self.counter.window)
            record.args = None
        return True


def loop_exception_handler(counter: RepeatCounter) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """An event loop exception handler that logs each kind (its message and exception
    type) at a bounded rate. asyncio's own messages carry handles and sockets whose text
    changes every time, so a log filter could not tell they repeat."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exception = context.get("exception")
        held = counter.allow(("asyncio", context.get("message"), type(exception).__name__))
        if held is None:
            return
        if held:
            context = {**context, "message": f"{context.get('message')}{_held_back_note(held, counter.window)}"}
        loop.default_exception_handler(context)

    return handle


def limit_repeated_errors(counter: RepeatCounter | None = None) -> None:
    """Bound repeated warnings and errors: on the root logger's handlers, and from the
    running event loop. For a process's entry point, once logging is set up."""
    counter = counter or RepeatCounter()
    limiter = RepeatLimiter(counter)
    for handler in logging.getLogger().handlers:
        handler.addFilter(limiter)
    asyncio.get_running_loop().set_exception_handler(loop_exception_handler(counter))
