"""Concurrent writes through a real `camgate web` (several workers, real SQLite file):
a delete is final, and every acknowledged edit is kept."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.processes import camgate_env, camgate_process, free_port, http_json, wait_for_http

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("concurrent")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with camgate_process(["web", "--port", str(port)], camgate_env(tmp / "data"), tmp / "web.log"):
        wait_for_http(base + "/api/cameras/")
        _, body = http_json("POST", base + "/api/auth-token/", {"username": "admin", "password": "admin"})
        yield base, body["token"]


def add_cameras(web, count: int) -> list[int]:
    base, token = web
    ids = []
    for index in range(count):
        status, camera = http_json("POST", base + "/api/add-camera/", {"ip": f"10.1.0.{index + 1}"}, token)
        assert status == 201
        ids.append(camera["camera_id"])
    return ids


def test_a_deleted_camera_stays_deleted_whatever_edit_races_it(web):
    base, token = web
    ids = add_cameras(web, 20)

    def delete(camera_id):
        return http_json("DELETE", f"{base}/api/cameras/{camera_id}/", token=token)[0]

    def edit(camera_id):
        return http_json("POST", f"{base}/api/edit-camera/{camera_id}/", {"serial": "RACING"}, token)[0]

    with ThreadPoolExecutor(max_workers=16) as pool:
        deletes = [pool.submit(delete, camera_id) for camera_id in ids]
        edits = [pool.submit(edit, camera_id) for camera_id in ids for _ in range(5)]
        assert {future.result() for future in deletes} == {204}
        assert {future.result() for future in edits} <= {200, 404}

    status, cameras = http_json("GET", base + "/api/cameras/", token=token)
    assert status == 200
    assert not set(ids) & {camera["camera_id"] for camera in cameras}, "an edit brought a deleted camera back"
    for camera_id in ids:
        assert http_json("POST", f"{base}/api/edit-camera/{camera_id}/", {"serial": "LATE"}, token)[0] == 404


def test_concurrent_edits_of_different_fields_all_stick(web):
    base, token = web
    ids = add_cameras(web, 10)
    # One edit per field and camera, all at once: each names a value only it sends.
    edits = {"serial": lambda c: f"SER-{c}", "mac": lambda c: f"MAC-{c}", "username": lambda c: f"user-{c}",
             "http_port": lambda c: 8000 + c, "rtsp_port": lambda c: 9000 + c,
             "rtsp_only": lambda c: True, "enabled": lambda c: False}

    def edit(camera_id, field, value_for):
        value = value_for(camera_id)
        status, _ = http_json("POST", f"{base}/api/edit-camera/{camera_id}/", {field: value}, token)
        return camera_id, field, value, status

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = [future.result() for future in [pool.submit(edit, c, f, v) for c in ids for f, v in edits.items()]]
    assert {status for *_, status in results} == {200}

    for camera_id, field, value, _ in results:
        status, camera = http_json("GET", f"{base}/api/camera/{camera_id}/", token=token)
        assert camera[field] == value, f"camera {camera_id}: the acknowledged edit of {field} was lost"
