"""Fixtures for the web UI's tests."""

from __future__ import annotations

import pytest

from camgate.cameras.models import Camera


@pytest.fixture
def agent_calls(monkeypatch, transactional_db):
    """Record pokes instead of trying the (absent) agent's socket. With real commits
    (transactional_db), so a poke shows up only once its transaction has committed."""
    calls = []
    monkeypatch.setattr("camgate.cameras.services.poke_agent", lambda: calls.append("reconcile"))
    return calls


@pytest.fixture
def default_admin(db):
    """The admin as the first start creates it: admin / admin."""
    from camgate.cameras.admin_bootstrap import bootstrap_admin

    bootstrap_admin()
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username="admin")


@pytest.fixture
def admin_client(client, default_admin):
    client.force_login(default_admin)
    return client


@pytest.fixture
def camera(db):
    return Camera.objects.create(ip="192.0.2.10", http_port=80, rtsp_port=554, password="stored-pw-7c1e")
