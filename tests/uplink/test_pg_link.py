"""The relay's link to PostgreSQL tells a busy pool from a database that went away."""

from __future__ import annotations

import pytest

from camgate.uplink.store.base import StoreUnavailable
from camgate.uplink.store.pg_link import PostgresLink

from .pg_fixtures import postgres_dsn, postgres_server  # noqa: F401 - fixtures


async def test_every_connection_in_use_is_busy_not_down(postgres_dsn):  # noqa: F811
    link = PostgresLink(postgres_dsn, timeout=0.3, pool_size=1)
    await link.open()
    try:
        async with link.connection():
            # The one connection is held: the next caller waits its timeout in the queue.
            with pytest.raises(StoreUnavailable, match="busy"):
                async with link.connection():
                    pass
        assert link.down_reason is None  # the database never went away
        async with link.connection() as conn:
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await link.close()
