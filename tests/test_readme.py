"""The README's API examples, run verbatim by bash against `camgate run`."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import camgate_env, camgate_process, wait_for_http

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parent.parent / "README.md"
DEFAULT_PORT = 8000


def readme_examples() -> str:
    text = README.read_text()
    block = re.search(r"<!-- api-examples:start -->\s*```sh\n(.*?)```\s*<!-- api-examples:end -->", text, re.S)
    assert block, "README lost its api-examples block"
    return block.group(1)


def json_documents(text: str) -> list:
    """Each curl prints one JSON document, back to back (the delete prints nothing)."""
    decoder, documents, position = json.JSONDecoder(), [], 0
    while position < len(text.rstrip()):
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
    return documents


def test_readme_curl_examples_work_verbatim(tmp_path):
    script = readme_examples()
    assert "127.0.0.1:8000" in script
    with camgate_process(["run"], camgate_env(tmp_path / "data"), tmp_path / "camgate.log"):
        wait_for_http(f"http://127.0.0.1:{DEFAULT_PORT}/api/cameras/")
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    outputs = json_documents(result.stdout)
    added, listed, edited, detail, restarted = outputs
    assert added["camera_id"] == 1 and added["serial"] == "FAKECAMERA"
    # What the agent reports (the tunnel, and is_active/pid with it, and the camera's
    # health) moves on by itself.
    reported = ("tunnel", "health", "is_active", "pid")
    assert [{k: v for k, v in camera.items() if k not in reported} for camera in listed] == \
        [{k: v for k, v in added.items() if k not in reported}]
    assert edited["ip"] == "192.168.1.21"
    # The camera has serial and MAC: the embedded relay provisions it, and local_token
    # holds the provisioned token once that is done (it may not be done yet).
    from camgate.uplink.tokens import try_decode_camid

    assert detail["local_token"] == "" or try_decode_camid(detail["local_token"]) is not None
    # The gateway's own tunnel is up on the embedded relay, so a restart succeeds.
    assert restarted == {"message": "Server restarted successfully"}
