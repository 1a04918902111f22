"""The web server's line to the agent: a Unix socket in the data directory.

The web server never holds a tunnel. After a write it pokes the agent ("reconcile") so
the change takes effect at once instead of at the agent's next periodic pass, and
``restart-gateway`` asks for the gateway's own tunnel to be restarted. One JSON object a
line each way; the socket's file permissions keep other local users out.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

from camgate import config

log = logging.getLogger(__name__)

SOCKET_NAME = "agent.sock"


class AgentUnavailable(RuntimeError):
    pass


def socket_path() -> Path:
    return config.data_dir() / SOCKET_NAME


def send_command(command: str, timeout: float = 10.0, **arguments) -> dict:
    """Send one command (with keyword ``arguments`` for its handler, if any) to this data
    directory's agent and return its answer; AgentUnavailable if it can't."""
    return send_command_to(socket_path(), command, timeout, **arguments)


def send_command_to(path: Path, command: str, timeout: float = 10.0, **arguments) -> dict:
    """send_command, to the agent listening at ``path`` (another data directory's)."""
    request = {"command": command, "args": arguments} if arguments else {"command": command}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            reply = bytearray()  # answers can be large (a snapshot): no quadratic joins
            while not reply.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
    except FileNotFoundError:
        raise AgentUnavailable("the agent is not running (no control socket)") from None
    except ConnectionRefusedError:
        raise AgentUnavailable("the agent is not running (control socket refused)") from None
    except socket.timeout:
        raise AgentUnavailable(f"the agent did not answer within {timeout:g} s") from None
    except OSError as error:
        raise AgentUnavailable(f"cannot reach the agent: {error.strerror or error}") from None
    try:
        answer = json.loads(reply)
    except ValueError:
        raise AgentUnavailable("the agent sent an unreadable answer") from None
    if not isinstance(answer, dict):
        raise AgentUnavailable("the agent sent an unreadable answer")
    return answer


# The agent waits up to 15 s for the restarted tunnel to come up (reconciler.py);
# the caller must wait longer than that to hear why it did not.
RESTART_ANSWER_TIMEOUT_S = 20.0


def restart_gateway_tunnel() -> str | None:
    """Restart the gateway's own tunnel; None on success, else the reason it failed."""
    try:
        answer = send_command("restart-gateway", timeout=RESTART_ANSWER_TIMEOUT_S)
    except AgentUnavailable as error:
        return str(error)
    if answer.get("ok"):
        return None
    return answer.get("error") or "the agent could not restart the gateway tunnel"


def poke_agent() -> None:
    """Ask for an immediate reconcile; harmless when the agent is down (it reconciles
    everything when it starts)."""
    try:
        send_command("reconcile", timeout=2.0)
    except AgentUnavailable as error:
        log.info("agent not poked: %s", error)


def agent_settings() -> dict[str, str] | None:
    """The uplink settings the running agent uses, by environment variable name; None
    when the agent does not answer."""
    try:
        answer = send_command("settings", timeout=2.0)
    except AgentUnavailable:
        return None
    settings = answer.get("settings")
    return settings if isinstance(settings, dict) else None
