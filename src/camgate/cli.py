"""The `camgate` command.

    camgate run   [--host H] [--port P] [--tunnel-port T]   everything on the embedded default
    camgate web   [--host H] [--port P] [--tunnel-port T]   the web server (API + UI) alone
    camgate agent                         the tunnel agent alone
    camgate relay [--host H] [--port P] [--public-host NAME] [--tls-cert F --tls-key F]
                  [--store postgresql://... --node NAME --uplink-host NAME]   several nodes, one fleet
    camgate uplink (--token T | --serial S) [--http] [--insecure] -f NAME:PROTO:HOST:PORT ...
                                          one device's tunnel (vxg-proxy-client's arguments)
    camgate <django management command>   e.g. `camgate migrate`, `camgate createsuperuser`
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from camgate.core import port_range_text
from camgate.uplink.cli import add_parser as add_uplink_parser

DEFAULT_SETTINGS = "camgate.settings"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", DEFAULT_SETTINGS)

log = logging.getLogger("camgate")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def _setup_django() -> None:
    import django

    django.setup()


def prepare() -> None:
    """Bring the data directory up to date (see datadir.prepare)."""
    _setup_django()
    from camgate import config, datadir

    datadir.prepare(config.data_dir())


def _add_bind_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--tunnel-port", type=int,
                        help="port the gateway's own tunnel delivers to: nobody there is taken for a trusted "
                        "proxy (default: --port + 1; 0: none)")


def tunnel_port(args: argparse.Namespace) -> int:
    return args.port + 1 if args.tunnel_port is None else args.tunnel_port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="camgate", description="Camera cloud gateway.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="web server and tunnels on the embedded default")
    _add_bind_arguments(run)
    web = commands.add_parser("web", help="the web server (API and UI) alone")
    _add_bind_arguments(web)
    web.add_argument("--workers", type=int, default=2)
    web.add_argument("--no-prepare", action="store_true", help=argparse.SUPPRESS)
    agent = commands.add_parser("agent", help="the tunnel agent alone")
    agent.add_argument("--no-prepare", action="store_true", help=argparse.SUPPRESS)
    relay = commands.add_parser("relay", help="the cloud relay (admin token from CAMGATE_RELAY_ADMIN_TOKEN)")
    relay.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    relay.add_argument("--port", type=int, default=8443, help="port of the relay's HTTP API and tunnels (default 8443)")
    relay.add_argument("--public-host", help="name clients and viewers use to reach this relay")
    relay.add_argument("--tls-cert", help="PEM certificate: serve HTTPS/WSS")
    relay.add_argument("--tls-key", help="PEM private key for --tls-cert")
    relay.add_argument("--state", help="JSON file keeping devices and public ports across restarts")
    relay.add_argument("--port-range", default=port_range_text(), help=f"public ports for forwards, FIRST-LAST (default {port_range_text()})")
    relay.add_argument("--store", help="postgresql://... : keep the state in PostgreSQL, shared with other relay "
                       "nodes, instead of the state file (default: CAMGATE_RELAY_STORE)")
    relay.add_argument("--node", help="this node's name in the shared store (default: its public address)")
    relay.add_argument("--uplink-host", help="the address tokens name, where devices ask which node to dial: with "
                       "several nodes, a name reaching any live one (default: this node's public address)")
    relay.add_argument("--heartbeat", type=float, default=5.0, help="seconds between a node's heartbeats (default 5)")
    relay.add_argument("--node-ttl", type=float, default=15.0,
                       help="a node whose heartbeat is older than this many seconds is taken for dead (default 15)")
    relay.add_argument("--open-enrollment", action="store_true",
                       help="give a token to any device that asks with the secret in CAMGATE_ENROLLMENT_SECRET "
                       "(camgate run's relay)")
    add_uplink_parser(commands)
    return parser


def _port_range(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    try:
        low, high = int(first), int(last)
    except ValueError:
        raise SystemExit(f"--port-range must look like {port_range_text()}, not {text!r}") from None
    if not 1 <= low <= high <= 65535:
        raise SystemExit(f"--port-range {text!r} is not a range of ports")
    return low, high


def run_relay_command(args: argparse.Namespace) -> int:
    from camgate import config
    from camgate.uplink.enrollment import ENROLLMENT_SECRET_ENV
    from camgate.uplink.relay import RelayConfig, run_relay

    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("--tls-cert and --tls-key go together")
    store_url = args.store or config.env_str("CAMGATE_RELAY_STORE") or None
    if store_url and not store_url.startswith(("postgresql://", "postgres://")):
        raise SystemExit("--store must be a postgresql://... URL")
    if not 0 < args.heartbeat < args.node_ttl:
        raise SystemExit("--heartbeat must be positive and shorter than --node-ttl")
    enrollment_secret = config.env_str(ENROLLMENT_SECRET_ENV)
    if args.open_enrollment and not enrollment_secret:
        raise SystemExit(f"--open-enrollment needs {ENROLLMENT_SECRET_ENV}: only devices showing it are enrolled")
    admin_token = config.env_str("CAMGATE_RELAY_ADMIN_TOKEN")
    if not admin_token:
        log.warning("CAMGATE_RELAY_ADMIN_TOKEN is not set: the relay's admin API is disabled")
    run_relay(RelayConfig(
        host=args.host,
        port=args.port,
        public_host=args.public_host,
        admin_token=admin_token,
        port_range=_port_range(args.port_range),
        state_path=args.state or str(config.data_dir() / "relay-state.json"),
        store_url=store_url,
        node_name=args.node,
        uplink_host=args.uplink_host,
        heartbeat_interval=args.heartbeat,
        node_ttl=args.node_ttl,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        open_enrollment=args.open_enrollment,
        enrollment_secret=enrollment_secret,
        metrics_allow=tuple(config.env_list("CAMGATE_RELAY_METRICS_ALLOW", "127.0.0.1,::1")),
    ))
    return 0


def main(argv: list[str] | None = None) -> int:
    from camgate.datadir import DataDirError

    try:
        return _main(argv)
    except DataDirError as error:
        # One line a person can act on, not a traceback.
        print(f"camgate: {error}", file=sys.stderr)
        return 1


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    known = {"run", "web", "agent", "relay", "uplink", "-h", "--help"}
    if argv and argv[0] not in known:
        from django.core.management import execute_from_command_line

        execute_from_command_line(["camgate", *argv])
        return 0
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    if args.command == "web":
        if not args.no_prepare:
            prepare()
        from camgate.front.service import run_web

        return run_web(args.host, args.port, tunnel_port(args), args.workers)
    if args.command == "agent":
        if not args.no_prepare:
            prepare()
        # The agent itself needs no Django: it reads and writes with sqlite3 (agent/db.py).
        from camgate.agent.reconciler import run_agent

        run_agent()
        return 0
    if args.command == "relay":
        return run_relay_command(args)
    if args.command == "uplink":
        from camgate.uplink.cli import run_uplink_command

        return run_uplink_command(args)
    if args.command == "run":
        from camgate.supervisor import run_all

        prepare()
        return run_all(args.host, args.port, tunnel_port(args))
    return 2


if __name__ == "__main__":
    sys.exit(main())
