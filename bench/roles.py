"""Processes the benchmark starts besides camgate's own commands.

    BENCH_TUNNEL_TOKEN=TOKEN python3 bench/roles.py tunnel-client --uplink HOST:PORT --forward NAME:PROTO:HOST:PORT
        one TunnelClient (the gateway's end of one tunnel) in its own process; prints
        {"endpoints": {name: public port}} once the tunnel is up (the token comes from the
        environment, not argv, so it is not in the process list)
    python3 bench/roles.py proxy --target HOST:PORT
        the baseline: a plain asyncio TCP proxy on loopback; prints {"port": port}

    python3 bench/roles.py tunnel-fleet --uplink HOST:PORT --forward NAME:PROTO:HOST:PORT
        many TunnelClients in one process: reads {"tokens": [...]} on stdin (secrets stay out
        of argv), prints {"ready": n}, starts them all on a "go" line and prints, once all
        are up or --connect-timeout has passed, each tunnel's seconds from "go" to up, the
        wall-clock time the last came up, and the errors its tries met; then keeps them up.
        With --source ADDRESS (repeatable) the clients connect from those addresses in
        turn, one shared HTTP session each, as devices come from many sites. With
        --events it also says, as they happen, each time a tunnel comes up with its
        public ports ({"up": i, "ports": {name: port}}, i its token's index), each loss of
        an up tunnel ({"lost": reason, "at": t}) and each failed try ({"failed": reason, "at": t}),
        t its time.monotonic() (on Linux the same clock in every process)

All run until SIGTERM or SIGINT, until their parent goes away, or for --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time


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


# --- many tunnel clients ------------------------------------------------------


async def tunnel_fleet(args: argparse.Namespace) -> None:
    from collections import Counter

    from camgate.uplink.client import TunnelClient, TunnelSpec, TunnelState
    from camgate.uplink.client_http import shared_session
    from camgate.uplink.protocol import parse_forward

    loop = asyncio.get_running_loop()
    sessions = [shared_session(local_addr=(address, 0)) for address in args.source]
    tokens = json.loads(await loop.run_in_executor(None, sys.stdin.readline))["tokens"]
    forwards = tuple(parse_forward(f) for f in args.forward)
    up_after: dict[str, float] = {}
    errors: Counter[str] = Counter()
    seen: set[tuple[str, float]] = set()
    started = {"at": 0.0}
    all_up = asyncio.Event()
    up_now: set[str] = set()  # announced up (with ports) and not lost since

    def on_status(status) -> None:
        if status.state is TunnelState.UP and status.endpoints:
            up_after.setdefault(status.key, time.monotonic() - started["at"])
            if len(up_after) == len(tokens):
                all_up.set()
            if args.events and status.key not in up_now:
                _say({"up": int(status.key[1:]), "ports": {e.name: e.proxy_port for e in status.endpoints}})
            up_now.add(status.key)
        elif status.last_error and status.retry_at is not None and (status.key, status.retry_at) not in seen:
            # One failed try (or loss), said once: a retry is planned for it. Later statuses
            # keep its last_error until the tunnel is up, but plan nothing.
            seen.add((status.key, status.retry_at))
            errors[status.last_error[:80]] += 1
            if args.events:
                _say({"lost" if status.key in up_now else "failed": status.last_error[:160], "at": time.monotonic()})
        if status.state is not TunnelState.UP:
            up_now.discard(status.key)

    clients = [
        TunnelClient(TunnelSpec(key=f"t{i}", token=token, forwards=forwards, uplink=args.uplink, tls=False),
                     on_status=on_status, http=sessions[i % len(sessions)] if sessions else None)
        for i, token in enumerate(tokens)
    ]
    _say({"ready": len(clients)})
    await loop.run_in_executor(None, sys.stdin.readline)  # "go"
    started["at"] = time.monotonic()
    for client in clients:
        client.start()
    try:
        try:
            await asyncio.wait_for(all_up.wait(), args.connect_timeout)
        except asyncio.TimeoutError:
            pass
        _say({"up_after": sorted(up_after.values()), "last_up_wall": time.time() - time.monotonic()
              + started["at"] + max(up_after.values(), default=0.0), "errors": dict(errors)})
        await _until_stopped(args.max_seconds)
    finally:
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
        await asyncio.gather(*(session.close() for session in sessions))


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
    fleet = roles.add_parser("tunnel-fleet")
    fleet.add_argument("--uplink", required=True)
    fleet.add_argument("--forward", action="append", required=True)
    fleet.add_argument("--connect-timeout", type=float, default=120.0)
    fleet.add_argument("--source", action="append", default=[], help="local address to connect from (repeatable)")
    fleet.add_argument("--events", action="store_true", help="say each tunnel's ups, losses and failed tries")
    px = roles.add_parser("proxy")
    px.add_argument("--target", required=True)
    for sub in (client, fleet, px):
        sub.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.role == "proxy":
        asyncio.run(proxy(args))  # the baseline: Python's own loop, as a plain asyncio program
        return
    from camgate import event_loop

    # The gateway's end of tunnels: on the loop camgate's agent and `camgate uplink` choose.
    event_loop.run({"tunnel-client": tunnel_client, "tunnel-fleet": tunnel_fleet}[args.role](args))


if __name__ == "__main__":
    main()
