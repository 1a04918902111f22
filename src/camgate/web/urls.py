"""The web UI's routes. Like the API's, each works with and without its trailing slash
(APPEND_SLASH is off: a redirect would drop a POST body). The reference's spelling of
each path is the named one, so the links the pages print match the documentation."""

from django.urls import re_path

from camgate.web.views import auth, cameras, dashboard, discovery, gateway

app_name = "web"

ID = r"(?P<camera_id>[0-9]{1,18})"


def route(canonical: str, view, name: str):
    """The canonical path (named, used by links) and its twin with/without the slash."""
    twin = canonical[:-1] if canonical.endswith("/") else canonical + "/"
    return [re_path(f"^{canonical}$", view, name=name), re_path(f"^{twin}$", view)]


urlpatterns = [
    re_path(r"^$", dashboard.dashboard, name="dashboard"),
    re_path(r"^status\.json$", dashboard.status_json, name="status"),
    *route("login/", auth.login_view, "login"),
    *route("logout/", auth.logout_view, "logout"),
    *route("add-camera", cameras.camera_add, "camera-add"),
    *route(f"edit-camera/{ID}", cameras.camera_edit, "camera-edit"),
    *route(f"delete/{ID}", cameras.camera_delete, "camera-delete"),
    *route("find-cameras/", discovery.find_cameras, "find-cameras"),
    *route("settings/", gateway.settings_view, "settings"),
    *route("restart/", gateway.restart_view, "restart"),
]
