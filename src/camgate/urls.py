from django.http import JsonResponse
from django.views.defaults import page_not_found, server_error
from django.urls import include, path, re_path

from camgate.cameras.api.schema_view import SchemaView
from camgate.health import healthz
from camgate.metrics.views import metrics

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    re_path(r"^metrics/?$", metrics, name="metrics"),
    path("api/schema/", SchemaView.as_view(), name="api-schema"),
    path("api/", include("camgate.cameras.api.urls")),
    path("", include("camgate.web.urls")),
]


def handler404(request, exception):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


def handler500(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal error; see the gateway log."}, status=500)
    return server_error(request)
