"""The REST API of the reference gateway, endpoint by endpoint.

Shapes and status codes follow ``gateway-rest-api-reference.txt``. Every route but
auth-token requires a token (or a browser session); errors name the field at fault.
"""

from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    inline_serializer,
)
from rest_framework import parsers, serializers, status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from camgate.agent.control import restart_gateway_tunnel
from camgate.cameras.api.parsers import JSONParser
from camgate.cameras.api.serializers import (
    CameraDetailSerializer,
    CameraSerializer,
    ErrorDetailSerializer,
    FieldErrorsSerializer,
    RestartErrorSerializer,
    RestartResultSerializer,
)
from camgate.cameras import services, validation
from camgate.cameras.models import Camera
from camgate.cameras.resolution import resolve_camera
from camgate.web import throttle

# What the schema says about the answers every route shares. The bodies are DRF's (and
# BodySizeLimitMiddleware's): tests/cameras/test_schema_conformance.py checks each one
# against the schema.
BAD_REQUEST = OpenApiResponse(
    PolymorphicProxySerializer(
        component_name="BadRequest",
        serializers=[FieldErrorsSerializer, ErrorDetailSerializer],
        resource_type_field_name=None,
    ),
    description="Fields at fault, each with its messages; or `detail` when the body is not a JSON object.",
)
UNAUTHORIZED = OpenApiResponse(
    ErrorDetailSerializer, description="No valid `Authorization: Token <token>` header (nor a browser session)."
)
CSRF_REFUSED = OpenApiResponse(
    ErrorDetailSerializer,
    description="A browser-session request without its CSRF token (token-authenticated calls never get this).",
)
NOT_FOUND = OpenApiResponse(ErrorDetailSerializer, description="No camera has this local id, nor a token with this camid.")
TOO_LARGE = OpenApiResponse(
    ErrorDetailSerializer, description="The body is larger than `CAMGATE_MAX_BODY_BYTES` (1 MiB by default)."
)
UNSUPPORTED_MEDIA_TYPE = OpenApiResponse(
    ErrorDetailSerializer, description="The body is not JSON, form-encoded or multipart."
)
THROTTLED = OpenApiResponse(
    ErrorDetailSerializer,
    description="Too many wrong passwords for this username from this client (the login page's rule, and the same "
    "count): the password is not checked until the `Retry-After` header's seconds have passed.",
)

# The reference's examples (the schema's examples are also what schemathesis starts from).
ADD_EXAMPLE = OpenApiExample(
    "A camera",
    value={"ip": "192.168.1.20", "http_port": 80, "rtsp_port": 554, "is_active": False, "serial": "FAKECAMERA", "mac": "FAKECAMERA"},
    request_only=True,
)
ADD_WITH_TOKEN_EXAMPLE = OpenApiExample(
    "A camera with its VMS token and credentials",
    value={
        "ip": "cam-3.site.local",
        "access_token": "eyJjYW1pZCI6IDE1NDQ2LCAiY21uZ3JpZCI6IDF9",  # {"camid": 15446, "cmngrid": 1}
        "rtsp_only": True,
        "username": "admin",
        "password": "pass",
    },
    request_only=True,
)
EDIT_EXAMPLE = OpenApiExample("A new address", value={"ip": "192.168.2.136"}, request_only=True)

CAMERA_ID = OpenApiParameter(
    "camera_id",
    {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**63 - 1},
    OpenApiParameter.PATH,
    description="The camera's local `camera_id`; when no camera has it, the camera whose access token carries "
    "this `camid`.",
)


def _camera_or_404(camera_id: str) -> Camera:
    identifier = int(camera_id)  # the route lets digits only through
    camera = resolve_camera(identifier)
    if camera is None:
        raise NotFound(f"No camera with local id or camid {identifier} on this gateway.")
    return camera


def _save(serializer: CameraSerializer) -> Camera:
    """Save through the camera services, turning their refusals into API answers."""
    try:
        return serializer.save()
    except services.DuplicateCamid:
        # Another request took the camid between the check and the write.
        raise ValidationError({"access_token": [validation.DUPLICATE_CAMID]}) from None
    except services.CameraGone:
        raise NotFound("The camera was deleted.") from None


class AuthTokenView(ObtainAuthToken):
    """POST /api/auth-token/ — exchange username and password for the API token."""

    # A stale or wrong Authorization header must not stop someone getting a token.
    authentication_classes = ()
    parser_classes = (parsers.FormParser, parsers.MultiPartParser, JSONParser)

    @extend_schema(
        request=inline_serializer("AuthToken", {"username": serializers.CharField(), "password": serializers.CharField()}),
        examples=[
            OpenApiExample("The admin's first-start credentials", value={"username": "admin", "password": "admin"}, request_only=True),
        ],
        responses={
            200: inline_serializer("AuthTokenResponse", {"token": serializers.CharField()}),
            400: OpenApiResponse(
                BAD_REQUEST.response,
                description="Wrong credentials (`non_field_errors`), a missing field, or a body that is not JSON.",
            ),
            413: TOO_LARGE,
            415: OpenApiResponse(ErrorDetailSerializer, description="The body is not JSON nor a form."),
            429: THROTTLED,
        },
    )
    def post(self, request, *args, **kwargs):
        username, password = _submitted_credentials(request.data)
        key = throttle.key_for(request, username) if username is not None else None
        remaining = throttle.locked_for(key) if key else None
        if remaining:
            # Locked: the password is not even checked, so guessing gains nothing.
            return _throttled(remaining)
        try:
            # DRF's own answer, untouched: VMSs split its bytes on '{"token":"'.
            response = super().post(request, *args, **kwargs)
        except ValidationError:
            if key and password:
                if throttle.record_failure(key) == 0:
                    return _throttled(throttle.LOCKOUT)
            raise
        if key:
            throttle.clear(key)
        return response


def _submitted_credentials(data) -> tuple[str | None, str]:
    """The username and password as AuthTokenSerializer will read them (its CharFields
    take numbers too, so {"username": 7} must count against user "7"), or None for a
    username it will refuse anyway."""
    if not isinstance(data, Mapping):
        return None, ""
    username, password = data.get("username"), data.get("password")

    def as_text(value):
        return str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None

    return as_text(username), as_text(password) or ""


def _throttled(remaining) -> Response:
    return Response(
        {"detail": throttle.locked_message(remaining)},
        status=status.HTTP_429_TOO_MANY_REQUESTS,
        headers={"Retry-After": str(throttle.retry_after_seconds(remaining))},
    )


class CameraListView(APIView):
    @extend_schema(responses={200: CameraSerializer(many=True), 401: UNAUTHORIZED})
    def get(self, request):
        cameras = Camera.objects.select_related("tunnel_status", "health_report")
        return Response(CameraSerializer(cameras, many=True).data)


class CameraAddView(APIView):
    @extend_schema(
        request=CameraSerializer,
        examples=[ADD_EXAMPLE, ADD_WITH_TOKEN_EXAMPLE],
        responses={
            201: CameraSerializer,
            400: BAD_REQUEST,
            401: UNAUTHORIZED,
            403: CSRF_REFUSED,
            413: TOO_LARGE,
            415: UNSUPPORTED_MEDIA_TYPE,
        },
    )
    def post(self, request):
        serializer = CameraSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        camera = _save(serializer)
        return Response(CameraSerializer(camera).data, status=status.HTTP_201_CREATED)


class CameraDeleteView(APIView):
    @extend_schema(
        parameters=[CAMERA_ID],
        responses={204: None, 401: UNAUTHORIZED, 403: CSRF_REFUSED, 404: NOT_FOUND},
    )
    def delete(self, request, camera_id: str):
        try:
            services.delete_camera(_camera_or_404(camera_id))
        except services.CameraGone:
            raise NotFound("The camera was deleted.") from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class CameraEditView(APIView):
    @extend_schema(
        parameters=[CAMERA_ID],
        # Partial: no field is required, and no body at all changes nothing.
        request=CameraSerializer(partial=True),
        examples=[EDIT_EXAMPLE],
        description="Partial update: fields left out keep their values.",
        responses={
            200: CameraSerializer,
            400: BAD_REQUEST,
            401: UNAUTHORIZED,
            403: CSRF_REFUSED,
            404: NOT_FOUND,
            413: TOO_LARGE,
            415: UNSUPPORTED_MEDIA_TYPE,
        },
    )
    def post(self, request, camera_id: str):
        camera = _camera_or_404(camera_id)
        serializer = CameraSerializer(camera, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        camera = _save(serializer)
        return Response(CameraSerializer(camera).data)


class CameraDetailView(APIView):
    @extend_schema(parameters=[CAMERA_ID], responses={200: CameraDetailSerializer, 401: UNAUTHORIZED, 404: NOT_FOUND})
    def get(self, request, camera_id: str):
        return Response(CameraDetailSerializer(_camera_or_404(camera_id)).data)


class RestartView(APIView):
    """POST /api/restart/ — restart the gateway's own tunnel to the cloud.

    The agent process owns the tunnels; this asks it, over its control socket, to close
    and reopen the gateway's tunnel. 200 once the agent has done so; 500 with the reason
    when the agent is not running or the restart failed.
    """

    @extend_schema(
        request=None,
        responses={
            200: RestartResultSerializer,
            401: UNAUTHORIZED,
            403: CSRF_REFUSED,
            500: OpenApiResponse(
                RestartErrorSerializer,
                description="The agent is not running, or the tunnel did not come back within 15 s.",
            ),
        },
    )
    def post(self, request):
        failure = restart_gateway_tunnel()
        if failure is not None:
            return Response({"error": failure}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
        return Response({"message": "Server restarted successfully"})
