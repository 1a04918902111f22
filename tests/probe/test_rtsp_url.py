"""The stream path rule (rtsp_path) and the URLs built from it."""

from __future__ import annotations

import pytest

from camgate.probe.rtsp_url import path_problem, stream_url

REAL_CAMERA_PATHS = [
    "",  # empty: "/"
    "/",
    "/Streaming/Channels/101?transportmode=unicast",  # Hikvision
    "/cam/realmonitor?channel=1&subtype=0",  # Dahua
    "/axis-media/media.amp?videocodec=h264&resolution=1280x720",  # Axis
    "/h264Preview_01_main",  # Reolink
    "/live/ch00_0",
    "/videoMain",
    "/onvif1",
    "/media/video1;stream=1",
    "/stream%20one",
    "/" + "a" * 511,
]


@pytest.mark.parametrize("path", REAL_CAMERA_PATHS)
def test_real_camera_paths_are_accepted(path):
    assert path_problem(path) is None


@pytest.mark.parametrize("path, words", [
    ("Streaming/Channels/101", "must start with '/'"),
    ("/" + "a" * 512, "longer than 512"),
    ("/my stream", "spaces or control"),
    ("/a\tb", "spaces or control"),
    ("/a\r\nRange: x", "spaces or control"),
    ("/a\x00", "spaces or control"),
    ("//admin:secret@10.0.0.5/stream", "without a login"),
    ("/admin:secret@stream", "without a login"),
    ("/rtsp://10.0.0.5/x", "without a login"),
    ("/user=admin&password=123456&channel=1", "may not carry a password"),
    ("/live?user=a&PWD=x", "may not carry a password"),
    ("/café", "'é'"),
    ("/a#frag", "'#'"),
    ("/a%zz", "percent-encoding"),
])
def test_bad_paths_are_refused_with_a_reason(path, words):
    assert words in path_problem(path)


def test_stream_urls_never_carry_credentials_and_bracket_ipv6():
    assert stream_url("relay.example", 20001, "") == "rtsp://relay.example:20001/"
    assert stream_url("127.0.0.1", 20001, "/Streaming/Channels/101") == "rtsp://127.0.0.1:20001/Streaming/Channels/101"
    assert stream_url("fd00::5", 554, "/live") == "rtsp://[fd00::5]:554/live"
