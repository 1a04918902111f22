"""Basic and Digest authentication, checked against the RFCs' own worked examples."""

from __future__ import annotations

import base64

import pytest

from camgate.probe.auth import (
    AuthUnsupported, Challenge, DigestSession, as_wire_text, parse_challenges, pick_authorizer,
)
from camgate.probe.auth import digest_response

RFC2617_CHALLENGE = ('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                     'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
RFC7616 = {"realm": "http-auth@example.org", "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
           "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"}


def test_rfc2617_example_with_qop_auth():
    (challenge,) = parse_challenges([RFC2617_CHALLENGE])
    session = DigestSession(challenge, "Mufasa", "Circle Of Life", cnonce="0a4f113b")
    header = session.authorization("GET", "/dir/index.html")
    assert header.startswith("Digest ")
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert "qop=auth, nc=00000001, cnonce=\"0a4f113b\"" in header
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header
    assert "algorithm" not in header  # not named by the camera, not echoed
    # The nonce count goes up with each request on the same nonce.
    assert "nc=00000002" in session.authorization("GET", "/dir/index.html")


@pytest.mark.parametrize("algorithm, expected", [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc7616_examples(algorithm, expected):
    assert digest_response(username="Mufasa", password="Circle of Life", realm=RFC7616["realm"],
                           nonce=RFC7616["nonce"], method="GET", uri="/dir/index.html", algorithm=algorithm,
                           qop="auth", nc=1, cnonce=RFC7616["cnonce"]) == expected


def test_without_qop_the_rfc2069_answer_is_used():
    # HA1 = MD5(user:realm:pass), HA2 = MD5(method:uri), response = MD5(HA1:nonce:HA2)
    import hashlib

    md5 = lambda text: hashlib.md5(text.encode()).hexdigest()  # noqa: E731
    uri = "rtsp://10.0.0.5:554/Streaming/Channels/101"
    expected = md5(f"{md5('admin:IP Camera(C1234):12345')}:abc123:{md5('DESCRIBE:' + uri)}")
    session = DigestSession(Challenge("digest", {"realm": "IP Camera(C1234)", "nonce": "abc123"}), "admin", "12345")
    header = session.authorization("DESCRIBE", uri)
    assert f'response="{expected}"' in header and "qop" not in header and "opaque" not in header


def test_challenges_one_per_header_or_several_in_one():
    hikvision = ['Digest realm="IP Camera(C1234)", nonce="0a1b", stale="FALSE"', 'Basic realm="IP Camera(C1234)"']
    assert [c.scheme for c in parse_challenges(hikvision)] == ["digest", "basic"]
    combined = parse_challenges(['Basic realm="a, b", Digest realm="r", nonce="n", qop="auth,auth-int"'])
    assert [(c.scheme, c.params.get("realm")) for c in combined] == [("basic", "a, b"), ("digest", "r")]
    assert combined[1].params["qop"] == "auth,auth-int"
    escaped = parse_challenges(['Digest realm="say \\"hi\\"", nonce=bare'])
    assert escaped[0].params == {"realm": 'say "hi"', "nonce": "bare"}
    assert parse_challenges(["", "=junk", "Digest"]) == [Challenge("digest")]


def test_digest_preferred_over_basic_and_basic_when_alone():
    challenges = parse_challenges(['Basic realm="x"', 'Digest realm="x", nonce="n"'])
    assert pick_authorizer(challenges, "admin", "pw")("DESCRIBE", "rtsp://h/").startswith("Digest ")
    basic = pick_authorizer(parse_challenges(['Basic realm="x"']), "admin", "pw")("DESCRIBE", "rtsp://h/")
    assert basic == "Basic " + base64.b64encode(b"admin:pw").decode()


def test_sha256_chosen_over_md5_when_both_offered():
    challenges = parse_challenges(['Digest realm="r", nonce="n", algorithm=MD5', 'Digest realm="r", nonce="n", algorithm=SHA-256'])
    assert "algorithm=SHA-256" in pick_authorizer(challenges, "u", "p")("DESCRIBE", "rtsp://h/")


def test_unknown_schemes_are_refused_by_name():
    with pytest.raises(AuthUnsupported, match="Negotiate"):
        pick_authorizer(parse_challenges(["Negotiate", 'Digest realm="r", nonce="n", algorithm=SHA-512-256']), "u", "p")


def test_non_ascii_credentials_are_sent_as_utf8_bytes():
    value = pick_authorizer(parse_challenges(['Basic realm="x"']), as_wire_text("José"), as_wire_text("pässword"))("M", "u")
    assert base64.b64decode(value.split()[1]) == "José:pässword".encode()
