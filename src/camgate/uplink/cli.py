"""`camgate uplink`: a drop-in for VXG's own agent, ``vxg-proxy-client``.

Same arguments as the reference agent (``--token``/``--serial``, ``--http``,
``--insecure``, up to ten ``-f NAME:PROTO:HOST:PORT``), carried by the very
:class:`TunnelClient` that camgate's agent uses: exactly the reference protocol to a
reference relay, camgate's extensions when the relay offers them. It needs no Django and
no data directory: a box that only runs the tunnel carries nothing else.

Exit codes: 0 when stopped by SIGTERM/SIGINT and, as the reference agent, on an invalid
token; 1 when the tunnel cannot work for another reason; 2 on a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from camgate import event_loop
from camgate.core import TunnelState

from .protocol import LIMITS, Forward, ProtocolError, check_forwards, parse_forward
from .tokens import InvalidToken, decode_access_token

if TYPE_CHECKING:  # the client (aiohttp) is imported only when the command runs: `camgate --help` stays quick
    from .client import ClientStatus, TunnelSpec

log = logging.getLogger("camgate.uplink")

# The reference agent's README documents no environment variables, so these are
# camgate's names. The token and password are read from here so that they need not
# appear on the command line, where every local user can see them in the process list.
TOKEN_ENV = "CAMGATE_UPLINK_TOKEN"
SERIAL_ENV = "CAMGATE_UPLINK_SERIAL"
PASSWORD_ENV = "CAMGATE_UPLINK_PASSWORD"
PROVISIONING_ENV = "CAMGATE_PROVISIONING_URL"

EXIT_INVALID_TOKEN = 0  # the reference agent's: a supervisor must not restart it in a loop
EXIT_FAILED = 1


class UsageError(Exception):
    pass


def add_parser(commands) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "uplink", help="one device's tunnel, with vxg-proxy-client's arguments",
        description="Keep one device's tunnel up to a relay (a drop-in for vxg-proxy-client).",
    )
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--token", help=f"the device's access token (better: {TOKEN_ENV}, kept out of the process list)")
    who.add_argument("--serial", help=f"provision the token by serial number (or {SERIAL_ENV}); "
                     f"password from {PASSWORD_ENV}, default the serial")
    parser.add_argument("--http", action="store_true", help="plain HTTP and WebSocket, no TLS (port 80 by default)")
    parser.add_argument("--insecure", action="store_true", help="TLS without checking the relay's certificate")
    parser.add_argument("-f", dest="forwards", action="append", default=[], metavar="NAME:PROTO:HOST:PORT",
                        help=f"a port to publish; PROTO is http, https or tcp (1 to {LIMITS.max_forwards})")
    parser.set_defaults(usage_error=parser.error)
    return parser


def parse_forwards(texts: list[str]) -> tuple[Forward, ...]:
    if len(texts) > LIMITS.max_forwards:
        raise UsageError(f"at most {LIMITS.max_forwards} -f, got {len(texts)}: -f {texts[LIMITS.max_forwards]!r} "
                         "is one too many")
    forwards = []
    for text in texts:
        try:
            forwards.append(parse_forward(text))
        except ProtocolError as exc:
            raise UsageError(f"bad forward -f {text!r}: {exc}") from None
    try:
        return check_forwards(forwards)
    except ProtocolError as exc:
        raise UsageError(str(exc)) from None


def provisioning_url(value: str, tls: bool) -> str:
    """A full URL as given; a bare ``host[:port]`` with the scheme ``--http`` says."""
    if "://" in value:
        return value
    return f"{'https' if tls else 'http'}://{value}"


def build_spec(args: argparse.Namespace, environ: Mapping[str, str]) -> TunnelSpec:
    """The tunnel the arguments describe; :class:`UsageError` saying what is wrong.
    Never puts the token or password in a message."""
    from .spec import DEFAULT_PROVISIONING_URL, TunnelSpec

    serial = args.serial or ("" if args.token else environ.get(SERIAL_ENV, ""))
    token = args.token or ("" if serial else environ.get(TOKEN_ENV, ""))
    if not token and not serial:
        raise UsageError(f"one of --token or --serial is required (or {TOKEN_ENV} or {SERIAL_ENV})")
    if not args.forwards:
        raise UsageError("at least one -f NAME:PROTO:HOST:PORT is required")
    forwards = parse_forwards(args.forwards)
    tls = not args.http
    default_provisioning = DEFAULT_PROVISIONING_URL if tls else DEFAULT_PROVISIONING_URL.replace("https:", "http:")
    return TunnelSpec(
        key="uplink",
        forwards=forwards,
        token=token,
        serial=serial,
        password=environ.get(PASSWORD_ENV, "") or serial,
        tls=tls,
        verify=not args.insecure,
        provisioning_url=provisioning_url(environ.get(PROVISIONING_ENV, "") or default_provisioning, tls),
    )


def _say(message: str) -> None:
    print(f"camgate uplink: {message}", file=sys.stderr, flush=True)


class _EndpointLog:
    """Logs the public ports a camgate relay gives the forwards, once each time they change
    (a reference relay never says)."""

    def __init__(self) -> None:
        self._last: tuple = ()

    def __call__(self, status: ClientStatus) -> None:
        if status.endpoints and status.endpoints != self._last:
            self._last = status.endpoints
            for endpoint in status.endpoints:
                log.info("forward %s is published at %s:%s", endpoint.name, endpoint.proxy_host, endpoint.proxy_port)


async def run_tunnel(spec: TunnelSpec) -> ClientStatus:
    """Keep the tunnel up until SIGTERM/SIGINT or until it cannot work; its last status."""
    from .client import TunnelClient

    client = TunnelClient(spec, on_status=_EndpointLog())
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    task = client.start()
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            log.info("stopping: closing the tunnel and its connections")
        await client.stop()
    finally:
        stopper.cancel()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    return client.status


def run_uplink_command(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    try:
        spec = build_spec(args, environ)
    except UsageError as exc:
        args.usage_error(str(exc))  # exits 2 with the usage line
    if spec.token:
        # Checked before any connection, so that a mistyped token is one line.
        try:
            decode_access_token(spec.token)
        except InvalidToken as exc:
            _say(f"invalid token: {exc}")
            return EXIT_INVALID_TOKEN
    status = event_loop.run(run_tunnel(spec))
    if status.state is TunnelState.FAILED:
        _say(status.reason)
        return EXIT_INVALID_TOKEN if status.reason.startswith("invalid token") else EXIT_FAILED
    return 0
