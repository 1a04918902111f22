"""Processes the benchmark starts besides camgate's own commands.

    BENCH_TUNNEL_TOKEN=TOKEN python3 bench/roles.py tunnel-client --uplink HOST:PORT --forward NAME:PROTO:HOST:PORT
        one TunnelClient (the gateway's end of one tunnel) in its own process; prints
        {"endpoints": {name: public port}} once the tunnel is up (the token comes from the
        environment, not argv, so it is not in the process list)
    python3 bench/roles.py proxy --target HOST:PORT
        the baseline: a plain asyncio TCP proxy on loopback; prints {"port": port}

Both run until SIGTERM or SIGINT, until their parent goes away, or for --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys


async def _until_stopped(max_seconds: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    deadline = loop.time() + max_seconds
    while not stop.is_set() and loop.time() < deadline and os.getppid() == parent:
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass


def _say(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# --- the tunnel client ---------------------------------------------------------


async def tunnel_client(args: argparse.Namespace) -> None:
    from camgate.uplink.client import TunnelClient, TunnelSpec, TunnelState
    from camgate.uplink.protocol import parse_forward

    spec = TunnelSpec(
        key="bench", token=os.environ["BENCH_TUNNEL_TOKEN"], forwards=tuple(parse_forward(f) for f in args.forward),
        uplink=args.uplink, tls=False,
    )
    announced = asyncio.Event()

    def on_status(status) -> None:
        if status.state is TunnelState.UP and status.endpoints and not announced.is_set():
            announced.set()
            _say({"endpoints": {e.name: e.proxy_port for e in status.endpoints}})

    client = TunnelClient(spec, on_status=on_status)
    client.start()
    try:
        await _until_stopped(args.max_seconds)
    finally:
        await client.stop()


# --- the baseline proxy --------------------------------------------------------


class _Half(asyncio.Protocol):
    """One side of a proxied connection; copies what it reads to its peer's transport."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Half | None = None
        self.early: list[bytes] = []  # read before the peer is connected

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.early.append(data)
            self.transport.pause_reading()
        else:
            peer.transport.write(data)

    def connection_lost(self, exc) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    # The peer's write buffer is full or drained: stop or resume reading our side.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


async def proxy(args: argparse.Namespace) -> None:
    host, _, port = args.target.rpartition(":")
    loop = asyncio.get_running_loop()

    def accept() -> _Half:
        viewer = _Half()

        async def connect() -> None:
            try:
                _, target = await loop.create_connection(_Half, host, int(port))
            except OSError:
                if viewer.transport is not None:
                    viewer.transport.close()
                return
            target.peer, viewer.peer = viewer, target
            if viewer.transport is None or viewer.transport.is_closing():
                target.transport.close()
                return
            for data in viewer.early:
                target.transport.write(data)
            viewer.early.clear()
            viewer.transport.resume_reading()

        loop.create_task(connect())
        return viewer

    server = await loop.create_server(accept, "127.0.0.1", 0)
    _say({"port": server.sockets[0].getsockname()[1]})
    try:
        await _until_stopped(args.max_seconds)
    finally:
        server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench/roles.py")
    roles = parser.add_subparsers(dest="role", required=True)
    client = roles.add_parser("tunnel-client")
    client.add_argument("--uplink", required=True)
    client.add_argument("--forward", action="append", required=True)
    px = roles.add_parser("proxy")
    px.add_argument("--target", required=True)
    for sub in (client, px):
        sub.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(tunnel_client(args) if args.role == "tunnel-client" else proxy(args))


if __name__ == "__main__":
    main()
