"""``GET /metrics``: the gateway's series for Prometheus.

Readable with an API token (``Authorization: Token <token>``, as the REST API) or a
logged-in session; without either, only from the addresses in ``CAMGATE_METRICS_ALLOW``
(default loopback), as seen after the trusted-proxy middleware, and never through the
gateway's own tunnel.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from camgate.front.origin import came_through_tunnel
from camgate.metrics.access import address_allowed
from camgate.metrics.exposition import render
from camgate.metrics.gateway import GatewayCollector

# Only camgate's own series: the web workers' process and GC series would describe
# whichever worker answered, which is no use to anyone.
REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(GatewayCollector())


def _refusal(request) -> HttpResponse | None:
    try:
        if TokenAuthentication().authenticate(request) is not None:
            return None
    except AuthenticationFailed as error:
        return _unauthorized(str(error.detail))
    if request.user.is_authenticated:
        return None
    # The gateway's tunnel delivers anyone on the internet from loopback: never allowed
    # by address, whatever the list says.
    if not came_through_tunnel(request.META) and address_allowed(request.META.get("REMOTE_ADDR"), settings.METRICS_ALLOW):
        return None
    return _unauthorized("An API token is required from this address (Authorization: Token <token>).")


def _unauthorized(message: str) -> HttpResponse:
    response = JsonResponse({"detail": message}, status=401)
    response["WWW-Authenticate"] = 'Token realm="metrics"'
    return response


@require_safe
def metrics(request):
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    body, content_type = render(REGISTRY, request.META.get("HTTP_ACCEPT"))
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
