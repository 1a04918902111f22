"""Which public port a relay tries next for a forward whose remembered port (the relay
tries that itself first) cannot be had.

The range's ports that no device holds and no other tunnel of this relay is binding at
this moment, from just past the last port handed out. Starting each search from the
bottom of the range, as the relay first did, made tunnels that connect together try the
same ports: each bind is a step of the event loop, so hundreds of them chased each other
up the range, and 500 devices connecting at once took more than a minute to get their
ports.
"""

from __future__ import annotations

from typing import Iterator


class PortPicker:
    def __init__(self, port_range: tuple[int, int] | None) -> None:
        self.port_range = port_range
        self.binding: set[int] = set()  # ports a tunnel of this relay is trying right now
        self._next = port_range[0] if port_range else 0

    def candidates(self, taken: set[int]) -> Iterator[int]:
        """Ports to try in turn (0: any ephemeral port, when there is no range)."""
        if self.port_range is None:
            yield 0
            return
        low, high = self.port_range
        size = high - low + 1
        start = self._next - low
        for offset in range(size):
            port = low + (start + offset) % size
            if port in taken or port in self.binding:
                continue
            self._next = low + (port - low + 1) % size
            yield port
