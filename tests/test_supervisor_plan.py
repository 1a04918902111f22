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
