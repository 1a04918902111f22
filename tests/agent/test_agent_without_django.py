"""The agent runs without Django: `camgate agent --no-prepare` (as `camgate run`, the
container and the systemd unit start it) reads and writes the database with sqlite3
(camgate/agent/db.py), and loading Django's ORM would cost it about 15 MiB."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import camgate_env

CHECK = """
import sys
from camgate import cli
import camgate.agent.reconciler as reconciler

def run_agent():
    reconciler.Agent  # everything the agent runs is imported by now
    print(sorted(m for m in sys.modules if m.partition(".")[0] in ("django", "rest_framework")))

reconciler.run_agent = run_agent
cli.main(["agent", "--no-prepare"])
"""


def test_camgate_agent_no_prepare_loads_no_django(tmp_path):
    result = subprocess.run([sys.executable, "-c", CHECK], env=camgate_env(tmp_path), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
