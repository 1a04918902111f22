"""Rendering the agent's reports defensively."""

from __future__ import annotations

import pytest

from camgate.web.presenters import endpoint_view, human_bytes


@pytest.mark.parametrize("count,text", [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (5 * 1024**2, "5.0 MiB"), (250 * 1024**3, "250 GiB"), (-1, "—"), (None, "—"), ("x", "—"),
])
def test_human_bytes(count, text):
    assert human_bytes(count) == text


def test_a_full_endpoint():
    raw = {"name": "rtsp", "proxy_host": "relay.example", "proxy_port": 41554, "url": "rtsp://relay.example:41554/"}
    assert endpoint_view(raw) == {"name": "rtsp", "address": "relay.example:41554",
                                  "url": "rtsp://relay.example:41554/", "scheme": "rtsp"}


@pytest.mark.parametrize("raw", [None, "rtsp://x/", 5, [], {}, {"name": "rtsp"}, {"proxy_port": "nope"}])
def test_unusable_endpoints_are_dropped(raw):
    assert endpoint_view(raw) is None


def test_odd_endpoints_are_shown_without_trusting_them():
    assert endpoint_view({"url": "javascript:alert(1)", "proxy_host": "h", "proxy_port": 1})["url"] == ""
    assert endpoint_view({"url": "http://[bad", "proxy_host": "h"})["url"] == ""
    view = endpoint_view({"name": {"x": 1}, "proxy_host": "h", "proxy_port": True, "url": "http://h:8080/"})
    assert view == {"name": "http", "address": "h", "url": "http://h:8080/", "scheme": "http"}
