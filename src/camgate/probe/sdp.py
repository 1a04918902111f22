"""What a camera's SDP (RFC 8866, the DESCRIBE answer) says about its streams.

Only what a person wants to know at a glance: the video codec, its picture size where
the SDP or the codec's parameter sets give it, the frame rate where given, and the
audio codec. The first video and the first audio section count.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from camgate.probe.result import AudioFacts, VideoFacts, printable
from camgate.probe.sps import SpsError, parse_h264_sps, parse_h265_sps

# RTP payload types with a fixed meaning (RFC 3551), for SDPs that give no rtpmap.
STATIC_PAYLOADS = {
    "0": "PCMU", "3": "GSM", "8": "PCMA", "9": "G722", "14": "MPA", "26": "JPEG", "31": "H261",
    "32": "MPV", "34": "H263",
}
VIDEO_NAMES = {
    "H264": "H.264", "H265": "H.265", "HEVC": "H.265", "JPEG": "MJPEG", "MP4V-ES": "MPEG-4",
    "H263": "H.263", "H263-1998": "H.263", "H263-2000": "H.263", "MPV": "MPEG-2", "H261": "H.261",
    "VP8": "VP8", "VP9": "VP9", "AV1": "AV1",
}
AUDIO_NAMES = {
    "PCMU": "G.711 µ-law", "PCMA": "G.711 A-law", "G722": "G.722", "MPEG4-GENERIC": "AAC",
    "MP4A-LATM": "AAC", "MPA": "MP3", "OPUS": "Opus", "L16": "PCM", "GSM": "GSM",
}


@dataclass
class MediaSection:
    kind: str  # "video", "audio", "application", ...
    formats: list[str]
    attributes: list[tuple[str, str]] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        return next((value for key, value in self.attributes if key == name), None)

    def for_format(self, name: str, payload: str) -> str | None:
        """The value of ``a=<name>:<payload> <value>`` (rtpmap, fmtp, framesize)."""
        for key, value in self.attributes:
            if key == name:
                head, _, rest = value.partition(" ")
                if head == payload:
                    return rest.strip()
        return None


@dataclass(frozen=True)
class StreamFacts:
    video: VideoFacts | None
    audio: AudioFacts | None


def parse_sections(text: str) -> tuple[list[tuple[str, str]], list[MediaSection]]:
    """Session-level attributes and the media sections, in order."""
    session: list[tuple[str, str]] = []
    media: list[MediaSection] = []
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            parts = value.split()
            media.append(MediaSection(parts[0].lower() if parts else "", parts[3:]))
        elif kind == "a":
            name, _, attribute_value = value.partition(":")
            (media[-1].attributes if media else session).append((name.strip().lower(), attribute_value.strip()))
    return session, media


def _encoding(section: MediaSection) -> tuple[str, str]:
    """(payload type, upper-case encoding name) of the section's first format."""
    payload = section.formats[0] if section.formats else ""
    rtpmap = section.for_format("rtpmap", payload)
    if rtpmap:
        return payload, rtpmap.split("/")[0].strip().upper()
    return payload, STATIC_PAYLOADS.get(payload, "")


def _fmtp(section: MediaSection, payload: str) -> dict[str, str]:
    params = {}
    for item in (section.for_format("fmtp", payload) or "").split(";"):
        key, _, value = item.strip().partition("=")
        if key:
            params[key.strip().lower()] = value.strip()
    return params


def _number(text: str | None) -> float | None:
    try:
        value = float((text or "").strip())
    except ValueError:
        return None
    return round(value, 3) if 0 < value <= 1000 else None


def _pair(text: str | None, separators: str) -> tuple[int, int] | None:
    for separator in separators:
        left, found, right = (text or "").partition(separator)
        if found and left.strip().isdigit() and right.strip().isdigit():
            width, height = int(left), int(right)
            if 0 < width <= 16384 and 0 < height <= 16384:
                return width, height
    return None


def _decode_nal(text: str) -> bytes | None:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _size_from_parameter_sets(codec: str, params: dict[str, str]):
    try:
        if codec == "H.264":
            sps = _decode_nal(params.get("sprop-parameter-sets", "").split(",")[0])
            return parse_h264_sps(sps) if sps else None
        if codec == "H.265":
            sps = _decode_nal(params.get("sprop-sps", "").split(",")[0])
            return parse_h265_sps(sps) if sps else None
    except SpsError:
        return None
    return None


def _size_from_attributes(section: MediaSection, payload: str) -> tuple[int, int] | None:
    # x-dimensions:W,H (GStreamer, some cameras); framesize:PT W-H (others); Axis's
    # cliprect:0,0,H,W; and width/height in fmtp (MPEG-4, some MJPEG servers).
    size = _pair(section.attribute("x-dimensions"), ",") or _pair(section.for_format("framesize", payload), "-")
    if size:
        return size
    cliprect = (section.attribute("cliprect") or "").split(",")
    if len(cliprect) == 4 and all(part.strip().isdigit() for part in cliprect):
        return _pair(f"{cliprect[3]},{cliprect[2]}", ",")
    return None


def video_facts(section: MediaSection, session: list[tuple[str, str]]) -> VideoFacts:
    payload, encoding = _encoding(section)
    codec = VIDEO_NAMES.get(encoding) or printable(encoding or f"payload {payload}", 40)
    params = _fmtp(section, payload)
    width = height = None
    fps = _number(section.attribute("framerate") or section.attribute("x-framerate"))
    if fps is None:
        fps = _number(next((v for k, v in session if k in ("framerate", "x-framerate")), None))
    from_sps = _size_from_parameter_sets(codec, params)
    if from_sps:
        width, height = from_sps.width, from_sps.height
        fps = fps or from_sps.fps
    else:
        size = _size_from_attributes(section, payload) or _pair(f"{params.get('width')},{params.get('height')}", ",")
        if size:
            width, height = size
    return VideoFacts(codec, width, height, fps)


def audio_facts(section: MediaSection) -> AudioFacts:
    payload, encoding = _encoding(section)
    return AudioFacts(AUDIO_NAMES.get(encoding) or printable(encoding or f"payload {payload}", 40))


def stream_facts(sdp: bytes) -> StreamFacts:
    session, media = parse_sections(sdp.decode("utf-8", errors="replace"))
    video = next((m for m in media if m.kind == "video"), None)
    audio = next((m for m in media if m.kind == "audio"), None)
    return StreamFacts(video_facts(video, session) if video else None, audio_facts(audio) if audio else None)
