"""``POST /api/discover/`` and ``POST /api/onvif/`` (camgate extensions): find the ONVIF
cameras on the LAN, and read one camera's facts with its credentials.

Both make the gateway reach out on the network, so both need the API token (or a
session) like every other route, and reach only CAMGATE_PROBE_NETWORKS when that is set.
Each runs its own short event loop in the request's thread, bounded in time (discovery
by its timeout, at most 10 s; a read by DEFAULT_TIMEOUT).
"""

from __future__ import annotations

import asyncio

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from camgate.cameras.api.parsers import JSONParser
from camgate.cameras.api.serializers import ErrorDetailSerializer, FieldErrorsSerializer
from camgate.cameras.api.views import BAD_REQUEST, CSRF_REFUSED, TOO_LARGE, UNAUTHORIZED
from camgate.cameras.models import Camera
from camgate.onvif.discovery import discover
from camgate.onvif.serializers import (
    DiscoverSerializer,
    DiscoverResultSerializer,
    OnvifDeviceSerializer,
    OnvifFailureSerializer,
    OnvifReadSerializer,
)

SHARED_ANSWERS = {
    401: UNAUTHORIZED, 403: CSRF_REFUSED, 413: TOO_LARGE,
    415: OpenApiResponse(ErrorDetailSerializer, description="The body is not JSON (these routes take JSON only)."),
}
ONVIF_BAD_REQUEST = OpenApiResponse(
    PolymorphicProxySerializer(
        component_name="OnvifBadRequest",
        serializers=[FieldErrorsSerializer, OnvifFailureSerializer, ErrorDetailSerializer],
        resource_type_field_name=None,
    ),
    description="Fields at fault, each with its messages; or the camera could not be read: `error` is "
    "`auth_failed` (it refused the credentials), `unreachable` (no answer, refused, or no route) or `not_onvif` "
    "(something answered, not as an ONVIF camera), and `reason` says more; or `detail` when the body is not JSON.",
)


def _validated(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)  # a 400 naming the fields at fault
    return serializer.validated_data


def _camera_ids_by_ip(addresses: set[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for ip, camera_id in Camera.objects.filter(ip__in=addresses).order_by("camera_id").values_list("ip", "camera_id"):
        ids.setdefault(ip, camera_id)
    return ids


class DiscoverView(APIView):
    """WS-Discovery Probe for ONVIF cameras (NetworkVideoTransmitter): multicast from every IPv4 interface
    (or those in `CAMGATE_DISCOVERY_INTERFACES`), or unicast to `address`. Answers are gathered for `timeout`
    seconds; a probe of one address ends as soon as it answers or refuses."""

    parser_classes = [JSONParser]  # camgate's own routes: JSON only (no body at all: the defaults)
    @extend_schema(
        request=DiscoverSerializer,
        examples=[
            OpenApiExample("Multicast on every interface", value={"timeout": 3}, request_only=True),
            OpenApiExample("A range, across a router or a Docker bridge",
                           value={"timeout": 3, "address": "192.168.1.0/24"}, request_only=True),
        ],
        responses={200: DiscoverResultSerializer, 400: BAD_REQUEST, **SHARED_ANSWERS},
    )
    def post(self, request):
        given = _validated(DiscoverSerializer, request)
        devices = asyncio.run(discover(given["timeout"], given["address"]))
        ids = _camera_ids_by_ip({device.ip for device in devices})
        return Response({"devices": [{**device.as_dict(), "camera_id": ids.get(device.ip)} for device in devices]})


class OnvifDeviceView(APIView):
    """Reads the camera's facts through its ONVIF device and media services, with WS-Security (UsernameToken
    digest) dated by the camera's own clock: what a camera's fields need (serial, MAC, ports, `rtsp_path`) and
    more. The credentials are used for this read only."""

    parser_classes = [JSONParser]

    @extend_schema(
        request=OnvifReadSerializer,
        examples=[OpenApiExample("A camera found by discovery", request_only=True,
                                 value={"ip": "192.168.1.64", "onvif_port": 80, "username": "admin", "password": "pass"})],
        responses={200: OnvifDeviceSerializer, 400: ONVIF_BAD_REQUEST, **SHARED_ANSWERS},
    )
    def post(self, request):
        # Here, not at the top: the ONVIF client (zeep, httpx) is a few hundred
        # milliseconds of every web server's start, for a page used when adding cameras.
        from camgate.onvif.device import OnvifError, read_device

        given = _validated(OnvifReadSerializer, request)
        try:
            facts = asyncio.run(read_device(given["ip"], given["onvif_port"], given["username"], given["password"]))
        except OnvifError as error:
            return Response({"error": error.code, "reason": error.reason}, status=status.HTTP_400_BAD_REQUEST)
        return Response(facts.as_dict())

