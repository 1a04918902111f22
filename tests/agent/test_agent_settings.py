"""The agent runs with the ORM alone: its settings load one app, and everything the
agent imports works without the web's apps (admin, auth, DRF, the schema)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import camgate_env

CHECK = """
import sys
import django
django.setup()
from django.apps import apps
from camgate.agent.reconciler import run_agent
assert [a.label for a in apps.get_app_configs()] == ["cameras"], apps.get_app_configs()
loaded = [m for m in ("rest_framework", "drf_spectacular", "django.contrib.admin", "django.contrib.auth") if m in sys.modules]
assert not loaded, loaded
"""


def test_the_agent_settings_load_only_the_cameras_app(tmp_path):
    env = camgate_env(tmp_path, DJANGO_SETTINGS_MODULE="camgate.agent.settings")
    result = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
