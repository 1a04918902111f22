"""`camgate run` checks its ports before starting anything (camgate.run_ports)."""

from __future__ import annotations

import socket

from camgate.run_ports import PlannedPort, embedded_relay_port, port_problem
from camgate.supervisor import planned_children, planned_ports

from tests.support.processes import free_port


def test_the_embedded_relay_port_follows_the_web_port_unless_set():
    assert embedded_relay_port(8000, None) == 8800
    assert embedded_relay_port(8002, None) == 8802
    assert embedded_relay_port(8002, 9900) == 9900


def test_instances_two_ports_apart_share_no_port(monkeypatch):
    monkeypatch.delenv("CAMGATE_UPLINK_HOST", raising=False)
    monkeypatch.delenv("CAMGATE_EMBEDDED_RELAY_PORT", raising=False)
    first = {p.port for p in planned_ports("127.0.0.1", 8000, 8001)}
    second = {p.port for p in planned_ports("127.0.0.1", 8002, 8003)}
    assert first == {8000, 8001, 8800} and not first & second
    relay = {c.name: c for c in planned_children("127.0.0.1", 8002, 8003)}["relay"].argv
    assert relay[relay.index("--port") + 1] == "8802"


def test_a_listening_port_is_named_with_what_it_was_for():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        free = free_port()
        problem = port_problem([PlannedPort("127.0.0.1", free, "the web server (--port)"),
                                PlannedPort("127.0.0.1", port, "the embedded relay (CAMGATE_EMBEDDED_RELAY_PORT)")])
    assert problem.startswith(f"port {port} on 127.0.0.1, for the embedded relay (CAMGATE_EMBEDDED_RELAY_PORT)")
    assert "\n" not in problem


def test_free_ports_are_no_problem_and_one_port_for_two_parts_is():
    port = free_port()
    assert port_problem([PlannedPort("127.0.0.1", port, "a"), PlannedPort("127.0.0.1", port + 1, "b")]) is None
    assert "planned twice" in port_problem([PlannedPort("127.0.0.1", port, "a"), PlannedPort("127.0.0.1", port, "b")])
