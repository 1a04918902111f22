"""The RTSP answer parser: what real cameras send, and what hostile ones might."""

from __future__ import annotations

import pytest

from camgate.probe.rtsp_wire import MAX_BODY_BYTES, MAX_LINE_BYTES, ResponseParser, WireError, build_request


def parse(*chunks: bytes):
    parser = ResponseParser()
    answers = []
    for chunk in chunks:
        parser.feed(chunk)
        while (answer := parser.next_response()) is not None:
            answers.append(answer)
    return answers


def test_an_answer_with_a_body_fed_a_byte_at_a_time():
    raw = b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"
    (answer,) = parse(*[raw[i:i + 1] for i in range(len(raw))])
    assert (answer.status, answer.phrase, answer.body) == (200, "OK", b"v=0\r\n")
    assert answer.header("cseq") == "2" and answer.status_line == "RTSP/1.0 200 OK"


def test_two_answers_in_one_read_and_repeated_headers():
    raw = (b"RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\n"
           b"WWW-Authenticate: Basic realm=\"r\"\r\n\r\nRTSP/1.0 200 OK\nCSeq: 3\n\n")
    first, second = parse(raw)
    assert first.all_headers("www-authenticate") == ['Digest realm="r", nonce="n"', 'Basic realm="r"']
    assert second.status == 200  # bare LF line ends are taken too


@pytest.mark.parametrize("garbage", [b"HTTP/1.1 400 Bad Request\r\n\r\n", b"\x16\x03\x01\x02\x00", b"SSH-2.0-OpenSSH\r\n"])
def test_garbage_is_refused_at_once(garbage):
    with pytest.raises(WireError, match="not an RTSP answer"):
        parse(garbage)


def test_a_broken_status_line_is_refused():
    with pytest.raises(WireError, match="status line"):
        parse(b"RTSP/1.0 twohundred\r\n")


def test_an_endless_header_line_is_cut_off_at_the_bound():
    parser = ResponseParser()
    parser.feed(b"RTSP/1.0 200 OK\r\nX-Junk: ")
    with pytest.raises(WireError, match=f"longer than {MAX_LINE_BYTES}"):
        for _ in range(100):
            parser.feed(b"a" * 1024)
            parser.next_response()


def test_endless_headers_are_cut_off():
    with pytest.raises(WireError, match="more than 100 answer headers|headers larger"):
        parse(b"RTSP/1.0 200 OK\r\n" + b"X: y\r\n" * 5000)


def test_a_huge_body_is_refused_before_it_is_read():
    parser = ResponseParser()
    parser.feed(b"RTSP/1.0 200 OK\r\nContent-Length: 10485760\r\n\r\n")
    with pytest.raises(WireError, match=f"10485760 bytes, more than the {MAX_BODY_BYTES}"):
        parser.next_response()


def test_a_content_length_that_is_no_number():
    with pytest.raises(WireError, match="Content-Length"):
        parse(b"RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n")


def test_requests_refuse_line_breaks_in_any_field():
    assert build_request("OPTIONS", "rtsp://h:554/", 1) == b"OPTIONS rtsp://h:554/ RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: camgate-probe\r\n\r\n"
    with pytest.raises(ValueError):
        build_request("DESCRIBE", "rtsp://h/", 2, {"Authorization": 'Digest username="a\r\nX: y"'})
