"""The control socket carries arguments to the agent's handlers (a snapshot names its
camera), and refuses arguments a handler does not take, without calling it."""

from __future__ import annotations

import json
import socket

from camgate.agent import control
from tests.support.agent_socket import control_socket


def raw(request: bytes) -> dict:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(control.socket_path()))
        sock.sendall(request + b"\n")
        return json.loads(sock.makefile("rb").readline())


def test_arguments_reach_the_handler_and_wrong_ones_are_refused():
    calls = []

    async def snapshot(camera_id):
        calls.append(camera_id)
        return {"ok": True, "camera_id": camera_id, "big": "x" * 3_000_000}

    async def ping():
        return {"ok": True}

    with control_socket(lambda: {"snapshot": snapshot, "ping": ping}):
        answer = control.send_command("snapshot", camera_id=7)
        assert answer["camera_id"] == 7 and len(answer["big"]) == 3_000_000  # large answers arrive whole
        assert control.send_command("ping") == {"ok": True}
        assert control.send_command("ping", camera_id=7) == {"ok": False, "error": "wrong arguments for ping"}
        assert control.send_command("snapshot") == {"ok": False, "error": "wrong arguments for snapshot"}
        assert raw(b'{"command": "snapshot", "args": [7]}') == {"ok": False, "error": "wrong arguments for snapshot"}
        assert raw(b'{"command": "snapshot", "args": {"camera_id": 1, "x": 2}}')["ok"] is False
    assert calls == [7]


def test_the_socket_is_owner_only_and_bad_requests_get_an_answer_not_a_crash():
    import os
    import stat

    async def ping():
        return {"ok": True}

    async def broken():
        raise RuntimeError("disk full")

    with control_socket(lambda: {"ping": ping, "broken": broken}):
        assert stat.S_IMODE(os.stat(control.socket_path()).st_mode) == 0o600
        assert raw(b"not json") == {"ok": False, "error": "expected a JSON object with a command"}
        assert raw(b"[" * 2000 + b"]" * 2000) == {"ok": False, "error": "expected a JSON object with a command"}
        assert raw(b'{"command": "nope"}') == {"ok": False, "error": "unknown command 'nope'"}
        assert raw(b'{"command": "broken"}') == {"ok": False, "error": "broken failed: disk full"}
        assert raw(b'{"command": "ping"}') == {"ok": True}  # still serving
