"""The probe's thin asyncio layer: resolve, connect, and move the bytes that
session.RtspProbe asks for, every step under the same deadline.

Name resolution runs on the probe's own small thread pool, never the event loop's
default executor that the agent's database writes use, so a burst of names that do not
resolve delays nothing but other probes.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from camgate.config import PROBE_STEP_TIMEOUT_S
from camgate.probe.result import HealthState, ProbeResult, printable
from camgate.probe.rtsp_url import netloc
from camgate.probe.rtsp_wire import MAX_LINE_BYTES, ResponseParser, WireError
from camgate.probe.session import RtspProbe

READ_CHUNK = 16 * 1024
MAX_CONNECTIONS = 3  # a camera may close after a 401 or a redirect; reconnect, boundedly
_HTTP_STATUS = re.compile(rb"^HTTP/\d(?:\.\d)? \d{3}")
_TLS_RECORD = re.compile(rb"^[\x15\x16]\x03[\x00-\x04]")  # an alert or handshake record: an HTTPS port
_resolver: ThreadPoolExecutor | None = None


@dataclass(frozen=True, slots=True)  # slots: the agent keeps one per camera
class ProbeTarget:
    """Where a camera is and how to log in: everything a probe reads."""

    host: str
    rtsp_port: int
    http_port: int
    rtsp_only: bool = False
    rtsp_path: str = ""
    username: str = ""
    password: str = field(default="", repr=False)


class StepFailed(Exception):
    def __init__(self, result: ProbeResult) -> None:
        super().__init__(result.reason)
        self.result = result


def _unreachable(reason: str) -> StepFailed:
    return StepFailed(ProbeResult(HealthState.UNREACHABLE, reason))


def _error(reason: str) -> StepFailed:
    return StepFailed(ProbeResult(HealthState.ERROR, reason))


def _dns_pool() -> ThreadPoolExecutor:
    global _resolver
    if _resolver is None:
        _resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="camgate-probe-dns")
    return _resolver


Networks = tuple  # of ipaddress.ip_network; empty: any address may be probed


def parse_networks(text: str) -> Networks:
    """CAMGATE_PROBE_NETWORKS: comma-separated addresses or CIDR networks."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in text.split(",") if item.strip())


def _allowed(address: tuple, networks: Networks) -> bool:
    if not networks:
        return True
    ip = ipaddress.ip_address(address[0].split("%")[0])
    return any(ip in network for network in networks if network.version == ip.version)


async def resolve(host: str, port: int, timeout: float) -> list[tuple]:
    bare = host.strip("[]")
    try:  # an address needs no lookup and no thread
        return socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass
    loop = asyncio.get_running_loop()
    lookup = loop.run_in_executor(_dns_pool(), lambda: socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM))
    try:
        async with asyncio.timeout(timeout):
            return await lookup
    except TimeoutError:
        raise _unreachable(f"name not resolved in {timeout:g} s: {printable(host, 80)}") from None
    except socket.gaierror:
        raise _unreachable(f"name not resolved: {printable(host, 80)}") from None


def _connect_reason(error: OSError, what: str) -> str:
    if isinstance(error, ConnectionRefusedError):
        return f"connection refused ({what})"
    if error.errno == errno.EHOSTUNREACH:
        return f"no route to host ({what})"
    if error.errno == errno.ENETUNREACH:
        return f"network unreachable ({what})"
    return f"cannot connect ({what}): {error.strerror or error}"


async def connect(host: str, port: int, what: str, timeout: float, networks: Networks = ()):
    """(reader, writer) to the first address of ``host`` that takes the connection,
    among those inside ``networks``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    resolved = await resolve(host, port, timeout)
    addresses = [entry for entry in resolved if _allowed(entry[4], networks)]
    if not addresses:
        shown = ", ".join(sorted({entry[4][0] for entry in resolved}))[:120]
        raise StepFailed(ProbeResult(HealthState.UNKNOWN, f"not probed: {shown} is outside CAMGATE_PROBE_NETWORKS"))
    last: OSError | None = None
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            async with asyncio.timeout_at(deadline):
                await loop.sock_connect(sock, address)
            return await asyncio.open_connection(sock=sock)
        except TimeoutError:
            sock.close()
            raise _unreachable(f"no answer in {timeout:g} s (connecting to {what})") from None
        except OSError as error:
            sock.close()
            last = error
        except BaseException:  # cancelled: the camera's settings changed, or the agent stops
            sock.close()
            raise
    raise _unreachable(_connect_reason(last or OSError("no address"), what))


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()  # a probe owes the camera no graceful goodbye


async def probe_rtsp(target: ProbeTarget, timeout: float = PROBE_STEP_TIMEOUT_S, networks: Networks = ()) -> ProbeResult:
    probe = RtspProbe(target.host, target.rtsp_port, target.rtsp_path, target.username, target.password)
    what = f"RTSP port {target.rtsp_port}"
    started = time.monotonic()
    latency_ms: int | None = None
    writer = None
    try:
        for _ in range(MAX_CONNECTIONS):
            reader, writer = await connect(target.host, target.rtsp_port, what, timeout, networks)
            parser, answered = ResponseParser(), False
            while True:
                method = probe.method
                try:
                    request = probe.request()
                except ValueError:
                    raise _error("the stored username or password holds a line break; it cannot be sent") from None
                writer.write(request)
                try:
                    async with asyncio.timeout(timeout):
                        await writer.drain()
                        response = parser.next_response()
                        while response is None:
                            data = await reader.read(READ_CHUNK)
                            if not data:
                                break
                            parser.feed(data)
                            response = parser.next_response()
                except TimeoutError:
                    raise _unreachable(f"no answer in {timeout:g} s ({method} on {what})") from None
                if response is None:
                    if answered:
                        break  # closed between answers: try once more on a new connection
                    raise _error(f"the camera closed the connection without answering {method}")
                answered = True
                if latency_ms is None:
                    latency_ms = round((time.monotonic() - started) * 1000)
                result = probe.on_response(response)
                if result is not None:
                    return replace(result, latency_ms=latency_ms)
            await _close(writer)
            writer = None
        return ProbeResult(HealthState.ERROR, "the camera kept closing the connection", latency_ms)
    except StepFailed as failed:
        return replace(failed.result, latency_ms=latency_ms)
    except WireError as error:
        return ProbeResult(HealthState.ERROR, str(error), latency_ms)
    except ConnectionResetError:
        return ProbeResult(HealthState.ERROR, f"the camera reset the connection ({probe.method})", latency_ms)
    except OSError as error:
        return ProbeResult(HealthState.ERROR, f"{what}: {error.strerror or error}", latency_ms)
    finally:
        if writer is not None:
            await _close(writer)


async def probe_http(target: ProbeTarget, timeout: float = PROBE_STEP_TIMEOUT_S, networks: Networks = ()) -> ProbeResult | None:
    """None when the camera's web port answers with any HTTP status; else why not."""
    what = f"HTTP port {target.http_port}"
    writer = None
    try:
        reader, writer = await connect(target.host, target.http_port, what, timeout, networks)
        writer.write(
            f"GET / HTTP/1.1\r\nHost: {netloc(target.host, target.http_port)}\r\n"
            "User-Agent: camgate-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n".encode("latin-1")
        )
        head = b""
        try:
            async with asyncio.timeout(timeout):
                await writer.drain()
                while b"\n" not in head and len(head) < MAX_LINE_BYTES and not _TLS_RECORD.match(head):
                    data = await reader.read(READ_CHUNK)
                    if not data:
                        break
                    head += data
        except TimeoutError:
            return ProbeResult(HealthState.UNREACHABLE, f"no answer in {timeout:g} s (GET / on {what})")
        if _HTTP_STATUS.match(head) or _TLS_RECORD.match(head):
            return None  # a web server, or an HTTPS one refusing plain HTTP: reachable
        if not head:
            return ProbeResult(HealthState.ERROR, f"{what} closed the connection without answering GET /")
        return ProbeResult(HealthState.ERROR, f"{what} answers, but not with HTTP")
    except StepFailed as failed:
        return failed.result
    except OSError as error:
        return ProbeResult(HealthState.ERROR, f"{what}: {error.strerror or error}")
    finally:
        if writer is not None:
            await _close(writer)


async def probe_camera(target: ProbeTarget, timeout: float = PROBE_STEP_TIMEOUT_S, networks: Networks = ()) -> ProbeResult:
    """The camera's health: its RTSP stream decides; a dead web port (unless
    rtsp_only) makes a working stream's camera still unreachable, with the reason.
    Only addresses inside ``networks`` (when given) are connected to."""
    if target.rtsp_only:
        return await probe_rtsp(target, timeout, networks)
    rtsp, http = await asyncio.gather(probe_rtsp(target, timeout, networks), probe_http(target, timeout, networks))
    if rtsp.state is not HealthState.OK or http is None:
        return rtsp
    return replace(rtsp, state=http.state, reason=f"{http.reason}; the RTSP stream works")
