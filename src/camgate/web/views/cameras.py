"""Add, edit and delete cameras from the browser."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from camgate.cameras import services, validation
from camgate.cameras.models import Camera
from camgate.web.forms import CameraForm


def _camera(camera_id: str) -> Camera:
    # The URL pattern only lets digits through; the UI always links by local id.
    return get_object_or_404(Camera, pk=int(camera_id))


def _data(request):
    return request.POST if request.method == "POST" else None


def _save(form: CameraForm) -> Camera | None:
    try:
        return form.save()
    except services.DuplicateCamid:
        # Another request took the camid between our check and the write.
        form.add_error("access_token", validation.DUPLICATE_CAMID)
    except services.CameraGone:
        form.add_error(None, "This camera was deleted meanwhile.")
    return None


def _camera_form_page(request, camera: Camera | None, done: str):
    """Add (camera None) or edit: the form, its errors beside the fields (400), or save."""
    form = CameraForm(_data(request), instance=camera)
    if request.method == "POST" and form.is_valid():
        saved = _save(form)
        if saved is not None:
            messages.success(request, f"Camera {saved.camera_id} ({saved.ip}) {done}.")
            return redirect("web:dashboard")
    return render(request, "web/camera_form.html", {"form": form, "camera": camera},
                  status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def camera_add(request):
    return _camera_form_page(request, None, "added")


@login_required
@require_http_methods(["GET", "POST"])
def camera_edit(request, camera_id: str):
    return _camera_form_page(request, _camera(camera_id), "saved")


@login_required
@require_http_methods(["GET", "POST"])
def camera_delete(request, camera_id: str):
    camera = _camera(camera_id)
    if request.method == "POST":
        label = f"Camera {camera.camera_id} ({camera.ip})"
        try:
            services.delete_camera(camera)
        except services.CameraGone:
            raise Http404("This camera was deleted meanwhile.") from None
        messages.success(request, f"{label} deleted.")
        return redirect("web:dashboard")
    return render(request, "web/camera_delete.html", {"camera": camera})
