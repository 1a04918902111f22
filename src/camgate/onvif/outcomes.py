"""Why reading a camera's ONVIF facts failed: the codes /api/onvif/ answers with.

Apart from the ONVIF client (device.py), so that the API's serializers and schema can
name them without loading zeep and aiohttp's client in every web process. The two a
health probe also finds mean what its states mean, and are spelt the same."""

from __future__ import annotations

from camgate.probe.result import HealthState

AUTH_FAILED = HealthState.AUTH_FAILED.value  # the camera refused the login given
UNREACHABLE = HealthState.UNREACHABLE.value  # no answer, refused, outside the allowed networks
NOT_ONVIF = "not_onvif"  # it answered, but not as an ONVIF camera that streams
