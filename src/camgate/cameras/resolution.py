"""Finding the camera a path names, the way the reference gateway does.

A local ``camera_id`` wins; when no local row has that id, the camera whose access
token carries that ``camid`` is used, so a cloud VMS can address cameras by its own ids;
then the camera whose provisioned token (serial + MAC, no access token) carries it.
"""

from __future__ import annotations

from camgate.cameras.models import Camera


def resolve_camera(identifier: int) -> Camera | None:
    queryset = Camera.objects.select_related("tunnel_status", "health_report")
    return (
        queryset.filter(camera_id=identifier).first()
        or queryset.filter(camid=identifier).first()
        or queryset.filter(provisioned_camid=identifier).order_by("camera_id").first()
    )
