"""The RTSP probe's decisions, sans-I/O: which request to send next, and what the
camera's answers mean for its health.

OPTIONS, then DESCRIBE of the stream URL, answering a 401 once with the stored
credentials. Never SETUP or PLAY: a probe must not take one of the camera's few
streaming sessions.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from camgate.probe import auth
from camgate.probe.result import HealthState, ProbeResult, printable
from camgate.probe.rtsp_url import path_problem, stream_url
from camgate.probe.rtsp_wire import Response, build_request
from camgate.probe.sdp import stream_facts

MAX_REDIRECTS = 3
MAX_REQUESTS = 10  # OPTIONS and DESCRIBE, each possibly twice for a login, redirects
REDIRECTS = {301, 302, 303, 305, 307}
NOT_FOUND = {404, 454}


def _without_credentials(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        shown = f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"
    except ValueError:
        shown = url.rpartition("@")[2]
    return printable(shown, 120)


class RtspProbe:
    """Call request() for the bytes to send, then on_response() with the answer: a
    ProbeResult ends the probe, None means send request() again."""

    def __init__(self, host: str, port: int, path: str, username: str = "", password: str = "") -> None:
        self.host, self.port = host, port
        self.url = stream_url(host, port, path)
        self.path = path or "/"
        self.username, self.password = auth.as_wire_text(username), auth.as_wire_text(password)
        self.method = "OPTIONS"
        self._cseq = 0
        self._authorize = None  # (method, uri) -> Authorization value, once challenged
        self._last_had_credentials = False
        self._stale_retried = False
        self._redirected_to: str | None = None
        self._redirects = 0

    def request(self) -> bytes:
        self._cseq += 1
        headers = {"Accept": "application/sdp"} if self.method == "DESCRIBE" else {}
        self._last_had_credentials = self._authorize is not None
        if self._authorize is not None:
            headers["Authorization"] = self._authorize(self.method, self.url)
        return build_request(self.method, self.url, self._cseq, headers)

    def on_response(self, response: Response) -> ProbeResult | None:
        if self._cseq >= MAX_REQUESTS:
            return ProbeResult(HealthState.ERROR, f"no outcome after {MAX_REQUESTS} requests ({response.status_line})")
        if response.status == 401:
            return self._on_unauthorized(response)
        if self.method == "OPTIONS":
            # Cameras answer OPTIONS every which way; DESCRIBE is what decides.
            self.method = "DESCRIBE"
            return None
        if response.status == 200:
            return self._on_description(response)
        if response.status in NOT_FOUND:
            return ProbeResult(HealthState.NO_STREAM, f"no stream at {printable(self.path, 120)} ({response.status_line})")
        if response.status in REDIRECTS:
            return self._on_redirect(response)
        return ProbeResult(HealthState.ERROR, response.status_line)

    def _on_unauthorized(self, response: Response) -> ProbeResult | None:
        challenges = auth.parse_challenges(response.all_headers("www-authenticate"))
        if self._last_had_credentials:
            stale = any(c.scheme == "digest" and c.params.get("stale", "").lower() == "true" for c in challenges)
            if not (stale and not self._stale_retried):
                return ProbeResult(HealthState.AUTH_FAILED, f"the camera refused the stored login ({response.status_line})")
            self._stale_retried = True  # a new nonce for the same password: one more try
        elif not (self.username or self.password):
            return ProbeResult(HealthState.AUTH_FAILED, "the camera asks for a login and none is stored")
        try:
            self._authorize = auth.pick_authorizer(challenges, self.username, self.password)
        except auth.AuthUnsupported as error:
            return ProbeResult(HealthState.ERROR, str(error))
        return None

    def _on_description(self, response: Response) -> ProbeResult:
        if not response.body.strip():
            return ProbeResult(HealthState.ERROR, "DESCRIBE answered 200 with no stream description")
        facts = stream_facts(response.body)
        if facts.video is None:
            what = "audio only" if facts.audio else "no media"
            return ProbeResult(HealthState.NO_STREAM, f"no video in the stream (its description has {what})", audio=facts.audio)
        reason = ""
        if self._redirected_to:
            reason = f"the camera redirects to {self._redirected_to}: set that as the stream path"
        return ProbeResult(HealthState.OK, reason, video=facts.video, audio=facts.audio)

    def _on_redirect(self, response: Response) -> ProbeResult | None:
        location = (response.header("location") or "").strip()
        shown = _without_credentials(location)
        if self._redirects >= MAX_REDIRECTS:
            return ProbeResult(HealthState.ERROR, f"more than {MAX_REDIRECTS} redirects (a loop?), last to {shown}")
        try:
            parts = urlsplit(location)
            same_place = (parts.scheme.lower() == "rtsp" and parts.hostname == self.host.lower().strip("[]")
                          and (parts.port or 554) == self.port and not parts.username)
        except ValueError:
            same_place = False
        if not same_place:
            # A viewer through the tunnel can only follow a redirect on the camera's own port.
            return ProbeResult(HealthState.ERROR, f"{response.status_line}: the camera redirects to {shown or 'nowhere'}")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if path_problem(path):
            return ProbeResult(HealthState.ERROR, f"{response.status_line}: the camera redirects to an unusable path")
        self._redirects += 1
        self.path = path
        self.url = stream_url(self.host, self.port, self.path)
        self._redirected_to = printable(self.path, 120)
        return None
