"""The UI as `camgate web` serves it: gunicorn with several workers, static files from
the app through whitenoise (no collectstatic, no CDN), and one login throttle for all
workers."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.support.processes import camgate_env, camgate_process, free_port, wait_for_http

pytestmark = pytest.mark.e2e


class Browser:
    """Just enough of a browser: cookies, CSRF tokens from forms, no redirects followed."""

    def __init__(self, base: str):
        self.base = base
        self.cookies = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), NoRedirect)

    def request(self, path: str, form: dict | None = None, headers: dict | None = None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers={"Referer": self.base + "/", **(headers or {})})
        try:
            with self.opener.open(request, timeout=15) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()

    def csrf(self, path: str) -> str:
        _, _, html = self.request(path)
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def test_camgate_web_serves_the_ui_its_assets_and_one_throttle_for_all_workers(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with camgate_process(["web", "--port", str(port), "--workers", "3"], camgate_env(tmp_path / "data"), tmp_path / "web.log"):
        wait_for_http(base + "/login/")
        browser = Browser(base)

        status, _, html = browser.request("/login/")
        assert status == 200 and "Log in" in html
        for asset, kind in [("app.css", "text/css"), ("app.js", "javascript"), ("favicon.svg", "image/svg")]:
            assert f"/static/web/{asset}" in html
            status, headers, _ = browser.request(f"/static/web/{asset}")
            assert status == 200 and kind in headers["Content-Type"], asset
        # Nothing is loaded from elsewhere: the box may be offline.
        assert all(url.startswith(("/", "#")) and not url.startswith("//") for url in re.findall(r'(?:src|href)="([^"]*)"', html))

        # Each attempt is a new connection, so the workers share them out; the count is
        # still one count.
        for attempt in range(5):
            token = browser.csrf("/login/")
            status, _, html = browser.request("/login/", {"csrfmiddlewaretoken": token, "username": "admin", "password": f"guess{attempt}"})
        assert status == 429 and "Too many failed sign-in attempts" in html
        token = browser.csrf("/login/")
        status, _, _ = browser.request("/login/", {"csrfmiddlewaretoken": token, "username": "admin", "password": "admin"})
        assert status == 429

        # A different client address (as the trusted local proxy reports it) may still log in.
        other = Browser(base)
        token = other.csrf("/login/")
        status, headers, _ = other.request("/login/", {"csrfmiddlewaretoken": token, "username": "admin", "password": "admin"},
                                           headers={"X-Forwarded-For": "192.0.2.44"})
        assert status == 302 and headers["Location"] == "/"
        status, _, html = other.request("/")
        assert status == 200 and "still has the default password" in html
