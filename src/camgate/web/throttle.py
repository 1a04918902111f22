"""Sign-in throttling, for the login page and POST /api/auth-token/ alike: after LIMIT
failures for one username from one origin within WINDOW, that pair is locked out for
LOCKOUT. Both doors count into the same rows, so a client has one budget, not two.

Keyed on the pair, not the username alone, so someone else guessing at the admin account
cannot lock the real admin out from their own address. The origin is the client's
address, except for requests that came through the gateway's own tunnel: those all
arrive from the agent, and the relay does not say who is behind them, so they share one
origin of their own. A stranger on the internet can then lock that door for a while,
but never the admin on the LAN (nor behind the proxy), who has a bucket of their own.
State is kept in the database (see models.LoginThrottle) so every web worker sees the
same counts.
"""

from __future__ import annotations

import hashlib
import math
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from camgate.front.origin import TUNNEL, came_through_tunnel
from camgate.web.models import LoginThrottle

LIMIT = 5
WINDOW = timedelta(minutes=5)
LOCKOUT = timedelta(minutes=5)
USERNAME_MAX = 150  # Django's: a longer name matches no user


def throttle_key(username: str, address: str) -> str:
    text = f"{username[:USERNAME_MAX].strip().lower()}|{address}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def client_origin(request) -> str:
    """Whom a failure counts against: the client's address (as the trusted-proxy
    middleware established it), or one origin for everyone behind the gateway tunnel."""
    if came_through_tunnel(request.META):
        return TUNNEL  # not an address, so it never shares a row with one
    return request.META.get("REMOTE_ADDR", "")


def key_for(request, username: str) -> str:
    return throttle_key(username, client_origin(request))


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


def retry_after_seconds(remaining: timedelta) -> int:
    return max(1, math.ceil(remaining.total_seconds()))


def locked_message(remaining: timedelta) -> str:
    return (
        "Too many failed sign-in attempts for this user from your address. "
        f"Try again in {describe_wait(remaining)}."
    )


def describe_wait(remaining: timedelta) -> str:
    seconds = retry_after_seconds(remaining)
    if seconds < 90:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"
