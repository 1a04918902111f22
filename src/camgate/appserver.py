"""gunicorn serving the Django app on a private Unix socket, behind the web front.

`camgate web` starts this as its child (see camgate.front.service); it is not a command
of its own. Only the front connects to the socket: it sends each request whole, with a
PROXY protocol line naming the client, so REMOTE_ADDR is the client's address.

    python -m camgate.appserver --bind unix:PATH --workers N --parent PID
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "camgate.settings")

THREADS = 4
GRACEFUL_TIMEOUT_S = 8  # the front gives its child a little more before it kills it
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Linux: have the kernel send us SIGTERM when the front dies, however it dies, so a
    killed `camgate web` never leaves gunicorn serving a socket nobody reaches."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # it died before the prctl took effect
        sys.exit(1)


# A stop signal that reaches a worker between its fork and the moment it installs its own
# handlers runs the master's handler, copied into the worker: it is queued in the worker's
# copy of the master's signal queue and never acted on, and the master then waits its
# whole graceful timeout (8 s) for that worker. Seen whenever `camgate web` was stopped
# while a worker was still booting. The worker looks in that queue once its own handlers
# are in place, and stops if a stop was asked.
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}


def remember_master_signals(server, worker) -> None:
    worker.master_signals = server.SIG_QUEUE  # this process's copy, as the master's handler fills it


def stop_if_asked_while_booting(worker) -> None:
    if STOP_SIGNALS & set(worker.master_signals):
        worker.alive = False


def serve(bind: str, workers: int) -> None:
    from gunicorn.app.base import BaseApplication

    from django.urls import get_resolver

    from camgate.wsgi import application

    # Import the views now, once, rather than in each worker at its first request: the
    # workers are forked from here and share what is already loaded (about half a
    # second of CPU per worker, and memory shared instead of copied). Importing opens
    # no database connection.
    get_resolver().url_patterns

    class AppServer(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", bind)
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", THREADS)
            self.cfg.set("accesslog", "-")
            self.cfg.set("graceful_timeout", GRACEFUL_TIMEOUT_S)
            # The front's PROXY line gives the client's address. Only the front can
            # reach this socket, and it never lets a client's own PROXY line through.
            self.cfg.set("proxy_protocol", True)
            self.cfg.set("proxy_allow_ips", "*")
            # gunicorn believes every peer of a Unix socket as a proxy; Django's
            # TrustedProxyMiddleware alone decides what X-Forwarded-* headers mean.
            self.cfg.set("forwarded_allow_ips", "")
            self.cfg.set("secure_scheme_headers", {})
            self.cfg.set("forwarder_headers", "")
            self.cfg.set("post_fork", remember_master_signals)
            self.cfg.set("post_worker_init", stop_if_asked_while_booting)

        def load(self):
            return application

    AppServer().run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m camgate.appserver")
    parser.add_argument("--bind", required=True, help="unix:PATH")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--parent", type=int, required=True, help="pid of the front")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    serve(args.bind, args.workers)


if __name__ == "__main__":
    main()
