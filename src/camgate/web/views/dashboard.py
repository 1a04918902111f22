"""The dashboard and the JSON it refreshes itself from."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.urls import reverse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from camgate.web.presenters import dashboard_state

# How often the open dashboard asks /status.json for news.
REFRESH_SECONDS = 5


@never_cache
@require_GET
@login_required
def dashboard(request):
    state = dashboard_state()
    context = {**state, "initial_state": state, "refresh_ms": REFRESH_SECONDS * 1000}
    return render(request, "web/dashboard.html", context)


@never_cache
@require_GET
def status_json(request):
    # A script polls this: it gets a 401 it can act on, not a redirect to an HTML page.
    if not request.user.is_authenticated:
        return JsonResponse({"detail": "Log in first.", "login_url": reverse("web:login")}, status=401)
    return JsonResponse(dashboard_state())
