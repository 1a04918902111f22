"""A camera's facts, read from the camera itself through ONVIF's device and media services.

With the camera's credentials (WS-Security UsernameToken, password digest): maker,
model, firmware and serial number (GetDeviceInformation), MAC (GetNetworkInterfaces),
HTTP port (GetNetworkProtocols, else the ONVIF port: the device service is on the
camera's web server), the media profiles, and for the main one (the first) its RTSP
URI (GetStreamUri: rtsp_port and rtsp_path) and snapshot URI (GetSnapshotUri).

WS-Security fails when the two clocks differ by more than a few minutes, so the
camera's clock is read first (GetSystemDateAndTime, which ONVIF answers without a login)
and every token is dated by it. The whole read takes at most ``timeout`` seconds.
Failures are OnvifError with one of three codes; no reason ever holds the password.
"""

from __future__ import annotations

import asyncio
import ipaddress
import urllib.parse
from dataclasses import asdict, dataclass, field

import zeep.exceptions

from camgate.onvif.onvif_client import ResponseTooLarge, onvif_camera_class, sessions_closed_after
from camgate.onvif.outcomes import AUTH_FAILED, NOT_ONVIF, UNREACHABLE
from camgate.onvif.targets import allowed_networks, inside
from camgate.probe.net import StepFailed, resolve
from camgate.probe.result import printable
from camgate.probe.rtsp_url import path_problem

DEFAULT_TIMEOUT = 10.0
# How cameras say "wrong login" in a SOAP fault: subcodes (ter:NotAuthorized,
# wsse:FailedAuthentication, ...) or reasons ("Sender not authorized").
_AUTH_WORDS = ("notauthorized", "not authorized", "unauthorized", "failedauthentication", "invalidsecurity",
               "authentication", "authority", "password", "forbidden")
_RTSP_DEFAULT_PORT = 554


class OnvifError(Exception):
    """``code``: AUTH_FAILED, UNREACHABLE or NOT_ONVIF; ``reason``: what happened, in words."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code, self.reason = code, reason


@dataclass(frozen=True)
class Profile:
    token: str
    name: str
    encoding: str
    width: int | None
    height: int | None


@dataclass(frozen=True)
class DeviceFacts:
    manufacturer: str
    model: str
    firmware: str
    serial: str
    mac: str | None
    http_port: int
    rtsp_port: int | None
    rtsp_path: str
    snapshot_uri: str | None
    profiles: list[Profile] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


async def read_device(ip: str, onvif_port: int, username: str, password: str,
                      timeout: float = DEFAULT_TIMEOUT) -> DeviceFacts:
    address = await _allowed_address(ip, onvif_port, timeout)
    async with sessions_closed_after():
        # No login is an empty one (the client cannot send none): a camera without
        # authentication ignores it, one with it refuses it.
        camera = onvif_camera_class()(address, onvif_port, username, password, no_cache=True, adjust_time=True)
        try:
            async with asyncio.timeout(timeout):
                return await _read(camera, onvif_port)
        except TimeoutError:
            raise OnvifError(UNREACHABLE, f"no complete answer within {timeout:g} s") from None
        except OnvifError:
            raise
        except Exception as error:  # whatever the camera made the client raise, said plainly
            failure = _classified(error, onvif_port)
            if password and password in failure.reason:  # the camera's words, echoed: never the password
                failure = OnvifError(failure.code, failure.reason.replace(password, "(password)"))
            raise failure from None
        finally:
            await camera.close()


async def _allowed_address(host: str, port: int, timeout: float) -> str:
    """The address to connect to: ``host`` itself or what its name resolves to, and only
    inside CAMGATE_PROBE_NETWORKS."""
    try:
        resolved = await resolve(host, port, timeout)
    except StepFailed as failed:
        raise OnvifError(UNREACHABLE, failed.result.reason) from None
    networks = allowed_networks()
    for entry in resolved:
        address = entry[4][0]
        if inside(ipaddress.ip_address(address.split("%")[0]), networks):
            return address
    raise OnvifError(UNREACHABLE, f"{printable(host, 80)} is outside CAMGATE_PROBE_NETWORKS, which the gateway may not probe")


async def _read(camera, onvif_port: int) -> DeviceFacts:
    await camera.update_xaddrs()  # reads the camera's clock first (adjust_time)
    device = await camera.create_devicemgmt_service()
    info = await device.GetDeviceInformation()
    mac = await _optional(_mac(device))
    http_port = await _optional(_http_port(device)) or onvif_port
    media = await camera.create_media_service()
    profiles = list(await media.GetProfiles() or [])
    if not profiles:
        raise OnvifError(NOT_ONVIF, "the device has no media profile (no video to stream)")
    main = _main_profile(profiles)
    stream = await media.GetStreamUri({
        "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}, "ProfileToken": main.token,
    })
    rtsp_port, rtsp_path = _rtsp_port_and_path(getattr(stream, "Uri", None))
    snapshot = await _optional(media.GetSnapshotUri({"ProfileToken": main.token}))
    return DeviceFacts(
        manufacturer=_text(info.Manufacturer), model=_text(info.Model), firmware=_text(info.FirmwareVersion),
        serial=_text(info.SerialNumber), mac=mac, http_port=http_port, rtsp_port=rtsp_port, rtsp_path=rtsp_path,
        snapshot_uri=_without_credentials(getattr(snapshot, "Uri", None)),
        profiles=[_profile(profile) for profile in profiles],
    )


async def _optional(call):
    """What an operation cameras may lack answers, or None when the camera refuses it."""
    try:
        return await call
    except (zeep.exceptions.Fault, zeep.exceptions.TransportError, zeep.exceptions.ValidationError, AttributeError,
            TypeError, ValueError):
        return None


async def _mac(device) -> str | None:
    for interface in await device.GetNetworkInterfaces() or []:
        address = _text(getattr(getattr(interface, "Info", None), "HwAddress", None))
        if address and getattr(interface, "Enabled", True):
            return address[:255]
    return None


async def _http_port(device) -> int | None:
    for protocol in await device.GetNetworkProtocols() or []:
        if _text(protocol.Name).upper() == "HTTP" and getattr(protocol, "Enabled", True):
            for port in protocol.Port or []:
                if isinstance(port, int) and 0 < port < 65536:
                    return port
    return None


def _main_profile(profiles):
    with_video = [p for p in profiles if getattr(p, "VideoEncoderConfiguration", None) is not None]
    return (with_video or profiles)[0]


def _profile(profile) -> Profile:
    encoder = getattr(profile, "VideoEncoderConfiguration", None)
    resolution = getattr(encoder, "Resolution", None)
    return Profile(
        token=_text(getattr(profile, "token", "")), name=_text(getattr(profile, "Name", "")),
        encoding=_text(getattr(encoder, "Encoding", "")),
        width=_int(getattr(resolution, "Width", None)), height=_int(getattr(resolution, "Height", None)),
    )


def _rtsp_port_and_path(uri) -> tuple[int | None, str]:
    """The port, and the path with its query (camgate's rtsp_path), of a stream URI; a
    path camgate could not store (credentials in it, say) is left empty."""
    if not isinstance(uri, str):
        return None, ""
    try:
        parts = urllib.parse.urlsplit(uri.strip())
        port = parts.port
    except ValueError:
        return None, ""
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if path_problem(path) and path_problem(parts.path) is None:
        path = parts.path  # the query is what could not be kept
    return port or _RTSP_DEFAULT_PORT, "" if path_problem(path) else path


def _without_credentials(uri) -> str | None:
    if not isinstance(uri, str) or not uri.strip():
        return None
    parts = urllib.parse.urlsplit(uri.strip())
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))[:2048]


def _text(value) -> str:
    return printable(str(value), 255) if value is not None else ""


def _int(value) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _classified(error: Exception, onvif_port: int) -> OnvifError:
    where = f"ONVIF port {onvif_port}"
    chain = _chain(error)
    for link in chain:
        if isinstance(link, ResponseTooLarge):
            return OnvifError(NOT_ONVIF, f"{link} ({where})")
        if isinstance(link, zeep.exceptions.Fault):
            return _fault(link, where)
        if isinstance(link, zeep.exceptions.TransportError):
            if link.status_code in (401, 403):
                return OnvifError(AUTH_FAILED, f"the camera refused the username or password (HTTP {link.status_code})")
            return OnvifError(NOT_ONVIF, f"{where} answers HTTP {link.status_code}, not ONVIF")
    cause = chain[-1]
    if isinstance(cause, ConnectionRefusedError):
        return OnvifError(UNREACHABLE, f"connection refused ({where})")
    if isinstance(cause, OSError):  # aiohttp's connection errors are OSErrors too
        reason = getattr(cause, "strerror", None) or str(cause)
        return OnvifError(UNREACHABLE, f"cannot connect ({where}): {printable(reason, 120)}")
    return OnvifError(NOT_ONVIF, f"{where} does not answer as an ONVIF device ({type(cause).__name__})")


def _fault(fault: zeep.exceptions.Fault, where: str) -> OnvifError:
    said = " ".join(str(part) for part in (fault.message, fault.code, *(fault.subcodes or [])) if part)
    if any(word in said.lower() for word in _AUTH_WORDS):
        return OnvifError(AUTH_FAILED, "the camera refused the username or password")
    if fault.code is None:  # zeep's name for an error answer with no SOAP fault in it
        return OnvifError(NOT_ONVIF, f"{where} answers, but not as an ONVIF device")
    return OnvifError(NOT_ONVIF, f"the device answered with a SOAP fault: {printable(str(fault.message), 120)}")


def _chain(error: BaseException) -> list[BaseException]:
    """The error and what caused it, outermost first (the library wraps what it meets)."""
    chain = [error]
    while (chain[-1].__cause__ or chain[-1].__context__) is not None and len(chain) < 16:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    return chain
