"""The REST API of the reference gateway, endpoint by endpoint.

Shapes and status codes follow ``gateway-rest-api-reference.txt``. Every route but
auth-token requires a token (or a browser session); errors name the field at fault.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import parsers, serializers, status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from camgate.agent.control import poke_agent, restart_gateway_tunnel
from camgate.cameras.api.parsers import JSONParser
from camgate.cameras.api.serializers import (
    CameraDetailSerializer,
    CameraSerializer,
    ErrorSerializer,
    RestartResultSerializer,
)
from camgate.cameras import validation
from camgate.cameras.models import Camera
from camgate.cameras.resolution import resolve_camera



def _camera_or_404(camera_id: str) -> Camera:
    identifier = int(camera_id)  # the route lets digits only through
    camera = resolve_camera(identifier)
    if camera is None:
        raise NotFound(f"No camera with local id or camid {identifier} on this gateway.")
    return camera


def _save(serializer: CameraSerializer) -> Camera:
    """Save, turning a lost race on the unique camid into the same 400 as the check."""
    try:
        with transaction.atomic():
            camera = serializer.save()
    except IntegrityError:
        raise ValidationError({"access_token": [validation.DUPLICATE_CAMID]}) from None
    poke_agent()
    return camera


class AuthTokenView(ObtainAuthToken):
    """POST /api/auth-token/ — exchange username and password for the API token."""

    # A stale or wrong Authorization header must not stop someone getting a token.
    authentication_classes = ()
    parser_classes = (parsers.FormParser, parsers.MultiPartParser, JSONParser)

    @extend_schema(
        request=inline_serializer("AuthTokenRequest", {"username": serializers.CharField(), "password": serializers.CharField()}),
        responses={200: inline_serializer("AuthTokenResponse", {"token": serializers.CharField()}), 400: OpenApiResponse(description="Invalid credentials or malformed body.")},
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class CameraListView(APIView):
    @extend_schema(responses={200: CameraSerializer(many=True)})
    def get(self, request):
        cameras = Camera.objects.select_related("tunnel_status")
        return Response(CameraSerializer(cameras, many=True).data)


class CameraAddView(APIView):
    @extend_schema(request=CameraSerializer, responses={201: CameraSerializer, 400: OpenApiResponse(description="Validation errors, by field.")})
    def post(self, request):
        serializer = CameraSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        camera = _save(serializer)
        return Response(CameraSerializer(camera).data, status=status.HTTP_201_CREATED)


class CameraDeleteView(APIView):
    @extend_schema(responses={204: None, 404: OpenApiResponse(description="No such camera.")})
    def delete(self, request, camera_id: str):
        _camera_or_404(camera_id).delete()
        poke_agent()
        return Response(status=status.HTTP_204_NO_CONTENT)


class CameraEditView(APIView):
    @extend_schema(request=CameraSerializer, responses={200: CameraSerializer, 400: OpenApiResponse(description="Validation errors, by field."), 404: OpenApiResponse(description="No such camera.")})
    def post(self, request, camera_id: str):
        camera = _camera_or_404(camera_id)
        serializer = CameraSerializer(camera, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        camera = _save(serializer)
        return Response(CameraSerializer(camera).data)


class CameraDetailView(APIView):
    @extend_schema(responses={200: CameraDetailSerializer, 404: OpenApiResponse(description="No such camera.")})
    def get(self, request, camera_id: str):
        return Response(CameraDetailSerializer(_camera_or_404(camera_id)).data)


class RestartView(APIView):
    """POST /api/restart/ — restart the gateway's own tunnel to the cloud.

    The agent process owns the tunnels; this asks it, over its control socket, to close
    and reopen the gateway's tunnel. 200 once the agent has done so; 500 with the reason
    when the agent is not running or the restart failed.
    """

    @extend_schema(request=None, responses={200: RestartResultSerializer, 500: ErrorSerializer})
    def post(self, request):
        failure = restart_gateway_tunnel()
        if failure is not None:
            return Response({"error": failure}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
        return Response({"message": "Server restarted successfully"})
