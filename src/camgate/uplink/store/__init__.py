"""Where the relay keeps its state: the JSON state file, or PostgreSQL shared by nodes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import ENROLLED_CAMID_BASE, Holding, NodeInfo, RelayStateStore, StoreUnavailable

if TYPE_CHECKING:
    from ..relay_config import RelayConfig

__all__ = ["ENROLLED_CAMID_BASE", "Holding", "NodeInfo", "RelayStateStore", "StoreUnavailable", "open_store"]

STORE_SCHEMES = ("postgresql://", "postgres://")


def open_store(config: "RelayConfig") -> RelayStateStore:
    """The store ``config`` names (not yet opened: the relay opens it once it knows its address)."""
    if config.store_url:
        if not config.store_url.startswith(STORE_SCHEMES):
            raise ValueError("the relay store must be a postgresql://... URL")
        from .postgres import PostgresStore  # asyncpg is only needed for a shared store

        return PostgresStore(config.store_url, node_ttl=config.node_ttl,
                             previous_ports_grace=config.previous_ports_grace)
    from .file import FileStore

    return FileStore(config.state_path, config.previous_ports_grace)
