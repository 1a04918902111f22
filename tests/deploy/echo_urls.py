from django.http import JsonResponse
from django.urls import path

from camgate import urls as camgate_urls

ECHO_PATH = "/__echo__"


def echo(request):
    meta = request.META
    return JsonResponse({
        "remote_addr": meta.get("REMOTE_ADDR"),
        "scheme": request.scheme,
        "host": meta.get("HTTP_HOST"),
        "x_forwarded_for": meta.get("HTTP_X_FORWARDED_FOR"),
        "x_forwarded_proto": meta.get("HTTP_X_FORWARDED_PROTO"),
        "x_forwarded_host": meta.get("HTTP_X_FORWARDED_HOST"),
        "authorization": meta.get("HTTP_AUTHORIZATION"),
    })


urlpatterns = [path(ECHO_PATH.lstrip("/"), echo), *camgate_urls.urlpatterns]
handler404 = camgate_urls.handler404
handler500 = camgate_urls.handler500
