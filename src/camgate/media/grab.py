"""One snapshot, in a child process of the agent: ``python -m camgate.media.grab``.

Reads a JSON request on stdin (the camera's source, the capture's deadline on the
system-wide monotonic clock, the timeout to name in messages), opens the RTSP stream
with PyAV, decodes the first keyframe, closes the session at once and writes the frame
as a JPEG on stdout (exit 0). When the camera cannot give a frame it writes
``{"error": "<reason>"}`` instead (exit 2); the reason never holds the credentials.

Why a child process: FFmpeg parses what an untrusted camera sends, and the agent carries
every tunnel; a crash or a hang here must cost one snapshot, not the tunnels. The agent
kills the child at the deadline, which tears the RTSP session down whatever FFmpeg was
doing, and the memory limit below bounds what a hostile stream can make it allocate.
"""

from __future__ import annotations

import errno
import json
import resource
import socket
import sys
import time
from fractions import Fraction

import av

from camgate.media.camera_source import SnapshotSource
from camgate.media.snapshots import EXIT_NO_FRAME

MEMORY_LIMIT = 1024 * 1024 * 1024  # address space; a 4K frame needs a few tens of MiB
MAX_JPEG_BYTES = 32 * 1024 * 1024
# FFmpeg reads a few seconds of stream to guess parameters by default; the decoder finds
# them in the keyframe anyway, so skip it (it cost 1.4 s per capture on a test camera).
# Only the video is set up: an audio track is one more stream the camera sends for
# nothing, and a stream without video is then known from its SDP at once, instead of
# after waiting out the timeout for audio packets to probe.
OPEN_OPTIONS = {"rtsp_transport": "tcp", "analyzeduration": "0", "probesize": "32", "allowed_media_types": "video"}
# Errors that say the camera cannot be reached, as against one that answered wrongly.
NETWORK_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ETIMEDOUT,
                            errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE})


class NoFrame(Exception):
    """The camera could not give a frame; the message is the reason."""


def _resolve(host: str, port: int) -> None:
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise NoFrame("unreachable: name not resolved") from None


def _open_failure(error: Exception, source: SnapshotSource, timed_out: bool, timeout: float) -> NoFrame:
    if timed_out:
        return NoFrame(f"unreachable: no answer within {timeout:g} s")
    if isinstance(error, (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError)):
        if not source.has_credentials:
            return NoFrame("auth failed: the camera wants credentials and none are stored")
        return NoFrame("auth failed: the camera refused the stored credentials")
    if isinstance(error, av.error.HTTPNotFoundError):
        return NoFrame("no stream: the camera has no stream at its RTSP path")
    if isinstance(error, av.error.ConnectionRefusedError):
        return NoFrame("unreachable: connection refused")
    if isinstance(error, av.error.InvalidDataError):
        return NoFrame("error: the camera's answer is not an RTSP stream FFmpeg can read")
    # strerror, not str(): str() carries the URL, credentials and all.
    reason = source.scrub(getattr(error, "strerror", None) or type(error).__name__)
    if isinstance(error, OSError) and error.errno in NETWORK_ERRNOS:
        return NoFrame(f"unreachable: {reason}")
    return NoFrame(f"error: {reason}")


def capture(source: SnapshotSource, deadline: float, timeout: float) -> bytes:
    _resolve(source.host, source.port)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise NoFrame(f"no frame within {timeout:g} s")
    try:
        container = av.open(source.url, options=OPEN_OPTIONS, timeout=(remaining, remaining))
    except Exception as error:
        raise _open_failure(error, source, time.monotonic() >= deadline - 0.05, timeout) from None
    try:
        frame = _first_keyframe(container, deadline, timeout)
    finally:
        container.close()  # TEARDOWN now: cameras allow few sessions
    return encode_jpeg(frame)


def _first_keyframe(container, deadline: float, timeout: float):
    if not container.streams.video:
        raise NoFrame("no video: the camera's stream has no video")
    stream = container.streams.video[0]
    stream.codec_context.thread_count = 1  # one frame: threads only cost memory
    started = False
    try:
        for packet in container.demux(stream):
            if time.monotonic() > deadline:
                break
            started = started or packet.is_keyframe
            if not started:
                continue  # a frame decoded from before the keyframe would be garbage
            for frame in packet.decode():
                return frame
    except av.error.FFmpegError as error:
        if time.monotonic() < deadline - 0.05:
            raise NoFrame(f"error: the stream ended before a frame ({error.strerror})") from None
    raise NoFrame(f"no frame within {timeout:g} s")


def encode_jpeg(frame) -> bytes:
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = frame.width, frame.height
    encoder.pix_fmt = "yuvj420p"  # full-range YUV, what JPEG viewers expect
    encoder.time_base = Fraction(1, 1)
    packets = encoder.encode(frame.reformat(format="yuvj420p")) + encoder.encode(None)
    return b"".join(bytes(packet) for packet in packets)


def main() -> int:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    request = json.loads(sys.stdin.buffer.read(64 * 1024))
    source = SnapshotSource(**request["source"])
    try:
        jpeg = capture(source, request["deadline"], request["timeout"])
        if len(jpeg) > MAX_JPEG_BYTES:
            raise NoFrame("error: the frame is too large")
    except NoFrame as failure:
        sys.stdout.write(json.dumps({"error": source.scrub(str(failure))}))
        return EXIT_NO_FRAME
    sys.stdout.buffer.write(jpeg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
