"""Request middleware that must run before Django reads the request."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import JsonResponse, HttpResponse

from camgate.front.origin import came_through_tunnel


class TrustedProxyMiddleware:
    """Believe X-Forwarded-For/-Proto only when they come from a configured proxy.

    nginx in front sets them; anyone else could forge them to fake their address (which
    the login throttle keys on) or to pretend a request arrived over HTTPS. A request
    from the gateway's own tunnel is never believed: the agent that delivers it connects
    from loopback, a trusted address, on behalf of anyone on the internet.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.trusted = [ipaddress.ip_network(item, strict=False) for item in settings.TRUSTED_PROXIES]

    def _is_trusted(self, address: str) -> bool:
        try:
            peer = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(peer in network for network in self.trusted)

    def __call__(self, request):
        meta = request.META
        if not came_through_tunnel(meta) and self._is_trusted(meta.get("REMOTE_ADDR", "")):
            forwarded_for = meta.get("HTTP_X_FORWARDED_FOR", "")
            if forwarded_for:
                # The right-most address is the one our proxy saw connect to it.
                meta["REMOTE_ADDR"] = forwarded_for.split(",")[-1].strip()
            if meta.get("HTTP_X_FORWARDED_PROTO", "").lower() == "https":
                meta["wsgi.url_scheme"] = "https"
        return self.get_response(request)


class BodySizeLimitMiddleware:
    """Refuse an oversized body before anything buffers it (413, with a message)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _error(request, 400, "Content-Length is not a number.")
        if length > settings.MAX_BODY_BYTES:
            return _error(request, 413, f"Request body is larger than {settings.MAX_BODY_BYTES} bytes.")
        return self.get_response(request)


def _error(request, status: int, message: str):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain")
