"""The gateway's own pages: settings (password, API token, configuration) and restart."""

from __future__ import annotations

from django.conf import settings as django_settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.db import transaction
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token

from camgate import config
from camgate.agent.control import agent_settings, restart_gateway_tunnel
from camgate.web.presenters import gateway_view



def _settings_in_effect(from_agent: dict[str, str] | None) -> list[dict]:
    """Each documented setting with its value; the agent's own report wins for the
    settings it uses, since `camgate run` gives it values the web server never sees."""
    rows = []
    for item in config.SETTINGS:
        row = {"name": item.name, "value": item.display_value, "from_environment": item.from_environment,
               "source": "environment" if item.from_environment else "default", "help": item.help}
        if from_agent and item.name in from_agent:
            row.update(value=from_agent[item.name], source="agent")
        rows.append(row)
    return rows


def _settings_page(request, password_form, status=200):
    token = Token.objects.filter(user=request.user).first()
    context = {
        "password_form": password_form,
        "token": token.key if token else "",
        "gateway": gateway_view(),
        "data_dir": django_settings.DATA_DIR,
        "settings_in_effect": _settings_in_effect(agent_settings()),
    }
    return render(request, "web/settings.html", context, status=status)


@sensitive_post_parameters("old_password", "new_password1", "new_password2")
@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def settings_view(request):
    action = request.POST.get("action") if request.method == "POST" else None
    if action == "change-password":
        form = PasswordChangeForm(request.user, request.POST)
        if form.is_valid():
            user = form.save()
            update_session_auth_hash(request, user)
            messages.success(request, "Password changed. Use the new one next time you log in.")
            return redirect("web:settings")
        return _settings_page(request, form, status=400)
    if action == "regenerate-token":
        with transaction.atomic():
            Token.objects.filter(user=request.user).delete()
            Token.objects.create(user=request.user)
        messages.success(request, "New API token created. The old one no longer works: update your VMS.")
        return redirect("web:settings")
    if action is not None:
        messages.error(request, "Unknown action; nothing was changed.")
        return redirect("web:settings")
    return _settings_page(request, PasswordChangeForm(request.user))


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def restart_view(request):
    if request.method == "POST":
        failure = restart_gateway_tunnel()
        if failure is None:
            messages.success(request, "Gateway tunnel restarted.")
        else:
            messages.error(request, f"Restart failed: {failure}.")
        return redirect("web:restart")
    return render(request, "web/restart.html", {"gateway": gateway_view()})
