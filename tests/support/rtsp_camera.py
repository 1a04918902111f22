"""A real RTSP camera for tests: GStreamer's RTSP server serving a test pattern.

Run by Debian's system Python (which has the GStreamer bindings), not the project's:
    /usr/bin/python3 tests/support/rtsp_camera.py PORT WIDTH HEIGHT
        [--mount /stream] [--codec mjpeg|h264] [--user NAME --password SECRET [--basic]]
It serves rtsp://127.0.0.1:PORT<mount> (default /stream) as Motion JPEG (plugins-good)
or H.264 (openh264, with the SPS in the SDP), optionally behind a login (Digest unless
--basic), and prints "ready" once it listens.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

ENCODERS = {
    "mjpeg": "jpegenc quality=60 ! rtpjpegpay name=pay0 pt=26",
    "h264": "openh264enc gop-size=15 ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1",
}


def arguments():
    parser = argparse.ArgumentParser()
    parser.add_argument("port")
    parser.add_argument("width", type=int)
    parser.add_argument("height", type=int)
    parser.add_argument("--mount", default="/stream")
    parser.add_argument("--codec", choices=sorted(ENCODERS), default="mjpeg")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--basic", action="store_true")
    return parser.parse_args()


def require_login(server, factory, user: str, password: str, basic: bool) -> None:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
    if basic:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    else:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(user, password, token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role("viewer", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
    permissions.add_permission_for_role("viewer", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
    factory.set_permissions(permissions)


def main() -> None:
    args = arguments()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(args.port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width={args.width},"
        f"height={args.height},framerate=15/1 ! {ENCODERS[args.codec]} )"
    )
    factory.set_shared(True)
    if args.user:
        require_login(server, factory, args.user, args.password or "", args.basic)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {args.port}", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
