"""The event loop of camgate's tunnel processes (the relay, the agent, `camgate uplink`).

uvloop (libuv under asyncio's API) when it is installed: its event loop and transports
are C, where asyncio's select loop and socket transports are Python (and in Python 3.11
a socket's pending bytes sit in one bytearray, copied whole whenever more is added).
With it, and the frames session.py writes itself (ws_frames.py), the agent spends about
a third less CPU per byte it carries (bench/viewers.py); the relay, whose time then went
to the kernel and aiohttp's frame reader (since replaced by ws_link.py), about the same.
``CAMGATE_EVENT_LOOP=asyncio`` keeps asyncio's own loop; ``uvloop`` insists on uvloop
(an error when it is not installed).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
from typing import Any, Callable, Coroutine, TypeVar

ENV = "CAMGATE_EVENT_LOOP"
CHOICES = ("auto", "uvloop", "asyncio")

T = TypeVar("T")
log = logging.getLogger(__name__)


def loop_kind(environ: dict[str, str] | os._Environ = os.environ) -> str:
    """"uvloop" or "asyncio": what ``CAMGATE_EVENT_LOOP`` asks for ("auto", the default:
    uvloop when it can be imported). Raises ValueError naming the variable when its value
    is not one of CHOICES, or asks for a uvloop that is not installed."""
    wanted = environ.get(ENV, "").strip().lower() or "auto"
    if wanted not in CHOICES:
        raise ValueError(f"{ENV} must be one of {', '.join(CHOICES)}, not {wanted!r}")
    if wanted == "asyncio":
        return "asyncio"
    if importlib.util.find_spec("uvloop") is None:
        if wanted == "uvloop":
            raise ValueError(f"{ENV}=uvloop, but uvloop is not installed")
        return "asyncio"
    return "uvloop"


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_kind` chooses; a wrong
    ``CAMGATE_EVENT_LOOP`` ends the process with one line saying so."""
    try:
        kind = loop_kind()
    except ValueError as error:
        main.close()  # never awaited: say nothing about it
        raise SystemExit(f"camgate: {error}") from None
    log.info("event loop: %s", kind)
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main)
