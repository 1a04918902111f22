"""API routes. Each path works with and without its trailing slash (no redirects:
a redirect would drop a POST body)."""

from django.urls import re_path

from camgate.cameras.api import views
from camgate.media.views import CameraSnapshotView
from camgate.onvif.views import DiscoverView, OnvifDeviceView

ID = r"(?P<camera_id>[0-9]{1,19})"  # any signed 64-bit id; longer ones are 404s

urlpatterns = [
    re_path(r"^auth-token/?$", views.AuthTokenView.as_view(), name="api-auth-token"),
    re_path(r"^cameras/?$", views.CameraListView.as_view(), name="api-cameras"),
    re_path(r"^add-camera/?$", views.CameraAddView.as_view(), name="api-add-camera"),
    re_path(rf"^cameras/{ID}/?$", views.CameraDeleteView.as_view(), name="api-delete-camera"),
    re_path(rf"^edit-camera/{ID}/?$", views.CameraEditView.as_view(), name="api-edit-camera"),
    re_path(rf"^camera/{ID}/?$", views.CameraDetailView.as_view(), name="api-camera"),
    re_path(rf"^camera/{ID}/snapshot/?$", CameraSnapshotView.as_view(), name="api-camera-snapshot"),
    re_path(r"^restart/?$", views.RestartView.as_view(), name="api-restart"),
    re_path(r"^discover/?$", DiscoverView.as_view(), name="api-discover"),
    re_path(r"^onvif/?$", OnvifDeviceView.as_view(), name="api-onvif"),
]
