"""Bodies of the two ONVIF routes (camgate extensions): what they take and what they answer."""

from __future__ import annotations

import ipaddress
import math

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from camgate.cameras.api.serializers import PortField, TextField
from camgate.onvif.outcomes import AUTH_FAILED, NOT_ONVIF, UNREACHABLE
from camgate.onvif.discovery import DEFAULT_TIMEOUT, MAX_TIMEOUT
from camgate.onvif.targets import TargetProblem, allowed_networks, inside, unicast_targets

MIN_TIMEOUT = 0.1


@extend_schema_field({"type": "number", "minimum": MIN_TIMEOUT, "maximum": MAX_TIMEOUT, "default": DEFAULT_TIMEOUT})
class TimeoutField(serializers.FloatField):
    default_error_messages = {"invalid": f"Must be a number of seconds ({MIN_TIMEOUT:g}-{MAX_TIMEOUT:g})."}

    def __init__(self, **kwargs):
        super().__init__(min_value=MIN_TIMEOUT, max_value=MAX_TIMEOUT, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float, str)):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        return value


class DiscoverSerializer(serializers.Serializer):
    timeout = TimeoutField(required=False, default=DEFAULT_TIMEOUT,
                           help_text=f"Seconds to gather answers: {MIN_TIMEOUT:g} to {MAX_TIMEOUT:g}, default {DEFAULT_TIMEOUT:g}.")
    address = TextField(
        required=False, allow_blank=True, allow_null=True, max_length=64, default=None,
        help_text="Probe this IPv4 address, or every address of this IPv4 range (CIDR, at most a /24), instead of "
        "multicasting on every interface. Must lie inside `CAMGATE_PROBE_NETWORKS` when that is set.",
    )

    def validate_address(self, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        try:
            unicast_targets(value, allowed_networks())
        except TargetProblem as problem:
            raise serializers.ValidationError(str(problem)) from None
        return value.strip()


class DiscoveredDeviceSerializer(serializers.Serializer):
    ip = serializers.CharField(help_text="The address the answer came from.")
    onvif_port = serializers.IntegerField(min_value=1, max_value=65535, help_text="Of its ONVIF device service.")
    xaddrs = serializers.ListField(child=serializers.CharField(), help_text="Its ONVIF device service URLs.")
    scopes = serializers.ListField(child=serializers.CharField(), help_text="Its WS-Discovery scopes.")
    name = serializers.CharField(allow_blank=True, help_text="From its `onvif://www.onvif.org/name/` scope; may be empty.")
    hardware = serializers.CharField(allow_blank=True, help_text="From its `onvif://www.onvif.org/hardware/` scope; may be empty.")
    camera_id = serializers.IntegerField(allow_null=True, help_text="The local id of a camera already at this "
                                         "address, else null.")


class DiscoverResultSerializer(serializers.Serializer):
    devices = DiscoveredDeviceSerializer(many=True)


class OnvifReadSerializer(serializers.Serializer):
    ip = TextField(max_length=64, help_text="The camera's IPv4 or IPv6 address (as discovery gives it).")
    onvif_port = PortField(required=False, default=80)
    username = TextField(required=False, allow_blank=True, max_length=255, default="")
    password = TextField(required=False, allow_blank=True, max_length=255, default="", write_only=True,
                         trim_whitespace=False, help_text="Used for this read only: never stored, logged nor returned.")

    def validate_ip(self, value: str) -> str:
        text = value.strip().strip("[]")
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise serializers.ValidationError("Enter the camera's IP address (IPv4 or IPv6).") from None
        if not inside(address, allowed_networks()):
            raise serializers.ValidationError(f"{address} is outside CAMGATE_PROBE_NETWORKS, which the gateway may not probe.")
        return str(address)


class OnvifProfileSerializer(serializers.Serializer):
    token = serializers.CharField(allow_blank=True)
    name = serializers.CharField(allow_blank=True)
    encoding = serializers.CharField(allow_blank=True, help_text="e.g. `H264`, `H265`, `JPEG`; empty when unknown.")
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)


class OnvifDeviceSerializer(serializers.Serializer):
    manufacturer = serializers.CharField(allow_blank=True)
    model = serializers.CharField(allow_blank=True)
    firmware = serializers.CharField(allow_blank=True)
    serial = serializers.CharField(allow_blank=True)
    mac = serializers.CharField(allow_null=True, help_text="Of its first enabled network interface; null when it does not say.")
    http_port = serializers.IntegerField(min_value=1, max_value=65535)
    rtsp_port = serializers.IntegerField(min_value=1, max_value=65535, allow_null=True,
                                         help_text="From the main profile's stream URI; null when it gives none.")
    rtsp_path = serializers.CharField(allow_blank=True, help_text="The stream URI's path and query, as a camera's "
                                      "`rtsp_path` takes it; empty when there is none it could store.")
    snapshot_uri = serializers.CharField(allow_null=True, help_text="The main profile's snapshot URI (without any login in it).")
    profiles = OnvifProfileSerializer(many=True, help_text="Every media profile; the first with video is the main one.")


class OnvifFailureSerializer(serializers.Serializer):
    error = serializers.ChoiceField(choices=[AUTH_FAILED, UNREACHABLE, NOT_ONVIF])
    reason = serializers.CharField(help_text="What happened, in words; never the password.")
