"""Camera resolution (local id wins, then camid) and token authentication."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from camgate.cameras.models import Camera
from camgate.web import throttle
from camgate.web.models import LoginThrottle
from tests.conftest import make_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def cameras(api):
    """Two cameras where the second one's local id is also the first one's camid, and the
    second one carries camid 99.

    The ids are read back, not assumed: SQLite's AUTOINCREMENT keeps counting across
    the tests that empty the table instead of rolling back.
    """
    first = api.post("/api/add-camera/", {"ip": "10.0.0.1"}, format="json").json()["camera_id"]
    second = api.post("/api/add-camera/", {"ip": "10.0.0.2", "access_token": make_token(99)}, format="json").json()["camera_id"]
    assert api.post(f"/api/edit-camera/{first}/", {"access_token": make_token(second)}, format="json").status_code == 200
    return first, second


def test_local_id_wins_over_camid(api, cameras):
    first, second = cameras
    assert api.get(f"/api/camera/{second}/").json()["ip"] == "10.0.0.2"  # local id, not the first one's camid


def test_get_edit_delete_by_camid(api, cameras):
    first, second = cameras
    assert api.get("/api/camera/99/").json()["camera_id"] == second
    response = api.post("/api/edit-camera/99/", {"http_port": 8081}, format="json")
    assert response.status_code == 200 and Camera.objects.get(camera_id=second).http_port == 8081
    assert api.delete("/api/cameras/99/").status_code == 204
    assert list(Camera.objects.values_list("camera_id", flat=True)) == [first]


def test_get_edit_delete_by_local_id(api, cameras):
    first, _ = cameras
    assert api.get(f"/api/camera/{first}/").json()["ip"] == "10.0.0.1"
    edited = api.post(f"/api/edit-camera/{first}/", {"is_active": False}, format="json").json()
    assert edited["enabled"] is False and edited["is_active"] is False
    assert api.delete(f"/api/cameras/{first}/").status_code == 204


def test_camid_of_an_edited_token_follows_the_token(api, cameras):
    _, second = cameras
    api.post(f"/api/edit-camera/{second}/", {"access_token": make_token(1234)}, format="json")
    assert api.get("/api/camera/1234/").json()["camera_id"] == second
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


def test_clearing_the_access_token_clears_the_token_the_tunnel_used(api):
    camera_id = api.post("/api/add-camera/", {"ip": "10.0.0.5", "access_token": make_token(555)}, format="json").json()["camera_id"]
    assert api.get(f"/api/camera/{camera_id}/").json()["local_token"] == make_token(555)
    api.post(f"/api/edit-camera/{camera_id}/", {"access_token": ""}, format="json")
    detail = api.get(f"/api/camera/{camera_id}/").json()
    assert (detail["access_token"], detail["local_token"]) == ("", "")
    assert api.get("/api/camera/555/").status_code == 404


def test_a_camera_provisioned_by_serial_is_found_by_the_camid_of_its_provisioned_token(api, agent_database):
    from camgate.agent.store import StatusRecord, write_statuses

    camera_id = api.post("/api/add-camera/", {"ip": "10.0.0.6", "serial": "SN1", "mac": "MAC1"}, format="json").json()["camera_id"]
    # What the agent records once the relay has provisioned the camera.
    write_statuses([StatusRecord(key=f"camera-{camera_id}", camera_id=camera_id, state="connecting",
                                 local_token=make_token(7007))])
    assert api.get("/api/camera/7007/").json()["camera_id"] == camera_id
    # A local id still wins over a camid.
    other = api.post("/api/add-camera/", {"ip": "10.0.0.7"}, format="json").json()["camera_id"]
    write_statuses([StatusRecord(key=f"camera-{camera_id}", camera_id=camera_id, state="up", local_token=make_token(other))])
    assert api.get(f"/api/camera/{other}/").json()["camera_id"] == other


def test_an_edit_that_restarts_the_tunnel_answers_connecting_and_one_that_does_not_keeps_up(api):
    from camgate.cameras.models import TunnelStatus

    camera_id = api.post("/api/add-camera/", {"ip": "10.0.0.8", "access_token": make_token(808), "rtsp_only": True},
                         format="json").json()["camera_id"]
    endpoints = [{"name": "rtsp", "proxy_host": "relay", "proxy_port": 20001, "url": "rtsp://relay:20001/"}]
    TunnelStatus.objects.create(key=f"camera-{camera_id}", camera_id=camera_id, state="up", pid=4242, endpoints=endpoints)
    # Not used by an RTSP-only tunnel: nothing restarts.
    kept = api.post(f"/api/edit-camera/{camera_id}/", {"http_port": 8080, "serial": "S"}, format="json").json()
    assert (kept["tunnel"]["state"], kept["pid"]) == ("up", 4242)
    restarted = api.post(f"/api/edit-camera/{camera_id}/", {"ip": "10.0.0.9"}, format="json").json()
    assert restarted["tunnel"]["state"] == "connecting" and restarted["tunnel"]["endpoints"] == []
    assert (restarted["pid"], restarted["is_active"]) == (None, False)


# --- the sign-in throttle on POST /api/auth-token/ (the login page's rule and count) ---

def ask_token(password, username="super", address="192.0.2.7", **meta):
    client = APIClient()
    return client.post("/api/auth-token/", {"username": username, "password": password}, format="json",
                       REMOTE_ADDR=address, **meta)


def test_auth_token_locks_after_five_wrong_passwords_even_for_the_right_one(admin_user):
    for _ in range(throttle.LIMIT - 1):
        assert ask_token("wrong").status_code == 400
    response = ask_token("wrong")
    assert response.status_code == 429
    assert response["Retry-After"] == "300"
    assert response.json() == {"detail": "Too many failed sign-in attempts for this user from your address. "
                                         "Try again in 5 minutes."}
    # The right password is not even checked while locked: guessing gains nothing.
    response = ask_token("1234")
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 300
    assert "token" not in response.json()

    # Another client is not affected, and its success answer is byte for byte DRF's.
    response = ask_token("1234", address="192.0.2.8")
    token = Token.objects.get(user=admin_user).key
    assert response.status_code == 200 and response.content == b'{"token":"' + token.encode() + b'"}'


def test_login_page_and_api_share_one_count(admin_user):
    for _ in range(2):
        Client().post("/login/", {"username": "super", "password": "wrong"}, REMOTE_ADDR="192.0.2.7")
    for _ in range(2):
        assert ask_token("wrong").status_code == 400
    assert ask_token("wrong").status_code == 429  # the fifth failure, counted across both
    response = Client().post("/login/", {"username": "super", "password": "1234"}, REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 429 and response["Retry-After"]


def test_auth_token_success_clears_the_count_and_empty_passwords_do_not_count(admin_user):
    for _ in range(throttle.LIMIT - 1):
        ask_token("wrong")
    assert ask_token("1234").status_code == 200
    assert not LoginThrottle.objects.exists()
    for _ in range(throttle.LIMIT + 2):
        assert ask_token("").status_code == 400
    assert ask_token("1234").status_code == 200


@pytest.mark.parametrize("username", [7, "SUPER", " super "])
def test_the_username_cannot_be_reworded_for_more_guesses(db, django_user_model, username):
    django_user_model.objects.create_user("super", password="1234")
    django_user_model.objects.create_user("7", password="1234")
    name = "7" if username == 7 else "super"
    for _ in range(throttle.LIMIT):
        ask_token("wrong", username=username)
    assert ask_token("1234", username=name).status_code == 429


def test_tunnel_clients_share_one_bucket_that_does_not_lock_the_lan_out(admin_user):
    tunnel = {"HTTP_X_CAMGATE_ORIGIN": "tunnel"}
    for attempt in range(throttle.LIMIT):
        # The agent delivers every tunnel client from loopback, a trusted proxy address;
        # a rotating X-Forwarded-For must not buy a fresh count.
        ask_token("wrong", address="127.0.0.1", HTTP_X_FORWARDED_FOR=f"198.51.100.{attempt}", **tunnel)
    assert ask_token("1234", address="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.99", **tunnel).status_code == 429
    # The admin on the LAN, directly or through the local proxy, is not locked out.
    assert ask_token("1234", address="192.168.1.10").status_code == 200
    assert ask_token("1234", address="127.0.0.1", HTTP_X_FORWARDED_FOR="192.168.1.10").status_code == 200
    assert ask_token("1234", address="127.0.0.1").status_code == 200


@pytest.mark.parametrize("body", [[1, 2], "text", {"username": ["super"], "password": "x"}, {"username": True, "password": "x"}])
def test_auth_token_odd_bodies_are_400_not_500(admin_user, body):
    assert APIClient().post("/api/auth-token/", body, format="json").status_code == 400
