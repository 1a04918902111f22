"""Camera serializers: the reference gateway's field names, shapes and input forms.

The reference is a stock DRF ModelSerializer, and VMS integrations were written against
it, so camgate takes what its fields take: ports as numbers, numeric text or integral
floats (`80`, `"80"`, `80.0`), booleans as DRF's BooleanField reads them (`true`,
`"true"`, `"on"`, `1`, `"0"`, ... in any case, and `""` as false, which a browser form
sends), and JSON, form-encoded or multipart bodies. What DRF refuses (`80.5`, `"eighty"`,
`true` as a port, a port out of range) is a 400 naming the field. Text fields take text
only, as the schema says.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from camgate.cameras import services, validation
from camgate.cameras.models import Camera, camera_health
from camgate.core import TunnelState
from camgate.probe.result import HealthState
from camgate.probe.rtsp_url import MAX_PATH_LENGTH

TRUE_TEXTS = frozenset({"true", "t", "yes", "y", "on", "1"})
FALSE_TEXTS = frozenset({"false", "f", "no", "n", "off", "0", ""})


@extend_schema_field({
    "oneOf": [{"type": "boolean"}, {"type": "integer", "enum": [0, 1]}, {"type": "string"}],
    "description": "true/false; also 1/0 and the texts DRF reads (true, on, yes, 1, false, off, no, 0, and an "
    "empty text as false), in any case.",
})
class LenientBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be a boolean (true or false)."}
    # DRF reads a boolean left out of a form body as false; here it is left out, so a
    # form-encoded add does not switch a camera off by omission.
    default_empty_html = serializers.empty

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        if isinstance(data, int) and data in (0, 1):
            return bool(data)
        if isinstance(data, str) and data.strip().lower() in TRUE_TEXTS | FALSE_TEXTS:
            return data.strip().lower() in TRUE_TEXTS
        self.fail("invalid")

    def to_representation(self, value):
        return bool(value)


@extend_schema_field({
    "oneOf": [{"type": "integer", "minimum": validation.PORT_MIN, "maximum": validation.PORT_MAX},
              {"type": "string", "pattern": r"^\s*\d+(\.0*)?\s*$"}],
    "description": f"A port number ({validation.PORT_MIN}-{validation.PORT_MAX}); numeric text and integral "
    "numbers (80.0) are read as numbers.",
})
class PortField(serializers.IntegerField):
    """DRF's IntegerField (numeric text and integral floats taken, 80.5 refused), bounded
    to ports, and with `true` refused by name rather than read as 1."""

    default_error_messages = {"invalid": "Must be an integer port number (1-65535)."}

    def __init__(self, **kwargs):
        super().__init__(min_value=validation.PORT_MIN, max_value=validation.PORT_MAX, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float, str)):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({
    "oneOf": [{"type": "integer", "minimum": validation.PORT_MIN, "maximum": validation.PORT_MAX, "nullable": True},
              {"type": "string", "pattern": r"^\s*\d+(\.0*)?\s*$"}],
    "description": f"A port number ({validation.PORT_MIN}-{validation.PORT_MAX}) or null; numeric text and "
    "integral numbers (80.0) are read as numbers.",
})
class NullablePortField(PortField):
    """A PortField that may be null. Not DRF's allow_null: drf-spectacular would then put
    `nullable` beside the oneOf, where OpenAPI 3.0 ignores it; the null is in the integer
    branch above."""

    def validate_empty_values(self, data):
        if data is None:
            return True, None
        return super().validate_empty_values(data)


class TextField(serializers.CharField):
    """Text only. DRF's CharField also reads a number as text; the schema promises
    strings, and every client seen (the reference's cloud included) sends text here."""

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
        "url": {"type": "string", "description": "e.g. `rtsp://relay.example.com:20001/Streaming/Channels/101`: "
                "for rtsp, the relay's address and the camera's `rtsp_path`, playable as it is; never with credentials."},
    },
    "required": ["name", "proxy_host", "proxy_port", "url"],
}

TUNNEL_SCHEMA = {
    "type": "object",
    "description": "The agent's report on this camera's tunnel (a camgate extension); "
    "null until the agent has seen the camera.",
    "properties": {
        "state": {"type": "string", "enum": [state.value for state in TunnelState]},
        "reason": {"type": "string", "description": "Why the tunnel is failed or stopped; empty otherwise."},
        "endpoints": {"type": "array", "items": TUNNEL_ENDPOINT_SCHEMA,
                      "description": "Empty while the tunnel is failed or stopped."},
        "open_connections": {"type": "integer", "minimum": 0},
        "bytes_to_cloud": {"type": "integer", "format": "int64", "minimum": 0},
        "bytes_from_cloud": {"type": "integer", "format": "int64", "minimum": 0},
        "updated_at": {"type": "string", "format": "date-time", "nullable": True},
    },
    "required": [
        "state", "reason", "endpoints", "open_connections", "bytes_to_cloud", "bytes_from_cloud", "updated_at",
    ],
}


# The camera's own health, as the agent's probe found it (CameraHealth.as_dict()).
HEALTH_SCHEMA = {
    "type": "object",
    "description": "The camera's own health, from the agent's last probe (a camgate extension): its RTSP "
    "stream answered DESCRIBE with the stored login, and its web port any HTTP status. `unknown` until the first "
    "probe, and for an inactive camera (never probed).",
    "properties": {
        "state": {"type": "string", "enum": [state.value for state in HealthState]},
        "reason": {"type": "string", "description": "Why the state is not ok (e.g. `connection refused (RTSP port "
                   "554)`, `no answer in 5 s (DESCRIBE on RTSP port 554)`); empty when all is well."},
        "checked_at": {"type": "string", "format": "date-time", "nullable": True,
                       "description": "When the last probe ended; null before the first."},
        "latency_ms": {"type": "integer", "minimum": 0, "nullable": True,
                       "description": "From starting the TCP connection to the camera's first RTSP answer."},
        "video": {
            "type": "object", "nullable": True,
            "description": "The stream's video, from its SDP; null when there is none or it is not known yet.",
            "properties": {
                "codec": {"type": "string", "description": "e.g. `H.264`, `H.265`, `MJPEG`"},
                "width": {"type": "integer", "minimum": 1, "nullable": True},
                "height": {"type": "integer", "minimum": 1, "nullable": True},
                "fps": {"type": "number", "minimum": 0, "nullable": True},
            },
            "required": ["codec", "width", "height", "fps"],
        },
        "audio": {
            "type": "object", "nullable": True,
            "properties": {"codec": {"type": "string", "description": "e.g. `AAC`, `G.711 µ-law`"}},
            "required": ["codec"],
        },
    },
    "required": ["state", "reason", "checked_at", "latency_ms", "video", "audio"],
}


@extend_schema_field(TUNNEL_SCHEMA)
class TunnelField(serializers.Field):
    """The agent's report on this camera's tunnel (a camgate extension)."""

    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, allow_null=True, **kwargs)

    def to_representation(self, camera: Camera):
        status = camera.status
        return status.as_dict(camera.rtsp_path) if status else None


@extend_schema_field(HEALTH_SCHEMA)
class HealthField(serializers.Field):
    """The camera's own health (a camgate extension); never null."""

    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, camera: Camera):
        return camera_health(camera)


class CameraSerializer(serializers.ModelSerializer):
    access_token = TextField(required=False, allow_blank=True, trim_whitespace=True)
    ip = TextField(max_length=255)
    http_port = PortField(required=False)
    rtsp_port = PortField(required=False)
    # Reported, like pid: true while the tunnel runs. An add's value is ignored (the
    # reference's cloud always sends false); an edit's value switches `enabled`.
    is_active = LenientBooleanField(required=False)
    enabled = LenientBooleanField(required=False, help_text="camgate: false switches the camera's tunnel off on purpose.")
    pid = serializers.IntegerField(read_only=True, allow_null=True)
    serial = TextField(required=False, allow_null=True, allow_blank=True, max_length=255)
    mac = TextField(required=False, allow_null=True, allow_blank=True, max_length=255)
    rtsp_only = LenientBooleanField(required=False)
    rtsp_path = TextField(
        required=False, allow_blank=True, max_length=MAX_PATH_LENGTH,
        help_text="camgate: the stream's path (and query) on the camera's RTSP port, e.g. "
        "`/Streaming/Channels/101`; empty means `/`. No spaces, control characters or credentials.",
    )
    name = TextField(
        required=False, allow_blank=True, max_length=100,
        help_text="camgate: what people call the camera (its ONVIF model when added from discovery); may be empty.",
    )
    onvif_port = NullablePortField(
        required=False,
        help_text="camgate: the port of the camera's ONVIF device service (from discovery); null when unknown.",
    )
    username = TextField(required=False, allow_blank=True, max_length=255)
    password = TextField(
        required=False, allow_blank=True, max_length=255, write_only=True, trim_whitespace=False
    )
    tunnel = TunnelField()
    health = HealthField()

    class Meta:
        model = Camera
        fields = [
            "camera_id",
            "access_token",
            "ip",
            "http_port",
            "rtsp_port",
            "is_active",
            "enabled",
            "pid",
            "serial",
            "mac",
            "rtsp_only",
            "rtsp_path",
            "name",
            "onvif_port",
            "username",
            "password",
            "tunnel",
            "health",
        ]
        read_only_fields = ["camera_id"]

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        reported = values.pop("is_active", None)
        # An explicit edit of is_active is a person switching the camera; `enabled`, when
        # also given, says it more precisely and wins.
        if reported is not None and self.instance is not None:
            values.setdefault("enabled", reported)
        return values

    def create(self, validated_data: dict) -> Camera:
        return services.create_camera(validated_data)

    def update(self, instance: Camera, validated_data: dict) -> Camera:
        return services.update_camera(instance, validated_data)

    # No serial or MAC is null, whether the field was left out or sent empty, as the web
    # form stores it: one rule (the reference's examples show null for "none").
    def validate_serial(self, value: str | None) -> str | None:
        return value or None

    def validate_mac(self, value: str | None) -> str | None:
        return value or None

    def validate_ip(self, value: str) -> str:
        problem = validation.ip_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return validation.normalise_ip(value)

    def validate_rtsp_path(self, value: str) -> str:
        problem = validation.rtsp_path_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

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
