"""Who may enroll in a relay that enrolls new devices (`camgate run`'s embedded relay).

Reaching loopback is not enough: a second `camgate run` on the same machine, or any
local program, reaches it too. The supervisor writes a secret into its own data
directory and gives it to its relay and its agent only; the agent shows it in a header
on provisioning, ws-endpoint and the tunnel's WebSocket, and the relay enrolls an
unknown serial or token only when the header carries that secret.
"""

from __future__ import annotations

import hmac

ENROLLMENT_HEADER = "X-Camgate-Enrollment"
ENROLLMENT_SECRET_ENV = "CAMGATE_ENROLLMENT_SECRET"
ENROLLMENT_SECRET_FILE = "enrollment-secret"


def presents_secret(expected: str, presented: str) -> bool:
    """Whether ``presented`` is the secret; compared in constant time."""
    return bool(expected) and hmac.compare_digest(expected.encode(), presented.encode())


def enrollment_headers(secret: str) -> dict[str, str]:
    return {ENROLLMENT_HEADER: secret} if secret else {}
