"""The "Find cameras" page. The page itself is only the frame: the scan, the reading of
each camera's facts and the adds are the REST API's (/api/discover/, /api/onvif/,
/api/add-camera/), called by find-cameras.js with the browser's session, so the page
and a VMS find and add cameras by the same rules."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

# What the page offers for how long to listen; the API bounds it too (at most 10 s).
SCAN_SECONDS = (1, 3, 5, 10)
DEFAULT_SCAN_SECONDS = 3


@never_cache
@require_GET
@login_required
def find_cameras(request):
    # A camera's page is /edit-camera/<id>: the script appends the id the API answers.
    camera_link = reverse("web:camera-edit", kwargs={"camera_id": "0"})[:-1]
    context = {
        "urls": {
            "discover": reverse("api-discover"),
            "onvif": reverse("api-onvif"),
            "add": reverse("api-add-camera"),
            "camera": camera_link,
            "login": reverse("web:login"),
        },
        "scan_seconds": SCAN_SECONDS,
        "default_scan_seconds": DEFAULT_SCAN_SECONDS,
    }
    return render(request, "web/find_cameras.html", context)
