"""The relay's state in PostgreSQL, shared by every relay node of one fleet.

Devices and tokens are the fleet's; port leases are per node (unique per node and port,
so a device keeps its port on a node across reconnects and restarts of that node); a
device is held by at most one node (``relay_holdings``, one row per camid: the last node
to take it over wins, and the one it was taken from is told by NOTIFY and drops it); a
node is live while its heartbeat is younger than ``node_ttl``; provisioning failures are
counted in the database so limits hold whichever node is asked.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import timedelta
from typing import Any

import asyncpg

from ..ratelimit import FailureLimiter
from ..relay_store import PREVIOUS_PORTS_GRACE_S, Device
from ..relay_store import _digest as digest
from .base import ENROLLED_CAMID_BASE, Holding, NodeInfo, RelayStateStore, StoreUnavailable
from .pg_link import PostgresLink
from .pg_schema import migrate

log = logging.getLogger(__name__)

CHANNEL = "camgate_relay"
_DEVICE_COLUMNS = "camid, cmngrid, access_token, serial, password_sha256"


def _device(row: asyncpg.Record | None) -> Device | None:
    return Device(**dict(row)) if row is not None else None


class PostgresStore(RelayStateStore):
    shared = True

    def __init__(
        self, dsn: str, node: NodeInfo = NodeInfo("", "", ""), *, node_ttl: float = 15.0, previous_ports_grace: float = PREVIOUS_PORTS_GRACE_S,
        failures: FailureLimiter | None = None, link: PostgresLink | None = None,
    ) -> None:
        super().__init__()
        self.node = node
        self.link = link or PostgresLink(dsn)
        self.node_ttl = timedelta(seconds=node_ttl)
        self.grace = timedelta(seconds=previous_ports_grace)
        # Only its limit and window: the counting is the database's.
        limits = failures or FailureLimiter()
        self.failure_limit, self.failure_window = limits.limit, timedelta(seconds=limits.window)
        self._listener: asyncpg.Connection | None = None

    # --- lifecycle -------------------------------------------------------------

    async def open(self, node: NodeInfo | None = None) -> None:
        """Migrate the schema and register this node (it holds no tunnel yet)."""
        if node is not None:
            self.node = NodeInfo(node.name or node.public_address, node.public_host, node.public_address,
                                 node.port_range)
        if not self.node.name:
            raise ValueError("a relay node in a shared store needs a name")
        await self.link.open()
        async with self.link.connection() as conn:
            await migrate(conn)
            async with conn.transaction():
                low, high = self.node.port_range or (None, None)
                await conn.execute(
                    """INSERT INTO relay_nodes (name, public_host, public_address, port_low, port_high)
                       VALUES ($1, $2, $3, $4, $5)
                       ON CONFLICT (name) DO UPDATE SET public_host = $2, public_address = $3, port_low = $4,
                           port_high = $5, started_at = now(), heartbeat_at = now()""",
                    self.node.name, self.node.public_host, self.node.public_address, low, high,
                )
                await conn.execute("DELETE FROM relay_holdings WHERE node = $1", self.node.name)
        await self._listen()

    async def close(self) -> None:
        """Leave the cluster: this node's devices may go to another one at once."""
        with contextlib.suppress(StoreUnavailable):
            async with self.link.connection() as conn, conn.transaction():
                await conn.execute("DELETE FROM relay_holdings WHERE node = $1", self.node.name)
                await conn.execute("UPDATE relay_nodes SET heartbeat_at = '-infinity' WHERE name = $1",
                                   self.node.name)
        if self._listener is not None:
            self._listener.terminate()
            self._listener = None
        await self.link.close()

    async def _listen(self) -> None:
        """Hear other nodes take devices over (re-established by the heartbeat if lost)."""
        if self._listener is not None and not self._listener.is_closed():
            return
        self._listener = await self.link.connect()
        await self._listener.add_listener(CHANNEL, self._notified)

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        camid_text, _, node = payload.partition(" ")
        if node == self.node.name or self._on_device_changed is None or not camid_text.isdigit():
            return
        self._on_device_changed(int(camid_text))

    # --- devices -------------------------------------------------------------

    async def devices(self) -> list[Device]:
        async with self.link.connection() as conn:
            rows = await conn.fetch(f"SELECT {_DEVICE_COLUMNS} FROM relay_devices ORDER BY camid")
        return [Device(**dict(row)) for row in rows]

    async def device(self, camid: int) -> Device | None:
        async with self.link.connection() as conn:
            return _device(await conn.fetchrow(f"SELECT {_DEVICE_COLUMNS} FROM relay_devices WHERE camid = $1", camid))

    async def device_for_token(self, token: str) -> Device | None:
        async with self.link.connection() as conn:
            return _device(await conn.fetchrow(
                f"SELECT {_DEVICE_COLUMNS} FROM relay_devices WHERE token_sha256 = $1", digest(token)))

    async def device_for_serial(self, serial: str, password: str) -> Device | None:
        async with self.link.connection() as conn:
            device = _device(await conn.fetchrow(
                f"SELECT {_DEVICE_COLUMNS} FROM relay_devices WHERE serial = $1", serial.upper()))
        return device if device is not None and device.password_matches(password) else None

    async def serial_known(self, serial: str) -> bool:
        async with self.link.connection() as conn:
            return await conn.fetchval("SELECT 1 FROM relay_devices WHERE serial = $1", serial.upper()) is not None

    async def put_device(
        self, camid: int, cmngrid: int, access_token: str, serial: str | None = None, password: str | None = None,
        only_new: bool = False,
    ) -> tuple[Device | None, bool]:
        serial = serial.upper() if serial is not None else None
        password_sha256 = digest(password.upper()) if password is not None else None
        async with self.link.connection() as conn, conn.transaction():
            old = await conn.fetchrow("SELECT serial, password_sha256 FROM relay_devices WHERE camid = $1 FOR UPDATE",
                                      camid)
            if old is not None and only_new:
                return None, False
            if serial is not None:  # a serial names one device; the newest wins
                await conn.execute(
                    "UPDATE relay_devices SET serial = NULL, password_sha256 = NULL WHERE serial = $1 AND camid <> $2",
                    serial, camid)
            else:
                serial = old["serial"] if old else None
            if password_sha256 is None:
                password_sha256 = old["password_sha256"] if old else None
            await conn.execute(
                """INSERT INTO relay_devices (camid, cmngrid, access_token, token_sha256, serial, password_sha256)
                   VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT (camid) DO UPDATE SET cmngrid = $2, access_token = $3, token_sha256 = $4,
                       serial = $5, password_sha256 = $6""",
                camid, cmngrid, access_token, digest(access_token), serial, password_sha256)
            if old is not None:
                # The old token is revoked: whichever node holds its tunnel must drop it.
                await conn.execute("DELETE FROM relay_holdings WHERE camid = $1", camid)
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{camid} ")
        return Device(camid, cmngrid, access_token, serial, password_sha256), old is None

    async def next_enrolled_camid(self) -> int:
        async with self.link.connection() as conn:
            highest = await conn.fetchval("SELECT max(camid) FROM relay_devices")
        return max(ENROLLED_CAMID_BASE - 1, highest or 0) + 1

    async def remove_device(self, camid: int) -> bool:
        async with self.link.connection() as conn, conn.transaction():
            removed = await conn.fetchval("DELETE FROM relay_devices WHERE camid = $1 RETURNING 1", camid)
            if removed:
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{camid} ")
        return bool(removed)

    # --- this node's public ports ---------------------------------------------

    async def port_for(self, camid: int, forward_name: str) -> int | None:
        async with self.link.connection() as conn:
            return await conn.fetchval(
                "SELECT port FROM relay_port_leases WHERE node = $1 AND camid = $2 AND forward = $3",
                self.node.name, camid, forward_name)

    async def assign_port(self, camid: int, forward_name: str, port: int) -> bool:
        try:
            async with self.link.connection() as conn:
                await conn.execute(
                    """INSERT INTO relay_port_leases (node, camid, forward, port) VALUES ($1, $2, $3, $4)
                       ON CONFLICT (node, camid, forward) DO UPDATE SET port = $4, released_at = NULL""",
                    self.node.name, camid, forward_name, port)
        except asyncpg.UniqueViolationError:
            return False  # another device of this node holds that port
        except asyncpg.ForeignKeyViolationError:
            return False  # the device was deleted meanwhile
        return True

    async def ports_in_use(self) -> set[int]:
        async with self.link.connection() as conn:
            await conn.execute("DELETE FROM relay_port_leases WHERE node = $1 AND released_at <= now() - $2::interval",
                               self.node.name, self.grace)
            rows = await conn.fetch("SELECT port FROM relay_port_leases WHERE node = $1", self.node.name)
        return {row["port"] for row in rows}

    async def hold_forwards(self, camid: int, names: list[str] | tuple[str, ...]) -> None:
        current = set(names)
        async with self.link.connection() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT forward, released_at IS NOT NULL AS released FROM relay_port_leases "
                "WHERE node = $1 AND camid = $2 FOR UPDATE", self.node.name, camid)
            released = {row["forward"] for row in rows if row["released"]}
            leaving = [row["forward"] for row in rows if row["forward"] not in current and not row["released"]]
            if leaving:
                # The forwards it had become its previous set; the set before that is freed.
                await conn.execute(
                    "DELETE FROM relay_port_leases WHERE node = $1 AND camid = $2 AND forward = ANY($3::text[])",
                    self.node.name, camid, sorted(released - current))
                await conn.execute(
                    "UPDATE relay_port_leases SET released_at = now() "
                    "WHERE node = $1 AND camid = $2 AND forward = ANY($3::text[])", self.node.name, camid, leaving)
            if released & current:  # announced again: current
                await conn.execute(
                    "UPDATE relay_port_leases SET released_at = NULL "
                    "WHERE node = $1 AND camid = $2 AND forward = ANY($3::text[])",
                    self.node.name, camid, sorted(released & current))

    # --- provisioning failures ---------------------------------------------------

    async def retry_after(self, address: str) -> float | None:
        async with self.link.connection() as conn:
            row = await conn.fetchrow(
                """SELECT count(*) AS failures, extract(epoch FROM min(at) + $3::interval - now()) AS wait
                   FROM (SELECT at FROM relay_provisioning_failures WHERE address = $1 AND at > now() - $3::interval
                         ORDER BY at DESC LIMIT $2) AS latest""",
                address, self.failure_limit, self.failure_window)
        if row["failures"] < self.failure_limit:
            return None
        return max(0.0, float(row["wait"]))

    async def record_failure(self, address: str) -> None:
        async with self.link.connection() as conn:
            await conn.execute("INSERT INTO relay_provisioning_failures (address) VALUES ($1)", address)

    # --- holding devices ------------------------------------------------------------

    async def claim(self, camid: int, proxy_id: str, forwards: list[dict[str, Any]]) -> bool:
        try:
            async with self.link.connection() as conn, conn.transaction():
                previous = await conn.fetchval(
                    """INSERT INTO relay_holdings (camid, node, proxy_id, forwards) VALUES ($1, $2, $3, $4::jsonb)
                       ON CONFLICT (camid) DO UPDATE SET node = $2, proxy_id = $3, forwards = $4::jsonb, since = now()
                       RETURNING (SELECT node FROM relay_holdings WHERE camid = $1)""",
                    camid, self.node.name, proxy_id, json.dumps(forwards))
                if previous is not None and previous != self.node.name:
                    log.info("relay camid %d: taken over from node %s", camid, previous)
                    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{camid} {self.node.name}")
        except asyncpg.ForeignKeyViolationError:
            return False
        return True

    async def release(self, camid: int, proxy_id: str) -> None:
        async with self.link.connection() as conn:
            await conn.execute("DELETE FROM relay_holdings WHERE camid = $1 AND node = $2 AND proxy_id = $3",
                               camid, self.node.name, proxy_id)

    async def holding(self, camid: int) -> Holding | None:
        async with self.link.connection() as conn:
            row = await conn.fetchrow(
                """SELECT h.camid, h.node, h.proxy_id, h.forwards FROM relay_holdings h
                   JOIN relay_nodes n ON n.name = h.node
                   WHERE h.camid = $1 AND h.node <> $2 AND n.heartbeat_at > now() - $3::interval""",
                camid, self.node.name, self.node_ttl)
        if row is None:
            return None
        return Holding(row["camid"], row["node"], row["proxy_id"], json.loads(row["forwards"]))

    async def endpoint_for(self, camid: int) -> str | None:
        """The live node holding ``camid``; else the least loaded live node (this one on a tie)."""
        async with self.link.connection() as conn:
            row = await conn.fetchrow(
                """SELECT n.name, n.public_address FROM relay_nodes n
                   WHERE n.heartbeat_at > now() - $3::interval OR n.name = $2
                   ORDER BY EXISTS (SELECT 1 FROM relay_holdings h WHERE h.camid = $1 AND h.node = n.name) DESC,
                       (SELECT count(*) FROM relay_holdings h WHERE h.node = n.name), n.name = $2 DESC, random()
                   LIMIT 1""",
                camid, self.node.name, self.node_ttl)
        return None if row is None or row["name"] == self.node.name else row["public_address"]

    async def counts(self) -> tuple[int, int | None]:
        async with self.link.connection() as conn:
            row = await conn.fetchrow(
                """SELECT (SELECT count(*) FROM relay_devices) AS registered,
                          (SELECT count(*) FROM relay_holdings h JOIN relay_nodes n ON n.name = h.node
                           WHERE n.heartbeat_at > now() - $1::interval) AS connected""", self.node_ttl)
        return row["registered"], row["connected"]

    async def online(self) -> set[int] | None:
        async with self.link.connection() as conn:
            rows = await conn.fetch(
                """SELECT h.camid FROM relay_holdings h JOIN relay_nodes n ON n.name = h.node
                   WHERE n.heartbeat_at > now() - $1::interval""", self.node_ttl)
        return {row["camid"] for row in rows}

    async def moved_away(self, local: dict[int, str]) -> list[int]:
        if not local:
            return []
        async with self.link.connection() as conn:
            rows = await conn.fetch(
                "SELECT camid, proxy_id FROM relay_holdings WHERE node = $1 AND camid = ANY($2::bigint[])",
                self.node.name, list(local))
        held = {row["camid"]: row["proxy_id"] for row in rows}
        return [camid for camid, proxy_id in local.items() if held.get(camid) != proxy_id]

    async def heartbeat(self, local: dict[int, str]) -> list[int]:
        async with self.link.connection() as conn, conn.transaction():
            await conn.execute("UPDATE relay_nodes SET heartbeat_at = now() WHERE name = $1", self.node.name)
            # Holdings whose release did not reach the database (it was down then).
            await conn.execute(
                "DELETE FROM relay_holdings WHERE node = $1 AND NOT (camid = ANY($2::bigint[]))",
                self.node.name, list(local))
            await conn.execute("DELETE FROM relay_provisioning_failures WHERE at <= now() - $1::interval",
                               self.failure_window)
        try:
            await self._listen()
        except StoreUnavailable:
            pass  # the next heartbeat tries again
        return await self.moved_away(local)
