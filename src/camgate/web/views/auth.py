"""Log in (throttled) and log out."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME, login, logout
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from camgate.web import throttle

WRONG_CREDENTIALS = "Wrong username or password."


def _next_url(request) -> str:
    candidate = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME) or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return settings.LOGIN_REDIRECT_URL


class LoginForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": WRONG_CREDENTIALS,
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.data.get("username") or self.initial.get("username"):
            # The username is filled in already: the cursor belongs in the password box.
            self.fields["username"].widget.attrs.pop("autofocus", None)
            self.fields["password"].widget.attrs["autofocus"] = True


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request):
    next_url = _next_url(request)
    if request.method == "GET":
        if request.user.is_authenticated:
            return redirect(next_url)
        return render(request, "web/login.html", {"form": LoginForm(request), "next": next_url})

    username = request.POST.get("username", "")[: throttle.USERNAME_MAX]
    key = throttle.key_for(request, username)
    remaining = throttle.locked_for(key)
    if remaining:
        # Locked: the password is not even checked, so guessing gains nothing.
        form = LoginForm(request, initial={"username": username})
        return _locked(request, form, next_url, remaining)

    form = LoginForm(request, data=request.POST)
    if form.is_valid():
        throttle.clear(key)
        login(request, form.get_user())
        return redirect(next_url)
    context = {"form": form, "next": next_url}
    if request.POST.get("password"):
        attempts_left = throttle.record_failure(key)
        if attempts_left == 0:
            return _locked(request, LoginForm(request, initial={"username": username}), next_url, throttle.LOCKOUT)
        if attempts_left <= 2:
            context["warning"] = (
                f"{attempts_left} more failed {'attempt' if attempts_left == 1 else 'attempts'} "
                f"and this sign-in is locked for {throttle.describe_wait(throttle.LOCKOUT)}."
            )
    return render(request, "web/login.html", context)


def _locked(request, form, next_url, remaining):
    context = {"form": form, "next": next_url, "locked": throttle.locked_message(remaining)}
    response = render(request, "web/login.html", context, status=429)
    response["Retry-After"] = str(throttle.retry_after_seconds(remaining))
    return response


@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def logout_view(request):
    if request.method == "POST":
        logout(request)
        messages.info(request, "You have been logged out.")
        return redirect(settings.LOGOUT_REDIRECT_URL)
    if not request.user.is_authenticated:
        return redirect(settings.LOGIN_URL)
    return render(request, "web/logout.html")
