"""The web front's request parsing and rewriting (camgate.front.request_head), no I/O."""

from __future__ import annotations

import json

import pytest

from camgate.front.request_head import (
    BadRequest,
    ChunkedBody,
    body_length,
    error_response,
    find_head_end,
    parse_head,
    proxy_line,
    upstream_request,
    wants_continue,
)

PEER, LOCAL = ("192.0.2.7", 51000), ("127.0.0.1", 8000)


def head(*headers: str, line: str = "POST /api/auth-token/ HTTP/1.1"):
    return parse_head("\r\n".join([line, *headers]).encode())


def refused(call, *args) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        call(*args)
    return caught.value


def test_a_head_is_read_with_crlf_or_bare_lf():
    data = b"GET /x?y=1 HTTP/1.1\r\nHost: gw\r\nX-A:  spaced \t\r\n\r\nBODY"
    end = find_head_end(data)
    parsed = parse_head(data[: end.start()])
    assert (parsed.method, parsed.target, parsed.version, parsed.path) == (b"GET", b"/x?y=1", b"1.1", "/x")
    assert parsed.headers == ((b"Host", b"gw"), (b"X-A", b"spaced"))
    assert data[end.end():] == b"BODY"
    assert find_head_end(b"GET / HTTP/1.0\n\nrest").end() == len(b"GET / HTTP/1.0\n\n")
    assert find_head_end(b"GET / HTTP/1.1\r\nHost: gw\r\n") is None


@pytest.mark.parametrize("data", [
    b"GET /", b"GET / HTTP/2.0", b"PRI * HTTP/2.0", b"GET  / HTTP/1.1", b"G(T / HTTP/1.1", b"GET /a b HTTP/1.1",
    b"GET / HTTP/1.1\r\n folded: no", b"GET / HTTP/1.1\r\nno colon", b"GET / HTTP/1.1\r\nbad name: x",
    b"GET / HTTP/1.1\r\n: empty name", b"GET / HTTP/1.1\r\nX: a\x00b",
])
def test_what_is_not_plain_http_1_is_a_400(data):
    assert refused(parse_head, data).status == 400


def test_body_length_from_content_length_or_chunked():
    assert body_length(head(), 100) == 0
    assert body_length(head("Content-Length: 42"), 100) == 42
    assert body_length(head("Content-Length: 7, 7", "content-length: 7"), 100) == 7
    assert body_length(head("Transfer-Encoding: Chunked"), 100) is None


@pytest.mark.parametrize("headers, status", [
    (["Content-Length: 1", "Transfer-Encoding: chunked"], 400),  # the classic smuggling pair
    (["Content-Length: 1", "Content-Length: 2"], 400),
    (["Content-Length: -1"], 400),
    (["Content-Length: 1e3"], 400),
    (["Content-Length: ١٢"], 400),  # Arabic-Indic digits: isdigit() says yes, HTTP says no
    (["Transfer-Encoding: gzip, chunked"], 501),
    (["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], 501),
    (["Content-Length: 101"], 413),
    (["Content-Length: 99999999999999999999999"], 413),
])
def test_ambiguous_or_oversized_bodies_are_refused(headers, status):
    assert refused(body_length, head(*headers), 100).status == status


def test_an_oversized_body_gets_the_apps_own_message():
    assert refused(body_length, head("Content-Length: 2000000"), 1048576).message == \
        "Request body is larger than 1048576 bytes."


def test_chunked_is_not_http_1_0():
    assert refused(body_length, head("Transfer-Encoding: chunked", line="POST / HTTP/1.0"), 100).status == 400


def test_expect_100_continue_only():
    assert wants_continue(head("Expect: 100-Continue")) is True
    assert wants_continue(head()) is False
    assert wants_continue(head("Expect: 100-continue", line="POST / HTTP/1.0")) is False
    assert refused(wants_continue, head("Expect: teapot")).status == 417


def test_upstream_request_is_framed_by_the_front_and_closes():
    request = upstream_request(
        head("Host: gw", "Content-Length: 3", "Connection: keep-alive, X-Hop", "X-Hop: 1", "Keep-Alive: 5",
             "Expect: 100-continue", "Authorization: Token abc", "X-Forwarded-For: 10.0.0.1"),
        3, peer=PEER, local=LOCAL, from_tunnel=False, had_body=True)
    lines = request.split(b"\r\n")
    assert lines[0] == b"PROXY TCP4 192.0.2.7 127.0.0.1 51000 8000"
    assert lines[1] == b"POST /api/auth-token/ HTTP/1.1"
    assert lines[2:] == [b"Host: gw", b"Authorization: Token abc", b"X-Forwarded-For: 10.0.0.1",
                         b"Content-Length: 3", b"Connection: close", b"", b""]


def test_a_chunked_request_reaches_the_app_with_a_length():
    request = upstream_request(head("Transfer-Encoding: chunked"), 12, peer=PEER, local=LOCAL, from_tunnel=False, had_body=True)
    assert b"Transfer-Encoding" not in request and b"Content-Length: 12\r\n" in request


def test_clients_cannot_claim_the_tunnel_mark_nor_pass_underscored_names():
    request = upstream_request(head("X-Camgate-Origin: tunnel", "x-camgate-anything: 1", "SCRIPT_NAME: /evil"),
                               0, peer=PEER, local=LOCAL, from_tunnel=False, had_body=False)
    assert b"x-camgate" not in request.lower()
    assert b"SCRIPT_NAME" not in request


def test_the_tunnel_listener_marks_its_requests_and_drops_forwarded_headers():
    request = upstream_request(
        head("X-Forwarded-For: 198.51.100.1", "X-Forwarded-Proto: https", "Forwarded: for=1.2.3.4", "X-Real-IP: 1.2.3.4",
             "X-Camgate-Origin: lan", "Host: relay:20001"),
        0, peer=("127.0.0.1", 40000), local=("127.0.0.1", 8001), from_tunnel=True, had_body=False)
    lines = request.split(b"\r\n")
    assert lines[2:] == [b"Host: relay:20001", b"Connection: close", b"X-Camgate-Origin: tunnel", b"", b""]


@pytest.mark.parametrize("peer, local, expected", [
    (("::1", 5, 0, 0), ("::1", 8000, 0, 0), b"PROXY TCP6 ::1 ::1 5 8000\r\n"),
    (("::ffff:192.0.2.9", 5, 0, 0), ("::ffff:127.0.0.1", 8000, 0, 0), b"PROXY TCP4 192.0.2.9 127.0.0.1 5 8000\r\n"),
    (("fe80::1%eth0", 5, 0, 2), ("0.0.0.0", 8000), b"PROXY TCP6 fe80::1 :: 5 8000\r\n"),
    (("192.0.2.9", 5), ("::", 8000, 0, 0), b"PROXY TCP4 192.0.2.9 0.0.0.0 5 8000\r\n"),
])
def test_proxy_line_names_the_client_in_one_family(peer, local, expected):
    assert proxy_line(peer, local) == expected


def test_error_responses_have_the_apps_shapes():
    api = error_response(413, "Too big.", "/api/add-camera/")
    head_bytes, body = api.split(b"\r\n\r\n", 1)
    assert head_bytes.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
    assert b"Content-Type: application/json" in head_bytes and b"Connection: close" in head_bytes
    assert json.loads(body) == {"detail": "Too big."}
    page = error_response(408, "Too slow.", "/login/")
    assert b"text/plain" in page and page.endswith(b"\r\n\r\nToo slow.")


def test_chunked_body_decodes_in_any_pieces():
    wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT"
    for size in (1, 2, 7, len(wire)):
        chunked = ChunkedBody(100)
        rest = b""
        for start in range(0, len(wire), size):
            rest += chunked.feed(wire[start:start + size])
        assert (chunked.done, bytes(chunked.body), rest) == (True, b"hello world", b"NEXT")


@pytest.mark.parametrize("wire, status", [
    (b"zz\r\n", 400), (b"-1\r\n", 400), (b"5\r\nhello!\r\n", 400), (b"11111111111111111\r\n", 400),
    (b"65\r\n", 413), (b"32\r\n" + b"x" * 50 + b"\r\n33\r\n", 413), (b"1" * 5000, 400),
    (b"0\r\n" + b"T: x\r\n" * 5000, 431),
])
def test_chunked_body_refuses_nonsense_and_size(wire, status):
    assert refused(ChunkedBody(100).feed, wire).status == status
