"""Starting camgate's own commands as real processes on loopback, for tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A free port P whose neighbour P + 1 is free too: `camgate web --port P` and
    `camgate run --port P` also listen on P + 1 (the gateway tunnel's port)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port < 65535 and bindable(port + 1):
            return port


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer means the server is up
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing answered at {url} within {timeout} s")


def wait_for_path(path: Path, timeout: float = 30.0) -> None:
    """Wait for a file to appear (e.g. the agent's control socket once it serves)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.1)


def http_json(method: str, url: str, body=None, token: str | None = None, headers: dict | None = None):
    all_headers = dict(headers or {})
    if token:
        all_headers["Authorization"] = f"Token {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    try:
        return status, json.loads(payload) if payload else None
    except ValueError:
        return status, payload


REPO = Path(__file__).resolve().parents[2]


def camgate_env(data_dir: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMGATE_", "GATEWAY_"))}
    env["CAMGATE_DATA_DIR"] = str(data_dir)
    # A fast password hasher in the children too (tests/support/fast_settings.py).
    env["DJANGO_SETTINGS_MODULE"] = "tests.support.fast_settings"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(REPO)]))
    # Test cameras live on loopback; the example addresses tests add (192.168.1.20,
    # 192.0.2.10) must never be connected to by the agent's health probe.
    env["CAMGATE_PROBE_NETWORKS"] = "127.0.0.0/8,::1"
    env.update(extra)
    return env


@contextmanager
def camgate_process(args: list[str], env: dict, log_path: Path):
    """Run `camgate ARGS` in its own process group; stop the whole group afterwards."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "camgate.cli", *args],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        yield process
    finally:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen, timeout: float = 15.0) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
