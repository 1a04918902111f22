"""Who may reach what: sessions, CSRF, and bad URLs that must not become 500s."""

from __future__ import annotations

import pytest
from django.test import Client

from camgate.cameras.models import Camera

UI_ROUTES = [
    "/",
    "/add-camera", "/add-camera/",
    "/edit-camera/1", "/edit-camera/1/",
    "/delete/1", "/delete/1/",
    "/find-cameras/", "/find-cameras",
    "/settings/", "/settings",
    "/restart/", "/restart",
    "/logout/", "/logout",
]


@pytest.mark.django_db
@pytest.mark.parametrize("path", UI_ROUTES)
def test_every_ui_route_without_a_session_redirects_to_login(client, camera, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/add-camera", "/edit-camera/1", "/delete/1", "/settings/", "/restart/"])
def test_posts_without_a_session_change_nothing(client, camera, path):
    response = client.post(path, {"ip": "192.0.2.99", "action": "regenerate-token"})
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert list(Camera.objects.values_list("ip", flat=True)) == ["192.0.2.10"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/login"])
def test_login_page_is_public(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in response.content


@pytest.mark.django_db
def test_status_json_requires_a_session(client, default_admin):
    response = client.get("/status.json")
    assert response.status_code == 401
    assert response.json()["login_url"] == "/login/"

    client.force_login(default_admin)
    response = client.get("/status.json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"gateway", "cameras"}
    assert body["gateway"]["tunnel"]["state"] == "unknown"


@pytest.mark.django_db
def test_status_json_ignores_api_tokens(client, default_admin):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=default_admin)
    response = client.get("/status.json", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 401


CSRF_POSTS = [
    ("/login/", {"username": "admin", "password": "admin"}),
    ("/logout/", {}),
    ("/add-camera", {"ip": "192.0.2.50", "http_port": "80", "rtsp_port": "554"}),
    ("/edit-camera/1", {"ip": "192.0.2.51", "http_port": "80", "rtsp_port": "554"}),
    ("/delete/1", {}),
    ("/settings/", {"action": "regenerate-token"}),
    ("/restart/", {}),
]


@pytest.mark.django_db
@pytest.mark.parametrize("path,data", CSRF_POSTS)
def test_form_posts_without_a_csrf_token_are_refused(default_admin, camera, agent_calls, path, data):
    client = Client(enforce_csrf_checks=True)
    client.force_login(default_admin)
    response = client.post(path, data)
    assert response.status_code == 403
    assert b"This form has expired" in response.content
    camera.refresh_from_db()
    assert camera.ip == "192.0.2.10"
    assert agent_calls == []


@pytest.mark.django_db
def test_form_post_with_the_csrf_token_is_accepted(default_admin, agent_calls):
    client = Client(enforce_csrf_checks=True)
    client.force_login(default_admin)
    page = client.get("/add-camera")
    token = page.cookies["csrftoken"].value
    response = client.post("/add-camera", {"ip": "192.0.2.50", "http_port": "80", "rtsp_port": "554",
                                           "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Camera.objects.filter(ip="192.0.2.50").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("path", [
    "/edit-camera/abc", "/edit-camera/-1", "/edit-camera/1.5", "/delete/abc", "/delete/%00",
    "/edit-camera/999999", "/delete/999999999999999999", "/edit-camera/9999999999999999999999",
    "/no-such-page", "/settings/extra",
])
def test_bad_urls_are_404_pages_not_errors(admin_client, camera, path):
    response = admin_client.get(path)
    assert response.status_code == 404
    assert b"Page not found" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("method,path", [
    ("put", "/settings/"), ("delete", "/delete/1"), ("patch", "/edit-camera/1"), ("post", "/status.json"),
])
def test_unsupported_methods_get_405(admin_client, camera, method, path):
    assert getattr(admin_client, method)(path).status_code == 405


@pytest.mark.django_db
def test_api_routes_still_answer_json(admin_client):
    # The UI is mounted at the root after /api/: it must not shadow the API.
    response = admin_client.get("/api/cameras/")
    assert response.status_code == 200 and response.json() == []
    assert admin_client.get("/api/nothing-here").json() == {"detail": "Not found."}


@pytest.mark.django_db
def test_an_internal_error_gets_the_plain_error_page(admin_client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("camgate.web.views.dashboard.dashboard_state", broken)
    admin_client.raise_request_exception = False
    response = admin_client.get("/")
    assert response.status_code == 500
    assert b"Something went wrong" in response.content and b"boom" not in response.content
