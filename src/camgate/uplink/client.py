"""The gateway's side of one tunnel (uplink protocol, sections 2-4).

A :class:`TunnelClient` keeps one device's tunnel up: it provisions a token by serial
when it has none, asks the relay where to dial, opens the WebSocket, sends the hello
and then carries frames (see :mod:`.session`) until the WebSocket closes, then starts
again: at once (jittered) after a loss, after a growing pause after failures (Backoff). What it is doing is always readable as a
:class:`ClientStatus`, and pushed to an ``on_status`` callback when it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import ssl
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import aiohttp

from camgate.core import TunnelState

from .client_http import DEFAULT_HTTP_TIMEOUT, client_timeout
from .connection import Role, TunnelConnection
from .enrollment import enrollment_headers
from .flow import FlowLimits
from .protocol import SUBPROTOCOL, Hello, PublicEndpoint, build_hello
from .retry import Backoff, RecentRefusals, SlowRetry
from .spec import TunnelSpec
from .session import LivenessTimes, TunnelSession
from .tls import client_context
from .tokens import AccessToken, InvalidToken, decode_access_token
from .ws_link import take_over

log = logging.getLogger(__name__)

_MAX_MESSAGE = 1024 * 1024
_CLOSE_TIMEOUT = 1.0  # how long closing waits for the relay's CLOSE (a dead relay never answers)
_WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_close=_CLOSE_TIMEOUT)  # one for every client: the agent has one per camera
# Close codes with which a relay refuses a tunnel it has just accepted (a bad or revoked
# token or hello; "try again later": its store is unavailable): failed tries, where any
# other end of a tunnel that was up is a loss.
_REFUSALS = (1008, 1013)
# What this process's tunnel clients have seen refused just now (see RecentRefusals).
_RECENTLY_REFUSED = RecentRefusals()


@dataclass(frozen=True, slots=True)
class ClientStatus:
    """What a tunnel client reports of its tunnel; the agent writes it into the database
    row cameras.models.TunnelStatus (two names for the two, where one name was both)."""

    key: str
    state: TunnelState = TunnelState.CONNECTING
    reason: str = ""
    since: float = field(default_factory=time.time)  # when state or reason last changed
    retry_at: float | None = None  # wall-clock time of the next attempt, if one is planned
    last_error: str = ""  # why the last attempt failed; cleared when the tunnel comes up
    camid: int | None = None
    local_token: str = field(default="", repr=False)  # the token provisioning gave us
    # Public ports the relay gave the forwards (only a camgate relay says); kept when the
    # tunnel goes down because they are stable, but reachable only while state is up.
    endpoints: tuple[PublicEndpoint, ...] = ()
    open_connections: int = 0
    bytes_to_cloud: int = 0  # D payload bytes, all connections, since the client started
    bytes_from_cloud: int = 0
    tunnels_opened: int = 0


class _Retry(Exception):
    """This attempt failed; try again after a backoff. ``refused``: no one listened;
    ``skipped``: not even tried, as another tunnel was refused there just now."""

    def __init__(self, reason: str, refused: bool = False, skipped: bool = False) -> None:
        super().__init__(reason)
        self.refused = refused
        self.skipped = skipped


class _NotProvisioned(Exception):
    pass


class _Fatal(Exception):
    """Retrying will not help (an invalid token); ``slow`` says whether to try slowly anyway."""

    def __init__(self, reason: str, slow: bool = False) -> None:
        super().__init__(reason)
        self.slow = slow


class TunnelClient:
    # The agent holds one per camera: no __dict__ each.
    __slots__ = ("spec", "_http", "_on_status", "_backoff", "_slow_retry", "_limits", "_liveness", "_http_timeout",
                 "_status", "_session", "_bytes_to", "_bytes_from", "_main", "_ended", "_cancelled", "_task",
                 "_stopping", "_label")

    def __init__(
        self,
        spec: TunnelSpec,
        *,
        on_status: Callable[[ClientStatus], None] | None = None,
        backoff: Backoff = Backoff(),
        slow_retry: SlowRetry = SlowRetry(),
        limits: FlowLimits = FlowLimits(),
        liveness: LivenessTimes = LivenessTimes(),
        http_timeout: float = DEFAULT_HTTP_TIMEOUT,
        http: aiohttp.ClientSession | None = None,
    ) -> None:
        self.spec = spec
        self._http = http  # shared with other clients (client_http.py); None: its own
        self._on_status = on_status
        self._backoff = backoff
        self._slow_retry = slow_retry
        self._limits = limits
        self._liveness = liveness
        self._http_timeout = http_timeout
        self._status = ClientStatus(key=spec.key)
        self._session: TunnelSession | None = None
        self._bytes_to = 0
        self._bytes_from = 0
        self._main: asyncio.Task | None = None  # the task running run(), while it does
        self._ended: asyncio.Future[None] | None = None  # done when run() has returned
        self._cancelled = False  # stop() has cancelled _main
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._label = f"tunnel {spec.key}"

    # --- public ------------------------------------------------------------------

    @property
    def status(self) -> ClientStatus:
        session = self._session
        if session is None:
            return replace(self._status, open_connections=0, bytes_to_cloud=self._bytes_to,
                           bytes_from_cloud=self._bytes_from)
        return replace(
            self._status,
            open_connections=session.connection.open_connections,
            bytes_to_cloud=self._bytes_to + session.connection.bytes_to_peer,
            bytes_from_cloud=self._bytes_from + session.connection.bytes_from_peer,
        )

    @property
    def session(self) -> TunnelSession | None:
        """The live tunnel's session, if it is up (for diagnostics and tests)."""
        return self._session

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self.run(), name=self._label)
        return self._task

    async def stop(self) -> None:
        self._stopping = True
        if self._main is not None and not self._cancelled:
            self._cancelled = True
            self._main.cancel()
        if self._task is not None:
            await asyncio.wait([self._task])
        elif self._ended is not None:
            await asyncio.wait([self._ended])

    async def run(self) -> None:
        """Keep the tunnel up until :meth:`stop`, or until it cannot work (state failed).

        The loop runs in the caller's task, not in one of its own: the agent runs
        hundreds of clients, and a second task each (with its waiter) cost them 1 KiB."""
        task = asyncio.current_task()
        assert task is not None
        ended = asyncio.get_running_loop().create_future()
        self._main, self._ended, self._cancelled = task, ended, False
        cancelled = False
        try:
            if self._http is not None:
                await self._keep_up(self._http)
            else:  # a client alone opens its own session
                async with aiohttp.ClientSession(timeout=client_timeout(self._http_timeout)) as http:
                    await self._keep_up(http)
        except asyncio.CancelledError:
            cancelled = True
            # stop()'s cancellation ends here, and run() returns; any other (the caller
            # being cancelled itself) goes on.
            if not self._cancelled or task.uncancel() > 0:
                raise
        finally:
            self._main = None
            if cancelled or self._status.state is not TunnelState.FAILED:
                self._set(TunnelState.STOPPED, "stopped" if self._stopping else self._status.reason)
            ended.set_result(None)

    # --- the loop ----------------------------------------------------------------

    async def _keep_up(self, http: aiohttp.ClientSession) -> None:
        failures = 0
        slow_since: float | None = None
        last_loss: float | None = None
        while True:
            quiet = False
            try:
                token = await self._get_token(http)
                domain, path = await self._find_endpoint(http, token)
                raw = token.raw
                del token  # its decoded JSON is not kept for as long as the tunnel is up
                reason = await self._carry(http, raw, domain, path)
                now = time.monotonic()
                in_quick_succession = last_loss is not None and now - last_loss < self._backoff.quiet_after
                last_loss, slow_since = now, None
                failures = failures + 1 if in_quick_succession else 0
                delay = self._backoff.delay(failures) if failures else self._backoff.after_loss()
                self._set(TunnelState.CONNECTING, reason, delay)
            except _Retry as exc:
                slow_since = None
                since_loss = None if last_loss is None else time.monotonic() - last_loss
                delay = self._backoff.while_restarting(since_loss) if exc.refused else None
                if delay is None:
                    failures += 1
                    delay = self._backoff.delay(failures)
                # A try not made changes nothing to report: while a relay restarts, an
                # agent's thousand tunnels skip a few thousand tries, and a status pushed
                # (and a line logged) for each took CPU the restarting relay wanted.
                quiet = exc.skipped
                if quiet:
                    self._status = replace(self._status, retry_at=time.time() + delay)
                else:
                    self._set(TunnelState.CONNECTING, str(exc), delay)
            except (_NotProvisioned, _Fatal) as exc:
                if isinstance(exc, _Fatal) and not exc.slow:
                    self._set(TunnelState.FAILED, str(exc))
                    log.error("%s: %s; not retrying", self._label, exc)
                    return
                now = time.monotonic()
                slow_since = now if slow_since is None else slow_since
                delay = self._slow_retry.delay(now - slow_since)
                reason = str(exc) if isinstance(exc, _Fatal) else "not provisioned"
                self._set(TunnelState.FAILED, reason, delay)
            except Exception as exc:  # a bug must not end the device's tunnel for good
                log.exception("%s: unexpected error", self._label)
                failures += 1
                delay = self._backoff.delay(failures)
                self._set(TunnelState.CONNECTING, f"unexpected error: {type(exc).__name__}", delay)
            if not quiet:
                log.info("%s: %s; next attempt in %.1fs", self._label, self._status.reason, delay)
            await asyncio.sleep(delay)

    async def _get_token(self, http: aiohttp.ClientSession) -> AccessToken:
        """A decoded token: the configured one, or one provisioned by serial (step 2)."""
        if self.spec.token:
            raw = self.spec.token
        else:
            raw = await self._provision(http)
        try:
            token = decode_access_token(raw)
        except InvalidToken as exc:
            if self.spec.token:
                raise _Fatal(f"invalid token: {exc}") from None
            raise _Retry(f"provisioning gave an unusable token: {exc}") from None
        if self._status.camid != token.camid:
            self._status = replace(self._status, camid=token.camid)
        return token

    async def _provision(self, http: aiohttp.ClientSession) -> str:
        url = self.spec.provisioning_url.rstrip("/") + "/v1/token"
        _skip_if_just_refused(url, "provisioning service")
        self._set(TunnelState.CONNECTING, "provisioning")
        def check(status: int) -> None:
            if status == 401:
                raise _NotProvisioned()
            if status == 429:
                # Throttled (too many failures from this address): it passes.
                raise _Retry("provisioning service busy: HTTP 429")
            if 400 <= status < 500:
                raise _Fatal(f"provisioning refused: HTTP {status}")
            if status != 200:
                raise _Retry(f"provisioning service error: HTTP {status}")

        body = await self._get_json(
            http, url, "provisioning service", check, url.startswith("https:"),
            params={"serial_id": self.spec.serial.upper()}, headers=self._headers(self.spec.password.upper()),
        )
        raw = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(raw, str) or not raw:
            raise _Retry("provisioning reply has no access_token")
        if raw != self._status.local_token:
            self._status = replace(self._status, local_token=raw)
            self._notify()
        return raw

    async def _get_json(self, http: aiohttp.ClientSession, url: str, peer: str, check, tls: bool, **request) -> object:
        """GET ``url`` and its JSON body; ``check(status)`` raises for the statuses that
        mean something; a network failure or a body that is not JSON is a _Retry."""
        try:
            async with http.get(url, ssl=self._ssl(tls), timeout=aiohttp.ClientTimeout(total=self._http_timeout),
                                **request) as resp:
                check(resp.status)
                return await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise _unreachable(url, peer, exc) from None
        except ValueError:
            raise _Retry(f"{peer} sent no JSON") from None

    async def _find_endpoint(self, http: aiohttp.ClientSession, token: AccessToken) -> tuple[str, str]:
        """Step 3: ask the relay's API which host and path to dial."""
        uplink = self.spec.uplink or token.uplink
        if not uplink:
            raise _Fatal("the token names no uplink and none is configured")
        url = f"{self._scheme('https', 'http')}://{_with_port(uplink, self._default_port)}/api/ws-endpoint"
        _skip_if_just_refused(url, "relay")
        self._set(TunnelState.CONNECTING, "finding the relay")
        def check(status: int) -> None:
            if status == 403:
                raise self._invalid_token()
            if status != 200:
                raise _Retry(f"relay error: HTTP {status} from ws-endpoint")

        body = await self._get_json(http, url, "relay", check, self.spec.tls, headers=self._headers(token.raw))
        domain = body.get("domain") if isinstance(body, dict) else None
        path = body.get("path") if isinstance(body, dict) else None
        if not isinstance(domain, str) or not domain or not isinstance(path, str):
            raise _Retry("relay's ws-endpoint reply has no domain and path")
        return domain, path if path.startswith("/") else "/" + path

    async def _carry(self, http: aiohttp.ClientSession, token: str, domain: str, path: str) -> str:
        """Step 4: open the WebSocket, send the hello and carry frames until it closes;
        how it ended. A tunnel the relay refuses (or that fails before it is up) is a
        _Retry; one that was up and is gone, however it went, a loss."""
        url = f"{self._scheme('wss', 'ws')}://{_with_port(domain, self._default_port)}{path}"
        _skip_if_just_refused(url, "relay")
        self._set(TunnelState.CONNECTING, "opening the tunnel")
        try:
            ws = await http.ws_connect(
                url,
                protocols=(SUBPROTOCOL,),
                headers=self._headers(token),
                autoping=False,  # the session answers pings itself, to see pongs
                max_msg_size=_MAX_MESSAGE,
                ssl=self._ssl(self.spec.tls),
                timeout=_WS_TIMEOUT,
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 403:
                raise self._invalid_token() from None
            raise _Retry(f"relay refused the tunnel: HTTP {exc.status}") from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise _unreachable(url, "relay", exc) from None
        # camgate reads the WebSocket itself from here on (ws_link.py): before the hello,
        # so before the relay says anything.
        ws = take_over(ws, max_message=_MAX_MESSAGE, close_timeout=_CLOSE_TIMEOUT)
        spec = self.spec
        connection = TunnelConnection(
            Role.CLIENT, Hello(spec.forwards, spec.websocket_buffer_size, spec.agent_version), limits=self._limits
        )
        session = TunnelSession(
            ws, connection, label=self._label, liveness=self._liveness, on_endpoints=self._on_relay_endpoints
        )
        lost = ""
        try:
            await ws.send_str(build_hello(spec.forwards, spec.websocket_buffer_size, spec.agent_version))
            # Queued first, so it follows the hello: camgate's offer of per-connection
            # flow control and of larger D payloads, which a reference relay ignores (a
            # TEXT after the hello). The hello itself keeps the reference agent's size.
            session.announce()
            self._session = session
            self._status = replace(self._status, tunnels_opened=self._status.tunnels_opened + 1, endpoints=())
            self._set(TunnelState.UP, "")
            log.info("%s: tunnel up to %s", self._label, domain)
            await session.run()
        except (aiohttp.ClientError, OSError) as exc:
            if self._session is None:  # not up yet
                raise _Retry(f"relay unreachable: {_describe(exc)}") from None
            lost = f"tunnel lost: {_describe(exc)}"
        finally:
            self._session = None
            self._bytes_to += connection.bytes_to_peer
            self._bytes_from += connection.bytes_from_peer
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 2)
        if ws.close_code in _REFUSALS:
            raise _Retry(f"relay closed the tunnel (code {ws.close_code})")
        if lost:
            return lost
        return "tunnel closed" if ws.close_code in (None, 1000, 1001) else f"tunnel lost (code {ws.close_code})"

    def _on_relay_endpoints(self, endpoints: tuple[PublicEndpoint, ...]) -> None:
        # A camgate relay says which public ports it gave us; the reference relay never does.
        self._status = replace(self._status, endpoints=endpoints)
        self._notify()

    # --- helpers -----------------------------------------------------------------

    def _invalid_token(self) -> _Fatal:
        # A provisioned token may be replaced at the provisioning service: ask again,
        # slowly. A configured one cannot change by itself: stop.
        return _Fatal("invalid token", slow=not self.spec.token)

    def _headers(self, authorization: str) -> dict[str, str]:
        return {"Authorization": authorization, **enrollment_headers(self.spec.enrollment_secret)}

    @property
    def _default_port(self) -> int:
        return 443 if self.spec.tls else 80

    def _scheme(self, secure: str, plain: str) -> str:
        return secure if self.spec.tls else plain

    def _ssl(self, secure: bool) -> ssl.SSLContext | bool:
        if not secure:
            return True  # aiohttp's default; ignored for plain http and ws
        if not self.spec.verify:
            return False
        return client_context(self.spec.cafile)

    def _set(self, state: TunnelState, reason: str, retry_in: float | None = None) -> None:
        retry_at = time.time() + retry_in if retry_in is not None else None
        changed = (state, reason) != (self._status.state, self._status.reason)
        if state is TunnelState.UP:
            last_error = ""
        elif retry_in is not None:
            last_error = reason  # set only by the places that plan a retry after a failure
        else:
            last_error = self._status.last_error
        self._status = replace(
            self._status,
            state=state,
            reason=reason,
            retry_at=retry_at,
            last_error=last_error,
            since=time.time() if changed else self._status.since,
        )
        if changed or retry_in is not None:
            self._notify()

    def _notify(self) -> None:
        if self._on_status is None:
            return
        try:
            self._on_status(self.status)
        except Exception:
            log.exception("%s: status callback failed", self._label)


def _with_port(host: str, default_port: int) -> str:
    """``host`` with a port: its own if it names one (camgate extension), else the default."""
    if host.startswith("["):
        end = host.find("]")
        if end != -1 and host[end + 1 : end + 2] == ":":
            return host
        return f"{host}:{default_port}"
    if host.count(":") == 1:
        return host
    if ":" in host:  # a bare IPv6 address
        return f"[{host}]:{default_port}"
    return f"{host}:{default_port}"


def _address(url: str) -> str:
    return url.partition("://")[2].partition("/")[0]


def _skip_if_just_refused(url: str, peer: str) -> None:
    """A try not made: another tunnel of this process was refused there a moment ago."""
    if _RECENTLY_REFUSED.just_refused(_address(url), time.monotonic()):
        raise _Retry(f"{peer} unreachable: it refused a connection just now", refused=True, skipped=True)


def _unreachable(url: str, peer: str, exc: BaseException) -> _Retry:
    """The _Retry for a try the network failed; ``refused`` when no one listens there (a
    refused connection), which this process's other tunnels then skip for a moment."""
    error = getattr(exc, "os_error", exc)  # aiohttp's ClientConnectorError wraps it
    refused = isinstance(error, ConnectionRefusedError) or getattr(error, "errno", None) == errno.ECONNREFUSED
    if refused:
        _RECENTLY_REFUSED.refused(_address(url), time.monotonic())
    return _Retry(f"{peer} unreachable: {_describe(exc)}", refused=refused)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate not trusted ({exc.certificate_error})"
    return str(exc) or type(exc).__name__
