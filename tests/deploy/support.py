"""Helpers for the deployment tests: this checkout's code in every child process."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from pathlib import Path

from tests.support.processes import camgate_env

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def app_env(data_dir: Path, **extra: str) -> dict:
    """camgate_env, plus a PYTHONPATH that makes children import this checkout's
    src/ (not whatever camgate is installed) and the tests package."""
    env = camgate_env(data_dir, **extra)
    paths = [str(REPO / "src"), str(REPO)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def run_camgate(args: list[str], env: dict, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    result = subprocess.run([sys.executable, "-m", "camgate.cli", *args], env=env, timeout=60, **kwargs)
    if kwargs.get("check", True) is not False and result.returncode != 0:
        raise AssertionError(f"camgate {' '.join(args)} failed ({result.returncode}):\n{result.stdout!r}\n{result.stderr!r}")
    return result


def write_camgate_shim(directory: Path) -> Path:
    """A `camgate` executable running this checkout, to put first on PATH for
    deploy/entrypoint.sh (which calls `camgate` as the image and the units install it)."""
    directory.mkdir(parents=True, exist_ok=True)
    shim = directory / "camgate"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m camgate.cli "$@"\n')
    shim.chmod(0o755)
    return directory


def http_request(port: int, method: str, path: str, *, body=None, headers: dict | None = None,
                 source: str = "127.0.0.1", host: str = "127.0.0.1", encode_chunked: bool = False):
    """One request from a chosen loopback source address; (status, headers, body)."""
    connection = http.client.HTTPConnection(host, port, timeout=15, source_address=(source, 0))
    try:
        try:
            connection.request(method, path, body=body, headers=headers or {}, encode_chunked=encode_chunked)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered before taking the whole body (413)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()
