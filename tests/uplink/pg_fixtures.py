"""PostgreSQL fixtures for the relay store tests (imported by the test modules that need them)."""

from __future__ import annotations

import itertools

import pytest

from tests.support.postgres import PostgresServer, find_bin_dir

_databases = itertools.count(1)


def _bin_dir():
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries are missing (Debian package 'postgresql')")
    return bin_dir


@pytest.fixture(scope="session")
def postgres_server():
    """One server for the session; each test takes a database of its own."""
    server = PostgresServer(_bin_dir())
    server.start()
    yield server
    server.remove()


@pytest.fixture
def postgres_dsn(postgres_server) -> str:
    return postgres_server.create_database(f"relay_test_{next(_databases)}")


@pytest.fixture
def own_postgres():
    """A server of this test's own, which the test may stop and start."""
    server = PostgresServer(_bin_dir())
    server.start()
    yield server
    server.remove()
