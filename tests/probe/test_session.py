"""The probe's decisions, sans-I/O: requests out, answers in, a health state at the end."""

from __future__ import annotations

from camgate.probe.result import HealthState
from camgate.probe.rtsp_wire import Response
from camgate.probe.session import MAX_REDIRECTS, RtspProbe

SDP = b"v=0\r\nm=video 0 RTP/AVP 26\r\na=x-dimensions:640,480\r\nm=audio 0 RTP/AVP 0\r\n"
DIGEST = ("www-authenticate", 'Digest realm="cam", nonce="n1", qop="auth"')


def answer(status: int, *headers: tuple[str, str], body: bytes = b"", phrase: str = "Whatever") -> Response:
    return Response(status, phrase, list(headers), body)


def sent(probe: RtspProbe) -> tuple[str, dict]:
    raw = probe.request().decode("latin-1")
    request_line, *lines = raw.split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines if line)
    return request_line, headers


def test_options_then_describe_then_ok_with_facts():
    probe = RtspProbe("10.0.0.5", 554, "/Streaming/Channels/101?transportmode=unicast")
    assert sent(probe)[0] == "OPTIONS rtsp://10.0.0.5:554/Streaming/Channels/101?transportmode=unicast RTSP/1.0"
    assert probe.on_response(answer(200)) is None
    line, headers = sent(probe)
    assert line.startswith("DESCRIBE ") and headers["Accept"] == "application/sdp" and headers["CSeq"] == "2"
    result = probe.on_response(answer(200, body=SDP))
    assert result.state is HealthState.OK and result.reason == ""
    assert (result.video.codec, result.video.width, result.video.height) == ("MJPEG", 640, 480)
    assert result.audio.codec == "G.711 µ-law"


def test_digest_login_is_answered_once_and_then_used_for_every_request():
    probe = RtspProbe("cam.local", 8554, "/live", "admin", "secret")
    sent(probe)
    assert probe.on_response(answer(401, DIGEST)) is None
    line, headers = sent(probe)
    assert line.startswith("OPTIONS ") and headers["Authorization"].startswith("Digest username=\"admin\"")
    assert 'uri="rtsp://cam.local:8554/live"' in headers["Authorization"] and "nc=00000001" in headers["Authorization"]
    assert "secret" not in line + str(headers)
    assert probe.on_response(answer(200)) is None
    _, headers = sent(probe)
    assert "nc=00000002" in headers["Authorization"]
    assert probe.on_response(answer(200, body=SDP)).state is HealthState.OK


def test_wrong_password_is_auth_failed_after_one_try():
    probe = RtspProbe("10.0.0.5", 554, "/", "admin", "wrong")
    sent(probe)
    assert probe.on_response(answer(200)) is None
    sent(probe)
    assert probe.on_response(answer(401, DIGEST)) is None
    sent(probe)
    result = probe.on_response(answer(401, DIGEST, phrase="Unauthorized"))
    assert result.state is HealthState.AUTH_FAILED
    assert result.reason == "the camera refused the stored login (RTSP/1.0 401 Unauthorized)"


def test_a_stale_nonce_gets_one_more_try_not_more():
    probe = RtspProbe("10.0.0.5", 554, "/", "admin", "pw")
    sent(probe)
    probe.on_response(answer(401, DIGEST))
    sent(probe)
    stale = ("www-authenticate", 'Digest realm="cam", nonce="n2", stale=TRUE')
    assert probe.on_response(answer(401, stale)) is None
    assert 'nonce="n2"' in sent(probe)[1]["Authorization"]
    assert probe.on_response(answer(401, stale)).state is HealthState.AUTH_FAILED


def test_login_required_and_none_stored():
    probe = RtspProbe("10.0.0.5", 554, "/")
    sent(probe)
    result = probe.on_response(answer(401, DIGEST))
    assert (result.state, result.reason) == (HealthState.AUTH_FAILED, "the camera asks for a login and none is stored")


def test_unknown_login_scheme_is_an_error_naming_it():
    probe = RtspProbe("10.0.0.5", 554, "/", "u", "p")
    sent(probe)
    result = probe.on_response(answer(401, ("www-authenticate", "NTLM")))
    assert result.state is HealthState.ERROR and "Ntlm" in result.reason


def describe_answer(status: int, *headers, body: bytes = b"", path: str = "/", phrase: str = "Whatever"):
    probe = RtspProbe("10.0.0.5", 554, path)
    sent(probe)
    probe.on_response(answer(200))
    sent(probe)
    return probe, probe.on_response(answer(status, *headers, body=body, phrase=phrase))


def test_missing_stream_and_missing_video():
    _, result = describe_answer(404, path="/nope", phrase="Not Found")
    assert (result.state, result.reason) == (HealthState.NO_STREAM, "no stream at /nope (RTSP/1.0 404 Not Found)")
    assert describe_answer(454)[1].state is HealthState.NO_STREAM
    _, audio_only = describe_answer(200, body=b"v=0\r\nm=audio 0 RTP/AVP 8\r\n")
    assert audio_only.state is HealthState.NO_STREAM and "audio only" in audio_only.reason
    assert describe_answer(200)[1].state is HealthState.ERROR  # 200 with no SDP at all


def test_other_statuses_are_errors_with_the_status_line():
    _, result = describe_answer(503, phrase="Service Unavailable\x07")
    assert (result.state, result.reason) == (HealthState.ERROR, "RTSP/1.0 503 Service Unavailable?")


def test_a_redirect_on_the_same_port_is_followed_and_reported():
    probe, result = describe_answer(302, ("location", "rtsp://10.0.0.5:554/real?x=1"))
    assert result is None
    assert sent(probe)[0] == "DESCRIBE rtsp://10.0.0.5:554/real?x=1 RTSP/1.0"
    result = probe.on_response(answer(200, body=SDP))
    assert result.state is HealthState.OK and "/real?x=1" in result.reason


def test_a_redirect_loop_ends_in_an_error():
    probe, result = describe_answer(301, ("location", "rtsp://10.0.0.5/a"))
    for _ in range(MAX_REDIRECTS - 1):
        sent(probe)
        assert probe.on_response(answer(301, ("location", "rtsp://10.0.0.5/a"))) is None
    sent(probe)
    result = probe.on_response(answer(301, ("location", "rtsp://10.0.0.5/a")))
    assert result.state is HealthState.ERROR and "more than 3 redirects" in result.reason


def test_a_redirect_elsewhere_is_an_error_without_the_credentials_it_carries():
    _, result = describe_answer(302, ("location", "rtsp://admin:hunter2@10.9.9.9:554/x"), phrase="Moved")
    assert result.state is HealthState.ERROR
    assert "hunter2" not in result.reason and "rtsp://10.9.9.9:554/x" in result.reason
    assert describe_answer(302)[1].state is HealthState.ERROR  # no Location at all
