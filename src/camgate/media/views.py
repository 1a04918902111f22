"""``GET /api/camera/<id>/snapshot/``: a current frame of the camera, as a JPEG.

The agent captures (see snapshots.py for why there); this view resolves the camera the
way every camera route does, asks the agent over the control socket and hands the
answer on: the JPEG with ``Last-Modified`` and a ``Cache-Control`` lifetime that ends
when the agent would capture again, a 304 to a browser that has that frame already, or
503 ``{"error": "<reason>"}`` when the camera cannot give a frame.
"""

from __future__ import annotations

import base64
import binascii
import math

from django.http import HttpResponse
from django.utils.http import http_date, parse_http_date_safe
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from camgate.agent.control import AgentUnavailable, send_command
from camgate.cameras.api.views import CAMERA_ID, NOT_FOUND, UNAUTHORIZED, _camera_or_404
from camgate.media.settings import SnapshotSettings

# The agent answers within the capture timeout plus a second; past this, it is stuck.
AGENT_GRACE_S = 5.0


class SnapshotErrorSerializer(serializers.Serializer):
    error = serializers.CharField(
        help_text="Why there is no frame: `unreachable: …`, `auth failed: …`, `no stream: …`, `no video: …`, "
        "`no frame within N s`, `error: …`, or the agent is not running."
    )


def ask_agent_for_snapshot(camera_id: int) -> dict:
    timeout = SnapshotSettings.from_environment().timeout + AGENT_GRACE_S
    try:
        return send_command("snapshot", timeout=timeout, camera_id=camera_id)
    except AgentUnavailable as error:
        return {"ok": False, "error": str(error)}


def _unavailable(answer: dict) -> Response:
    response = Response({"error": answer.get("error") or "no frame"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    retry_after = answer.get("retry_after")
    if isinstance(retry_after, (int, float)) and retry_after > 0:
        response["Retry-After"] = str(math.ceil(retry_after))
    return response


def _image(request, answer: dict) -> HttpResponse | None:
    try:
        jpeg = base64.b64decode(answer["jpeg"], validate=True)
        captured_at, fresh_for = float(answer["captured_at"]), float(answer["fresh_for"])
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None
    last_modified = http_date(captured_at)
    since = parse_http_date_safe(request.headers.get("If-Modified-Since", ""))
    unchanged = since is not None and int(captured_at) <= since
    response = HttpResponse(status=304) if unchanged else HttpResponse(jpeg, content_type="image/jpeg")
    response["Last-Modified"] = last_modified
    # private: the picture is for this logged-in client, never for a shared cache.
    response["Cache-Control"] = f"private, max-age={math.floor(fresh_for)}"
    return response


class CameraSnapshotView(APIView):
    renderer_classes = [JSONRenderer]

    def perform_content_negotiation(self, request, force=False):
        # A client asking for image/jpeg must still get its errors, as JSON, not a 406.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        parameters=[CAMERA_ID],
        description="A current frame of the camera at its own size, decoded from one keyframe of its RTSP stream. "
        "At most one capture per camera at a time and per `CAMGATE_SNAPSHOT_MIN_INTERVAL` seconds; the last "
        "frame is served in between.",
        responses={
            (200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="The frame, with `Last-Modified` "
                                                 "and `Cache-Control: private, max-age=<seconds it stays current>`."),
            304: OpenApiResponse(description="The frame named by `If-Modified-Since` is still the current one."),
            401: UNAUTHORIZED,
            404: NOT_FOUND,
            503: OpenApiResponse(SnapshotErrorSerializer, description="The camera cannot give a frame now (the "
                                 "reason says why); `Retry-After` says when the agent will try it again."),
        },
    )
    def get(self, request, camera_id: str):
        camera = _camera_or_404(camera_id)
        answer = ask_agent_for_snapshot(camera.camera_id)
        if answer.get("missing"):
            _camera_or_404(camera_id)  # deleted meanwhile: the same 404 as any route
        if not answer.get("ok"):
            return _unavailable(answer)
        return _image(request, answer) or _unavailable({"error": "the agent sent an unreadable snapshot"})
