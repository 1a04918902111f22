"""Whether the admin still has the default password, cheap enough for every page.

admin_bootstrap.default_password_in_use() hashes "admin" with the stored hasher (about
0.2 s on a small box). Whether a password matches depends only on the stored hash, so
the answer is remembered per hash: it is recomputed once after a password change, and
every web worker reaches the same answer on its own.
"""

from __future__ import annotations

from functools import lru_cache

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password

from camgate.cameras import admin_bootstrap


@lru_cache(maxsize=16)
def _is_default(encoded: str) -> bool:
    return check_password(admin_bootstrap.DEFAULT_PASSWORD, encoded)


def default_password_in_use() -> bool:
    encoded = (
        get_user_model().objects.filter(username=admin_bootstrap.admin_username())
        .values_list("password", flat=True).first()
    )
    return bool(encoded) and _is_default(encoded)
