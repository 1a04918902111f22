"""What `camgate run` starts (camgate.supervisor.planned_children), without starting it."""

from __future__ import annotations

from camgate.cli import _parser, tunnel_port
from camgate.supervisor import planned_children


def by_name(children):
    return {child.name: child for child in children}


def test_the_gateway_tunnel_is_sent_to_the_web_servers_tunnel_port(monkeypatch):
    monkeypatch.setenv("CAMGATE_UPLINK_HOST", "relay.example.test")  # no embedded relay to plan
    children = by_name(planned_children("127.0.0.1", 8000, 8001))
    web, agent = children["web"].argv, children["agent"]
    assert web[web.index("--port") + 1] == "8000" and web[web.index("--tunnel-port") + 1] == "8001"
    # Never the main port: there loopback is a trusted proxy, and the agent speaks from
    # loopback for anyone on the internet.
    assert agent.env["CAMGATE_GATEWAY_HTTP_PORT"] == "8001"
    assert "CAMGATE_GATEWAY_TUNNEL" not in agent.env


def test_no_tunnel_port_means_no_gateway_tunnel(monkeypatch):
    monkeypatch.setenv("CAMGATE_UPLINK_HOST", "relay.example.test")
    agent = by_name(planned_children("127.0.0.1", 8000, 0))["agent"]
    assert agent.env["CAMGATE_GATEWAY_TUNNEL"] == "false"


def test_the_tunnel_port_defaults_to_the_next_port():
    assert tunnel_port(_parser().parse_args(["run", "--port", "9000"])) == 9001
    assert tunnel_port(_parser().parse_args(["web"])) == 8001
    assert tunnel_port(_parser().parse_args(["web", "--tunnel-port", "0"])) == 0


def test_a_part_that_exits_is_restarted_after_a_pause_that_grows_while_it_keeps_dying():
    import sys
    import time

    from camgate.supervisor import RESTART_PAUSES_S, Child

    child = Child("dies", [sys.executable, "-c", "raise SystemExit(3)"])
    child.start()
    child.process.wait()
    now = time.monotonic()
    child.look_after(now)
    assert child.restart_at == now + RESTART_PAUSES_S[1]  # it died at once: a quick exit
    first_pid = child.process.pid
    child.look_after(now + RESTART_PAUSES_S[1] - 0.01)
    assert child.process.pid == first_pid  # still pausing
    child.look_after(child.restart_at)
    assert child.process.pid != first_pid and child.restart_at is None
    child.process.wait()
    child.look_after(time.monotonic())
    assert child.restart_at - time.monotonic() > RESTART_PAUSES_S[1]  # dying again: a longer pause
    # After a long healthy run, an exit is restarted after the shortest pause.
    child.start()
    child.process.wait()
    child.started_at -= 3600
    child.quick_exits = 0
    now = time.monotonic()
    child.look_after(now)
    assert child.restart_at == now + RESTART_PAUSES_S[0]
