"""The relay node's link to PostgreSQL: a small pool, and what happens when it fails.

While the database is down or unreachable, every store call fails at once with
:class:`StoreUnavailable` (the relay answers 503 with the reason) instead of each request
waiting for a connect timeout; a new attempt is let through after a backoff that doubles
up to ``max_backoff``. The link logs one line when it goes down and one when it is back,
never one per request.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

import asyncpg

from .base import StoreUnavailable

log = logging.getLogger(__name__)

# What says "the database cannot be reached now", as opposed to a bug in a query.
_LINK_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # the server is shutting down
    asyncpg.exceptions.CannotConnectNowError,
)


def describe_dsn(dsn: str) -> str:
    """The DSN without its password, for log lines."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or "@" not in rest:
        return dsn
    credentials, _, location = rest.rpartition("@")
    user = credentials.partition(":")[0]
    return f"{scheme}://{user}@{location}"


class PostgresLink:
    def __init__(
        self, dsn: str, *, timeout: float = 5.0, first_backoff: float = 0.2, max_backoff: float = 5.0,
        pool_size: int = 10,
    ) -> None:
        self.dsn = dsn
        self.timeout = timeout
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self.down_reason: str | None = None
        self._backoff = first_backoff
        self._retry_at = 0.0

    @property
    def up(self) -> bool:
        return self.down_reason is None

    async def open(self) -> None:
        """Connect, waiting (with backoff) for a database that is not up yet, as when a
        compose file starts the relay and PostgreSQL together."""
        backoff = self.first_backoff
        while True:
            try:
                self._pool = await asyncpg.create_pool(
                    self.dsn, min_size=1, max_size=self.pool_size, timeout=self.timeout,
                    command_timeout=self.timeout,
                )
                break
            except _LINK_ERRORS as exc:
                if self.down_reason is None:
                    log.warning("relay store %s: waiting for the database (%s)", describe_dsn(self.dsn),
                                _describe(exc))
                self.down_reason = f"database unavailable: {_describe(exc)}"
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        self._succeeded()

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    async def connect(self) -> asyncpg.Connection:
        """A connection of its own (for LISTEN), outside the pool."""
        try:
            return await asyncpg.connect(self.dsn, timeout=self.timeout)
        except _LINK_ERRORS as exc:
            self._failed(exc)
            raise StoreUnavailable(self.down_reason or "database unavailable") from exc

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        loop = asyncio.get_running_loop()
        if self._pool is None:
            raise StoreUnavailable("the relay store is not open")
        if self.down_reason is not None and loop.time() < self._retry_at:
            raise StoreUnavailable(self.down_reason)
        try:
            async with self._pool.acquire(timeout=self.timeout) as conn:
                yield conn
        except asyncio.TimeoutError as exc:
            if self._saturated():
                # Every connection was in use: a queue of our own making under a burst
                # (a thousand devices reconnecting), not the database going away. Marking
                # the link down would refuse every request for the backoff and make the
                # clients come back all together, again and again.
                raise StoreUnavailable("relay store busy: every database connection in use") from exc
            self._failed(exc)
            raise StoreUnavailable(self.down_reason or "database unavailable") from exc
        except _LINK_ERRORS as exc:
            self._failed(exc)
            raise StoreUnavailable(self.down_reason or "database unavailable") from exc
        self._succeeded()

    def _saturated(self) -> bool:
        pool = self._pool
        return pool is not None and pool.get_size() >= pool.get_max_size() and pool.get_idle_size() == 0

    def _failed(self, exc: BaseException) -> None:
        reason = f"database unavailable: {_describe(exc)}"
        loop = asyncio.get_running_loop()
        if self.down_reason is None:
            log.error("relay store %s: %s; retrying with backoff", describe_dsn(self.dsn), reason)
            self._backoff = self.first_backoff
        else:
            self._backoff = min(self._backoff * 2, self.max_backoff)
        self.down_reason = reason
        self._retry_at = loop.time() + self._backoff

    def _succeeded(self) -> None:
        if self.down_reason is not None:
            log.warning("relay store %s: database reachable again", describe_dsn(self.dsn))
            self.down_reason = None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
