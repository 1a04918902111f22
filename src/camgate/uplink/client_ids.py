"""The per-tunnel table of client ids (uplink protocol, section 4): which ids are open,
which to give the next connection, which were closed a moment ago. No I/O."""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

from .protocol import LIMITS, MAX_CLIENT_ID, ProtocolError, check_client_id

T = TypeVar("T")


class TableFull(ProtocolError):
    pass


class ConnectionTable(Generic[T]):
    """The live client ids of one tunnel, shared by relay and client.

    A closed id is simply absent. Both ``close_*`` methods remove the id and return its
    value only the first time, so a caller that sends C only when it gets a value back
    sends C at most once per id, however the two ends race to close.
    """

    def __init__(self, capacity: int = LIMITS.max_connections, remember_closed: int = 1024) -> None:
        if not 1 <= capacity <= MAX_CLIENT_ID + 1:
            raise ValueError("capacity must be in 1..65536")
        self.capacity = capacity
        self._entries: dict[int, T] = {}
        # Frames for an id just closed are normal (they crossed our C on the wire);
        # remembering recent ids lets the caller log those quietly. Made at the first
        # close: a tunnel that never carried a connection keeps none.
        self._remember_closed = remember_closed
        self._recently_closed: deque[int] | None = None
        self._next_id = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, client_id: int) -> bool:
        return client_id in self._entries

    def values(self) -> list[T]:
        return list(self._entries.values())

    def items(self) -> list[tuple[int, T]]:
        return list(self._entries.items())

    def allocate(self, value: T) -> int:
        """Relay side: give ``value`` a free id. Raises :class:`TableFull`."""
        if len(self._entries) >= self.capacity:
            raise TableFull(f"{self.capacity} connections already open")
        # Hand ids out round-robin rather than lowest-free: a C for a closed id may still
        # be on its way from the peer, and it must not hit a new viewer that got the
        # same id a moment later.
        client_id = self._next_id
        while client_id in self._entries:
            client_id = (client_id + 1) & MAX_CLIENT_ID
        self._next_id = (client_id + 1) & MAX_CLIENT_ID
        self._entries[client_id] = value
        return client_id

    def register(self, client_id: int, value: T) -> T | None:
        """Client side, on O: track ``client_id``.

        Returns the value it displaced, if the relay reused an id we still think is
        live; the relay is authoritative about its viewers' ids, so the caller closes
        the displaced leg without sending C (the relay already considers it closed).
        Raises :class:`TableFull` when the id is new and the table is full.
        """
        check_client_id(client_id)
        displaced = self._entries.pop(client_id, None)
        if displaced is None and len(self._entries) >= self.capacity:
            raise TableFull(f"{self.capacity} connections already open")
        self._entries[client_id] = value
        return displaced

    def get(self, client_id: int) -> T | None:
        return self._entries.get(client_id)

    def close_local(self, client_id: int) -> T | None:
        """Our end closed: a value back means "send C now"; None means don't."""
        return self._remove(client_id)

    def close_remote(self, client_id: int) -> T | None:
        """The peer sent C: a value back means "close our end" (never answer with C)."""
        return self._remove(client_id)

    def _remove(self, client_id: int) -> T | None:
        value = self._entries.pop(client_id, None)
        if value is None:
            return None
        if self._recently_closed is None:
            self._recently_closed = deque(maxlen=self._remember_closed)
        self._recently_closed.append(client_id)
        return value

    def why_unknown(self, client_id: int) -> str:
        """Why a frame for an id not in the table is being ignored, for the log."""
        if self.was_recently_closed(client_id):
            return f"id {client_id} was closed recently (frame crossed a C)"
        return f"id {client_id} is not open"

    def was_recently_closed(self, client_id: int) -> bool:
        return self._recently_closed is not None and client_id in self._recently_closed
