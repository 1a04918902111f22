"""Camera serializers: the reference gateway's field names and shapes, with strict types.

DRF's stock fields coerce ``"80"`` or ``true`` into a port and ``"yes"`` into a boolean;
a VMS that sends the wrong type should hear about it, not have it guessed, so the
fields below accept JSON's own types only.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from camgate.cameras import validation
from camgate.cameras.models import Camera, TunnelStatus


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class PortField(serializers.IntegerField):
    default_error_messages = {"invalid": "Must be an integer port number (1-65535)."}

    def __init__(self, **kwargs):
        super().__init__(min_value=validation.PORT_MIN, max_value=validation.PORT_MAX, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


# The agent's report, as TunnelStatus.as_dict() renders it. Written out inline rather
# than as a component: OpenAPI 3.0 cannot make a $ref nullable, and null is what a
# camera the agent has not seen yet carries.
TUNNEL_ENDPOINT_SCHEMA = {
    "type": "object",
    "description": "A public endpoint the relay gave one of the tunnel's forwards.",
    "properties": {
        "name": {"type": "string", "description": "The forward: `http` or `rtsp`."},
        "proxy_host": {"type": "string"},
        "proxy_port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "url": {"type": "string", "description": "e.g. `rtsp://relay.example.com:20001/`"},
    },
    "required": ["name", "proxy_host", "proxy_port", "url"],
}

TUNNEL_SCHEMA = {
    "type": "object",
    "description": "The agent's report on this camera's tunnel (a camgate extension); "
    "null until the agent has seen the camera.",
    "properties": {
        "state": {"type": "string", "enum": list(TunnelStatus.State.values)},
        "reason": {"type": "string", "description": "Why the tunnel is failed or stopped; empty otherwise."},
        "endpoints": {"type": "array", "items": TUNNEL_ENDPOINT_SCHEMA},
        "open_connections": {"type": "integer", "minimum": 0},
        "bytes_to_cloud": {"type": "integer", "format": "int64", "minimum": 0},
        "bytes_from_cloud": {"type": "integer", "format": "int64", "minimum": 0},
        "updated_at": {"type": "string", "format": "date-time", "nullable": True},
    },
    "required": [
        "state", "reason", "endpoints", "open_connections", "bytes_to_cloud", "bytes_from_cloud", "updated_at",
    ],
}


@extend_schema_field(TUNNEL_SCHEMA)
class TunnelField(serializers.Field):
    """The agent's report on this camera's tunnel (a camgate extension)."""

    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, allow_null=True, **kwargs)

    def to_representation(self, camera: Camera):
        status = camera.status
        return status.as_dict() if status else None


class CameraSerializer(serializers.ModelSerializer):
    access_token = StrictCharField(required=False, allow_blank=True, trim_whitespace=True)
    ip = StrictCharField(max_length=255)
    http_port = PortField(required=False)
    rtsp_port = PortField(required=False)
    is_active = StrictBooleanField(required=False)
    pid = serializers.IntegerField(read_only=True, allow_null=True)
    serial = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=255)
    mac = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=255)
    rtsp_only = StrictBooleanField(required=False)
    username = StrictCharField(required=False, allow_blank=True, max_length=255)
    password = StrictCharField(
        required=False, allow_blank=True, max_length=255, write_only=True, trim_whitespace=False
    )
    tunnel = TunnelField()

    class Meta:
        model = Camera
        fields = [
            "camera_id",
            "access_token",
            "ip",
            "http_port",
            "rtsp_port",
            "is_active",
            "pid",
            "serial",
            "mac",
            "rtsp_only",
            "username",
            "password",
            "tunnel",
        ]
        read_only_fields = ["camera_id"]

    def validate_ip(self, value: str) -> str:
        problem = validation.ip_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return validation.normalise_ip(value)

    def validate_access_token(self, value: str) -> str:
        problem = validation.access_token_problem(value, self.instance.pk if self.instance else None)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class CameraDetailSerializer(CameraSerializer):
    """GET /api/camera/<id>/ adds the token the tunnel really uses."""

    local_token = serializers.CharField(read_only=True)

    class Meta(CameraSerializer.Meta):
        fields = CameraSerializer.Meta.fields[:2] + ["local_token"] + CameraSerializer.Meta.fields[2:]


class RestartResultSerializer(serializers.Serializer):
    message = serializers.CharField()


class RestartErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="Why the restart failed, e.g. the agent is not running.")


# Error bodies, for the schema only: DRF's exception handler renders them.


class ErrorDetailSerializer(serializers.Serializer):
    """{"detail": "..."}: 401, 403, 404, 413, 415, and 400 for a body that is not JSON."""

    detail = serializers.CharField()


class FieldErrorsSerializer(serializers.Serializer):
    """{"<field>": ["<message>", ...], ...}: 400 for a body with bad fields. Errors not
    tied to one field (wrong credentials) come under ``non_field_errors``."""


class FieldErrorsSchema(OpenApiSerializerExtension):
    target_class = FieldErrorsSerializer

    def map_serializer(self, auto_schema, direction):
        return {
            "type": "object",
            "description": FieldErrorsSerializer.__doc__.strip(),
            "additionalProperties": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "minProperties": 1,
            "example": {"ip": ["This field is required."]},
        }
