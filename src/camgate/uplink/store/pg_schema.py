"""The relay's tables in PostgreSQL, created and migrated by the relay when it starts.

Each migration runs once, in order, inside a transaction holding an advisory lock, so
nodes starting together do not race; ``camgate_relay_schema`` records the version
reached. Add a migration at the end; never edit one that has shipped.
"""

from __future__ import annotations

import asyncpg

_LOCK_KEY = 0x63616D67  # "camg": serialises migrations across nodes

MIGRATIONS: list[str] = [
    # 1: nodes, devices, who holds which tunnel, port leases per node, provisioning failures
    """
    CREATE TABLE relay_nodes (
        name text PRIMARY KEY,
        public_host text NOT NULL,
        public_address text NOT NULL,
        port_low integer,
        port_high integer,
        started_at timestamptz NOT NULL DEFAULT now(),
        heartbeat_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE relay_devices (
        camid bigint PRIMARY KEY,
        cmngrid bigint NOT NULL,
        access_token text NOT NULL,
        token_sha256 text NOT NULL UNIQUE,
        serial text UNIQUE,
        password_sha256 text
    );
    CREATE TABLE relay_holdings (
        camid bigint PRIMARY KEY REFERENCES relay_devices ON DELETE CASCADE,
        node text NOT NULL REFERENCES relay_nodes ON DELETE CASCADE,
        proxy_id text NOT NULL,
        forwards jsonb NOT NULL,
        since timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX relay_holdings_node ON relay_holdings (node);
    CREATE TABLE relay_port_leases (
        node text NOT NULL REFERENCES relay_nodes ON DELETE CASCADE,
        camid bigint NOT NULL REFERENCES relay_devices ON DELETE CASCADE,
        forward text NOT NULL,
        port integer NOT NULL,
        released_at timestamptz,
        PRIMARY KEY (node, camid, forward),
        UNIQUE (node, port)
    );
    CREATE TABLE relay_provisioning_failures (
        address text NOT NULL,
        at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX relay_provisioning_failures_address ON relay_provisioning_failures (address, at);
    """,
]


async def migrate(conn: asyncpg.Connection) -> int:
    """Bring the schema up to date; the version reached."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute("CREATE TABLE IF NOT EXISTS camgate_relay_schema (version integer NOT NULL)")
        version = await conn.fetchval("SELECT max(version) FROM camgate_relay_schema") or 0
        for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            await conn.execute(sql)
            await conn.execute("INSERT INTO camgate_relay_schema (version) VALUES ($1)", number)
        return len(MIGRATIONS)
