"""Shared fixtures (the data directory is set by tests/isolated_data_dir.py)."""

from __future__ import annotations

import base64
import json

import pytest


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The real hasher costs ~0.35 s a user or a check, and the suite creates hundreds:
    # in-process tests test the flows, not the hasher. Processes started by the
    # end-to-end tests (camgate run) keep the real one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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
