"""The tunnel client's TLS contexts: one per CA file, rebuilt when the file changes."""

from __future__ import annotations

import os
import ssl

import pytest

from camgate.uplink import tls


@pytest.fixture
def ca(tmp_path, certificate):
    path = tmp_path / "ca.pem"
    path.write_bytes(open(certificate[0], "rb").read())
    return path


def test_one_context_serves_every_call_with_the_same_ca_file(ca):
    context = tls.client_context(str(ca))
    assert tls.client_context(str(ca)) is context
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert any(c["subject"] == ((("commonName", "localhost"),),) for c in context.get_ca_certs())
    assert tls.client_context(None) is tls.client_context(None) is not context


def test_a_ca_file_replaced_on_disk_gets_a_new_context(ca, tmp_path):
    before = tls.client_context(str(ca))
    replacement = tmp_path / "new.pem"
    replacement.write_bytes(ca.read_bytes())
    os.replace(replacement, ca)  # how a CA is rotated: a new file under the old name
    after = tls.client_context(str(ca))
    assert after is not before and tls.client_context(str(ca)) is after


def test_an_unreadable_ca_file_fails_every_time_and_is_not_kept(tmp_path):
    missing = str(tmp_path / "missing.pem")
    for _ in range(2):
        with pytest.raises(OSError):
            tls.client_context(missing)
