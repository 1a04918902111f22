"""The login throttle's state.

It lives in the database rather than Django's cache: the default cache is per process,
and `camgate web` runs several gunicorn workers, so a cache-held counter would give an
attacker a fresh allowance on every worker. The gateway already has SQLite, and login
failures are rare enough that a row per (username, address) costs nothing.
"""

from __future__ import annotations

from django.db import models


class LoginThrottle(models.Model):
    # sha256 of "username|address": a mistyped password in the username box is not
    # kept in clear.
    key = models.CharField(max_length=64, unique=True)
    failures = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key[:12]}…: {self.failures} failures"
