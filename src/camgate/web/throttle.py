"""Login throttling: after LIMIT failures for one username from one client address
within WINDOW, that pair is locked out for LOCKOUT.

Keyed on the pair, not the username alone, so someone else guessing at the admin account
cannot lock the real admin out from their own address. State is kept in the database
(see models.LoginThrottle) so every web worker sees the same counts.
"""

from __future__ import annotations

import hashlib
import math
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from camgate.web.models import LoginThrottle

LIMIT = 5
WINDOW = timedelta(minutes=5)
LOCKOUT = timedelta(minutes=5)


def throttle_key(username: str, address: str) -> str:
    text = f"{username.strip().lower()}|{address}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def locked_for(key: str) -> timedelta | None:
    """How much longer this key stays locked, or None if it may try now."""
    row = LoginThrottle.objects.filter(key=key).only("locked_until").first()
    if row is None or row.locked_until is None:
        return None
    remaining = row.locked_until - timezone.now()
    return remaining if remaining > timedelta(0) else None


def record_failure(key: str) -> int:
    """Count one failed attempt; return how many more may fail before the lockout
    (0: this failure started it)."""
    now = timezone.now()
    with transaction.atomic():
        # Old rows are garbage: nothing in them can lock anyone any more.
        LoginThrottle.objects.filter(
            window_started_at__lt=now - WINDOW - LOCKOUT,
        ).exclude(locked_until__gt=now).delete()
        row, _ = LoginThrottle.objects.select_for_update().get_or_create(
            key=key, defaults={"window_started_at": now}
        )
        expired_lock = row.locked_until is not None and row.locked_until <= now
        if expired_lock or now - row.window_started_at > WINDOW:
            row.failures = 0
            row.window_started_at = now
            row.locked_until = None
        row.failures += 1
        if row.failures >= LIMIT:
            row.locked_until = now + LOCKOUT
        row.save()
    return max(0, LIMIT - row.failures)


def clear(key: str) -> None:
    LoginThrottle.objects.filter(key=key).delete()


def describe_wait(remaining: timedelta) -> str:
    seconds = max(1, math.ceil(remaining.total_seconds()))
    if seconds < 90:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"
