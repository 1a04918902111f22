"""The Find cameras page as the server renders it; tests/test_find_cameras_e2e.py drives
it in Chromium against a real camera."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def test_the_page_names_the_api_routes_its_script_calls(admin_client):
    html = admin_client.get("/find-cameras/").content.decode()
    assert 'data-discover-url="/api/discover"' in html and 'data-onvif-url="/api/onvif"' in html
    assert 'data-add-url="/api/add-camera"' in html and 'data-camera-url="/edit-camera/"' in html
    assert re.search(r'<script src="[^"]*find-cameras\.js" defer>', html)
    assert re.search(r'<a href="/find-cameras/" aria-current="page">Find cameras</a>', html)
    # The script's requests carry this token (the API checks it for a browser session).
    assert 'name="csrfmiddlewaretoken"' in html


def test_without_the_script_nothing_can_be_sent(admin_client):
    """The scan controls start disabled and only the script enables them, so a browser
    without it cannot submit the form (and with it a login) anywhere."""
    html = admin_client.get("/find-cameras").content.decode()
    assert '<fieldset id="scan-controls" disabled>' in html
    assert "<noscript>" in html and 'href="/add-camera"' in html
    assert admin_client.post("/find-cameras/", {"password": "x"}).status_code == 405
