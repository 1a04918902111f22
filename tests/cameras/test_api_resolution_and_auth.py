"""Camera resolution (local id wins, then camid) and token authentication."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from camgate.cameras.models import Camera
from tests.conftest import make_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def cameras(api):
    """Local id 1 carries camid 2; local id 2 carries camid 99."""
    first = api.post("/api/add-camera/", {"ip": "10.0.0.1", "access_token": make_token(2)}, format="json").json()
    second = api.post("/api/add-camera/", {"ip": "10.0.0.2", "access_token": make_token(99)}, format="json").json()
    return first["camera_id"], second["camera_id"]


def test_local_id_wins_over_camid(api, cameras):
    first, second = cameras
    assert (first, second) == (1, 2)
    assert api.get("/api/camera/2/").json()["ip"] == "10.0.0.2"  # local id 2, not camid 2


def test_get_edit_delete_by_camid(api, cameras):
    assert api.get("/api/camera/99/").json()["camera_id"] == 2
    response = api.post("/api/edit-camera/99/", {"http_port": 8081}, format="json")
    assert response.status_code == 200 and Camera.objects.get(camera_id=2).http_port == 8081
    assert api.delete("/api/cameras/99/").status_code == 204
    assert list(Camera.objects.values_list("camera_id", flat=True)) == [1]


def test_get_edit_delete_by_local_id(api, cameras):
    assert api.get("/api/camera/1/").json()["ip"] == "10.0.0.1"
    edited = api.post("/api/edit-camera/1/", {"is_active": False}, format="json").json()
    assert edited["enabled"] is False and edited["is_active"] is False
    assert api.delete("/api/cameras/1/").status_code == 204


def test_camid_of_an_edited_token_follows_the_token(api, cameras):
    api.post("/api/edit-camera/2/", {"access_token": make_token(1234)}, format="json")
    assert api.get("/api/camera/1234/").json()["camera_id"] == 2
    assert api.get("/api/camera/99/").status_code == 404


ROUTES = [
    ("get", "/api/cameras/"),
    ("post", "/api/add-camera/"),
    ("delete", "/api/cameras/1/"),
    ("post", "/api/edit-camera/1/"),
    ("get", "/api/camera/1/"),
    ("get", "/api/camera/1/snapshot/"),
    ("post", "/api/restart/"),
    ("get", "/api/schema/"),
]


@pytest.mark.parametrize("method, path", ROUTES)
@pytest.mark.parametrize(
    "header",
    [None, "Token", "Token ", "Token abc def", "Bearer 0123456789abcdef0123456789abcdef01234567", "Token 0123456789abcdef0123456789abcdef01234567", "Basic YWRtaW46YWRtaW4="],
)
def test_every_route_needs_a_valid_token(db, cameras, method, path, header):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = getattr(client, method)(path, {"ip": "10.0.0.7"}, format="json") if method == "post" else getattr(client, method)(path)
    assert response.status_code == 401
    assert Camera.objects.count() == 2


def test_session_login_works_for_the_api(admin_user, cameras):
    client = APIClient()
    client.force_login(admin_user)
    assert client.get("/api/cameras/").status_code == 200


def test_session_post_without_csrf_is_refused(admin_user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post("/api/add-camera/", {"ip": "10.0.0.1"}, format="json")
    assert response.status_code == 403
    assert Camera.objects.count() == 0


def test_schema_lists_every_endpoint(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ["/api/auth-token/", "/api/cameras/", "/api/add-camera/", "/api/cameras/{camera_id}/", "/api/edit-camera/{camera_id}/", "/api/camera/{camera_id}/", "/api/camera/{camera_id}/snapshot/", "/api/restart/"]:
        assert path in paths, path
    camera = response.json()["components"]["schemas"]["Camera"]["properties"]
    assert "password" not in camera and {"camera_id", "pid", "access_token"} <= set(camera)
