"""Facts shared by the gateway's parts, with no Django and no I/O: the agent's plan, the
tunnel client, the models, the API and the UI all read them from here, so each is
written once."""

from __future__ import annotations

import enum

# The status row (and plan key) of the gateway's own tunnel; cameras use camera-<id>.
GATEWAY_STATUS_KEY = "gateway"


class TunnelState(str, enum.Enum):
    """A tunnel's state, as the client knows it, the agent stores it and the API shows it."""

    STOPPED = "stopped"
    CONNECTING = "connecting"  # working on it, or waiting to retry (see reason)
    UP = "up"
    FAILED = "failed"  # will not work until something changes (see reason, retry_at)

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        """As Django's model field takes them."""
        return [(state.value, state.name.title()) for state in cls]


# Public ports a relay gives forwards, unless told otherwise.
DEFAULT_PORT_RANGE = (20000, 29999)


def port_range_text(ports: tuple[int, int] = DEFAULT_PORT_RANGE) -> str:
    return f"{ports[0]}-{ports[1]}"
