"""Snapshot settings, read the same way by the agent (which captures) and the web
server (which waits for the agent and tells browsers how long a frame stays fresh)."""

from __future__ import annotations

from dataclasses import dataclass

from camgate import config


@dataclass(frozen=True)
class SnapshotSettings:
    min_interval: int = 10  # seconds between two captures of one camera; cached in between
    timeout: int = 10  # seconds a capture may take, from start to decoded frame

    @classmethod
    def from_environment(cls) -> "SnapshotSettings":
        settings = cls(
            min_interval=config.env_int("CAMGATE_SNAPSHOT_MIN_INTERVAL", cls.min_interval),
            timeout=config.env_int("CAMGATE_SNAPSHOT_TIMEOUT", cls.timeout),
        )
        if settings.min_interval < 0:
            raise config.ConfigError("CAMGATE_SNAPSHOT_MIN_INTERVAL must be 0 or more seconds")
        if not 1 <= settings.timeout <= 300:
            raise config.ConfigError("CAMGATE_SNAPSHOT_TIMEOUT must be 1 to 300 seconds")
        return settings
