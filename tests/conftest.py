"""Shared fixtures (the data directory is set by tests/isolated_data_dir.py)."""

from __future__ import annotations

import base64
import json

import pytest


@pytest.hookimpl(trylast=True)  # after pytest-django's own reordering
def pytest_collection_modifyitems(items):
    """End-to-end files first, each file's tests kept together and in order.

    The suite runs in three processes, a file at a time each (see pyproject.toml). A
    few end-to-end files take 10-30 s each while hundreds of unit files take well under
    one: started last, a long file leaves the other processes idle at the end; started
    first, the short files fill in around it.
    """
    long_files = {item.path for item in items if item.get_closest_marker("e2e") is not None}
    rank: dict = {}
    for item in items:
        rank.setdefault(item.path, len(rank))
    # Stable: within a file, the order pytest-django gave is kept.
    items.sort(key=lambda item: (item.path not in long_files, rank[item.path]))


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The real hasher costs ~0.35 s a user or a check, and the suite creates hundreds:
    # in-process tests test the flows, not the hasher. Processes started by the
    # end-to-end tests (camgate run) keep the real one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def agent_database(transactional_db):
    """The agent reads and writes with its own sqlite3 connections (camgate/agent/db.py),
    not Django's: point them at the test database. Transactional, so that each side sees
    what the other committed."""
    from django.db import connection

    from camgate.agent import db

    db.use_database(connection.settings_dict["NAME"])
    yield
    db.use_database(None)


def make_token(camid: int, **extra) -> str:
    payload = {"camid": camid, "cmngrid": 1, "access": "all", "token": "share.secret", **extra}
    return base64.b64encode(json.dumps(payload).encode()).decode()


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_superuser("super", "", "1234")


@pytest.fixture
def api_token(admin_user) -> str:
    from rest_framework.authtoken.models import Token

    return Token.objects.get_or_create(user=admin_user)[0].key


@pytest.fixture
def api(api_token):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token}")
    return client
