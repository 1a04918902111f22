"""Logging in and out, and the throttle on repeated failures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from camgate.web import throttle
from camgate.web.models import LoginThrottle

pytestmark = pytest.mark.django_db


def login(client, password, username="admin", address="192.0.2.7", **extra):
    return client.post("/login/", {"username": username, "password": password, **extra}, REMOTE_ADDR=address)


def test_right_password_logs_in_and_goes_to_the_dashboard(client, default_admin):
    response = login(client, "admin")
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_wrong_password_gets_a_message(client, default_admin):
    response = login(client, "nope")
    assert response.status_code == 200
    assert b"Wrong username or password." in response.content
    assert b'value="admin"' in response.content  # the username is kept, the password not
    assert b'value="nope"' not in response.content
    assert client.get("/").status_code == 302


def test_next_is_followed_on_this_site_only(client, default_admin):
    assert login(client, "admin", next="/settings/")["Location"] == "/settings/"
    client.logout()
    assert login(client, "admin", next="https://evil.example/")["Location"] == "/"


def test_five_failures_lock_the_username_from_that_address(client, default_admin):
    for _ in range(throttle.LIMIT - 1):
        assert login(client, "wrong").status_code == 200
    response = login(client, "wrong")
    assert response.status_code == 429
    assert b"Too many failed sign-in attempts" in response.content
    assert b"Try again in 5 minutes" in response.content
    assert response["Retry-After"] == "300"

    # While locked, even the right password is not checked.
    response = login(client, "admin")
    assert response.status_code == 429
    assert client.get("/").status_code == 302

    # Another address is not affected, so an attacker cannot lock the real admin out.
    assert login(client, "admin", address="192.0.2.8").status_code == 302


def test_tunnel_clients_have_one_bucket_apart_from_the_lan(client, default_admin):
    # Everyone behind the gateway's own tunnel arrives from the agent on loopback (a
    # trusted proxy address): their X-Forwarded-For is not believed, so rotating it buys
    # nothing, and their failures do not lock anyone out on the LAN.
    def from_loopback(password, **meta):
        return client.post("/login/", {"username": "admin", "password": password}, REMOTE_ADDR="127.0.0.1", **meta)

    tunnel = {"HTTP_X_CAMGATE_ORIGIN": "tunnel"}
    for attempt in range(throttle.LIMIT):
        from_loopback("wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{attempt}", **tunnel)
    assert from_loopback("admin", HTTP_X_FORWARDED_FOR="198.51.100.9", **tunnel).status_code == 429
    assert from_loopback("admin", HTTP_X_FORWARDED_FOR="192.168.1.10").status_code == 302


def test_the_lock_expires(client, default_admin):
    for _ in range(throttle.LIMIT):
        login(client, "wrong")
    LoginThrottle.objects.update(locked_until=timezone.now() - timedelta(seconds=1))
    assert login(client, "admin").status_code == 302


def test_failures_outside_the_window_do_not_add_up(client, default_admin):
    for _ in range(throttle.LIMIT - 1):
        login(client, "wrong")
    LoginThrottle.objects.update(window_started_at=timezone.now() - throttle.WINDOW - timedelta(seconds=1))
    assert login(client, "wrong").status_code == 200
    assert LoginThrottle.objects.get().failures == 1


def test_a_success_clears_the_count(client, default_admin):
    for _ in range(throttle.LIMIT - 1):
        login(client, "wrong")
    assert login(client, "admin").status_code == 302
    assert not LoginThrottle.objects.exists()


def test_the_username_is_not_stored_in_clear(client, default_admin):
    login(client, "wrong", username="my-secret-typo")
    assert "my-secret-typo" not in LoginThrottle.objects.get().key


def test_username_case_does_not_buy_more_guesses(client, default_admin):
    for name in ["admin", "Admin", "ADMIN", "aDmin", "adMin"]:
        login(client, "wrong", username=name)
    assert login(client, "admin").status_code == 429


def test_empty_password_is_not_counted(client, default_admin):
    for _ in range(throttle.LIMIT + 2):
        assert login(client, "").status_code == 200
    assert login(client, "admin").status_code == 302


def test_logout_get_asks_and_post_logs_out(admin_client):
    response = admin_client.get("/logout/")
    assert response.status_code == 200 and b"Log out" in response.content
    assert admin_client.get("/").status_code == 200  # a GET changes nothing

    response = admin_client.post("/logout/", follow=True)
    assert response.redirect_chain[-1][0] == "/login/"
    assert b"You have been logged out." in response.content
    assert admin_client.get("/").status_code == 302


def test_login_page_redirects_when_already_signed_in(admin_client):
    response = admin_client.get("/login/")
    assert response.status_code == 302 and response["Location"] == "/"


def test_the_last_attempts_are_announced(client, default_admin):
    for _ in range(throttle.LIMIT - 3):
        assert b"more failed" not in login(client, "wrong").content
    assert b"2 more failed attempts and this sign-in is locked for 5 minutes." in login(client, "wrong").content
    assert b"1 more failed attempt and this sign-in is locked" in login(client, "wrong").content


def test_after_a_wrong_password_the_cursor_is_in_the_password_box(client, default_admin):
    form = login(client, "wrong").context["form"]
    assert "autofocus" in form.fields["password"].widget.attrs
    assert "autofocus" not in form.fields["username"].widget.attrs
    assert "autofocus" in client.get("/login/").context["form"].fields["username"].widget.attrs
