"""Liveness for the deployment: the web server's `/healthz` and the container probes.

`GET /healthz` needs no login and answers 200 {"status": "ok"} only after a database
query succeeds, so a health check fails when the data directory does (locked, missing,
read-only), not only when the process is gone.

`python -m camgate.health web|agent` is what the compose health checks run: it probes
the local web server or the agent's control socket and exits 0 (healthy) or 1. It lives
here, not in a compose one-liner, so that it is tested like the rest of the code.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.http import require_safe


@require_safe
def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM django_migrations")
            cursor.fetchone()
    except DatabaseError:
        response = JsonResponse({"status": "error", "detail": "database unavailable"}, status=503)
    else:
        response = JsonResponse({"status": "ok"})
    response["Cache-Control"] = "no-store"
    return response


# --- probes (run by `python -m camgate.health`; no Django setup, they must stay cheap) ---

DEFAULT_WEB_PORT = 8000


def probe_host_header(allowed_hosts: str) -> str:
    """A Host the web server accepts, so a restricted CAMGATE_ALLOWED_HOSTS does not turn
    every probe into a 400."""
    for entry in (item.strip() for item in allowed_hosts.split(",")):
        if entry and entry != "*":
            return entry.lstrip(".")
    return "localhost"


def probe_web(port: int | None = None, timeout: float = 5.0) -> tuple[bool, str]:
    port = port or int(os.environ.get("CAMGATE_WEB_PORT") or DEFAULT_WEB_PORT)
    host = probe_host_header(os.environ.get("CAMGATE_ALLOWED_HOSTS", "*"))
    request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        return False, f"web answered {error.code}"
    except (OSError, ValueError) as error:
        return False, f"web unreachable: {error}"
    if body.get("status") != "ok":
        return False, f"web reported {body!r}"
    return True, "web ok"


def probe_agent(timeout: float = 5.0) -> tuple[bool, str]:
    """Healthy when the agent answers a ping on its control socket."""
    from camgate.agent.control import AgentUnavailable, send_command

    try:
        answer = send_command("ping", timeout=timeout)
    except AgentUnavailable as error:
        return False, str(error)
    if not answer.get("ok"):
        return False, f"agent answered {answer!r}"
    return True, "agent ok"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    probes = {"web": probe_web, "agent": probe_agent}
    if len(argv) != 1 or argv[0] not in probes:
        print("usage: python -m camgate.health web|agent", file=sys.stderr)
        return 2
    healthy, message = probes[argv[0]]()
    print(message, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
