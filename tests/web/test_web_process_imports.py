"""A web process loads what serving needs and no more: every `camgate web` start (and
each app server it forks from) imports the app and its views once, and the ONVIF client
(zeep) with aiohttp's client took 0.3 s of a 1.0 s import there. /api/onvif/ loads them
at its first request instead (camgate/onvif/views.py)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import camgate_env

CHECK = """
import sys
from camgate.wsgi import application
from django.urls import get_resolver
get_resolver().url_patterns  # every view, as the app server loads them before forking
print(sorted({m.partition(".")[0] for m in sys.modules} & {"zeep", "aiohttp", "av", "asyncpg"}))
"""


def test_the_web_app_and_its_views_load_no_onvif_or_http_client(tmp_path):
    result = subprocess.run([sys.executable, "-c", CHECK], env=camgate_env(tmp_path), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
