"""The first admin account, from GATEWAY_ADMIN_USERNAME / GATEWAY_ADMIN_PASSWORD."""

from __future__ import annotations

import logging

from functools import lru_cache

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password

from camgate import config

log = logging.getLogger("camgate.security")

DEFAULT_USERNAME = "admin"
DEFAULT_PASSWORD = "admin"


def admin_username() -> str:
    return config.env_str("GATEWAY_ADMIN_USERNAME") or DEFAULT_USERNAME


def bootstrap_admin() -> bool:
    """Create the admin if missing; return True if it was created.

    An existing admin keeps its password: whoever changed it in the UI meant it, and a
    restart must not silently put the environment's (or the default) password back.
    """
    User = get_user_model()
    username = admin_username()
    if User.objects.filter(username=username).exists():
        return False
    password = config.env_str("GATEWAY_ADMIN_PASSWORD") or DEFAULT_PASSWORD
    User.objects.create_superuser(username=username, email="", password=password)
    log.info("created admin user %r", username)
    return True


@lru_cache(maxsize=16)
def _is_default(encoded: str) -> bool:
    # Hashing costs about 0.2 s on a small box and the banner asks on every page; the
    # answer depends only on the stored hash, so it is remembered per hash.
    return check_password(DEFAULT_PASSWORD, encoded)


def default_password_in_use() -> bool:
    encoded = (
        get_user_model().objects.filter(username=admin_username())
        .values_list("password", flat=True).first()
    )
    return bool(encoded) and _is_default(encoded)


def warn_if_default_password() -> None:
    if default_password_in_use():
        log.warning(
            "\n" + "!" * 72 + "\n"
            "!! The admin account %r still has the default password 'admin'.\n"
            "!! Anyone on this network can control the gateway. Change it under\n"
            "!! Settings, or set GATEWAY_ADMIN_PASSWORD before the first start.\n" + "!" * 72,
            admin_username(),
        )
