"""A real virtual ONVIF camera for tests: ipycam, in a network namespace of its own.

    with onvif_camera(username="admin", password="secret") as camera:
        camera.ip, camera.onvif_port, camera.rtsp_url ...

ipycam (from PyPI) answers WS-Discovery on the fixed UDP port 3702, ONVIF's device and
media services over HTTP (WS-Security UsernameToken when it has credentials), a JPEG
snapshot, and RTSP (H.264 by FFmpeg, no login). Each camera runs in a network namespace
of its own (`unshare --net`), joined to this one by a veth pair on a /30 of
10.250.0.0/16, so any number of cameras (pytest-xdist workers, other test files) can
listen on 3702 at once, each reachable from the tests at its own address. Needs root.

Discovery from the tests' namespace reaches exactly one camera when it is limited to
`camera.interface` (CAMGATE_DISCOVERY_INTERFACES) or to `camera.ip` / `camera.network`.

Stopping the camera deletes the veth pair and ends the process; its namespace goes with
it. The camera process also exits when its stdin closes, so a test run that dies leaves
neither a process nor an interface behind for long.

Two departures of ipycam 1.3 from what real cameras do are mended in the camera process:
it has no GetNetworkInterfaces (where a camera's MAC comes from), added here to answer the
MAC of its own interface; and it asks a login for GetSystemDateAndTime, which ONVIF
answers to anyone (a client needs the camera's clock to date its login), let through here.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

CAMERAS_NETWORK = ipaddress.ip_network("10.250.0.0/16")
ALLOCATION_LOCK = Path(tempfile.gettempdir()) / "camgate-onvif-camera-netns.lock"
INTERFACE_PREFIX = "cgonvif"
CAMERA_INTERFACE = "eth0"


@dataclass(frozen=True)
class VirtualOnvifCamera:
    ip: str  # the camera's address, reachable from the tests
    network: str  # the /30 it shares with the tests' end of the veth pair
    interface: str  # the tests' end of the veth pair (for CAMGATE_DISCOVERY_INTERFACES)
    host_ip: str  # the tests' address on that interface
    onvif_port: int
    rtsp_port: int
    rtsp_path: str
    snapshot_path: str
    username: str
    password: str
    name: str
    manufacturer: str
    model: str
    firmware: str
    serial: str
    mac: str
    width: int
    height: int
    pid: int  # the camera process (its process group has the same id)

    @property
    def rtsp_url(self) -> str:
        return f"rtsp://{self.ip}:{self.rtsp_port}{self.rtsp_path}"

    @property
    def onvif_url(self) -> str:
        return f"http://{self.ip}:{self.onvif_port}/onvif/device_service"


@contextlib.contextmanager
def onvif_camera(
    username: str = "",
    password: str = "",
    *,
    name: str = "Lobby%20Camera",  # a scope value: URL-encoded, as cameras send it
    serial: str = "IPYCAM-0001",
    width: int = 320,
    height: int = 240,
    fps: int = 10,
    onvif_port: int = 8080,
    rtsp_port: int = 8554,
    clock_offset: float = 0.0,
    start_timeout: float = 30.0,
) -> Iterator[VirtualOnvifCamera]:
    """Start an ipycam (WS-Security on when both username and password are given).
    ``clock_offset`` seconds are added to the camera's clock, as its ONVIF services see
    it (GetSystemDateAndTime, and the freshness check of WS-Security tokens)."""
    process = subprocess.Popen(
        ["unshare", "--net", "--", sys.executable, str(Path(__file__).resolve()), "--child"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    interface = None
    try:
        _expect(lines, "namespace", start_timeout)
        interface, host_ip, camera_ip, network = _link_namespace(process.pid)
        settings = {
            "ip": camera_ip, "prefix": network.prefixlen, "gateway": host_ip,
            "username": username, "password": password, "name": name, "serial": serial,
            "width": width, "height": height, "fps": fps,
            "onvif_port": onvif_port, "rtsp_port": rtsp_port, "clock_offset": clock_offset,
        }
        process.stdin.write(json.dumps(settings) + "\n")
        process.stdin.flush()
        facts = json.loads(_expect(lines, "ready ", start_timeout)[len("ready "):])
        yield VirtualOnvifCamera(
            ip=camera_ip, network=str(network), interface=interface, host_ip=host_ip,
            onvif_port=onvif_port, rtsp_port=rtsp_port, username=username,
            password=password, width=width, height=height, pid=process.pid, **facts,
        )
    finally:
        if interface:
            subprocess.run(["ip", "link", "del", interface], capture_output=True)
        _stop(process)


def _expect(lines: queue.Queue, prefix: str, timeout: float) -> str:
    """The first line of the camera's output that starts with prefix (its log lines
    before it are skipped); fails with what it said when it exits or takes too long."""
    deadline = time.monotonic() + timeout
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:  # it exited
            break
        if line.startswith(prefix):
            return line.strip()
        seen.append(line)
    raise RuntimeError(f"the virtual ONVIF camera did not say {prefix!r}: {''.join(seen)[-2000:]}")


def _read_lines(stream, lines: queue.Queue) -> None:
    # Read to the end, always: whatever it prints (FFmpeg, for one) must not fill the
    # pipe and stall it.
    for line in stream:
        lines.put(line)
    lines.put(None)


def _link_namespace(pid: int) -> tuple[str, str, str, ipaddress.IPv4Network]:
    """A veth pair between this namespace and the camera's, on a /30 no other camera
    uses (the lock orders concurrent starts, the address list shows live pairs)."""
    ALLOCATION_LOCK.touch(exist_ok=True)
    with open(ALLOCATION_LOCK) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        taken = _addresses_in_use()
        for index, network in enumerate(CAMERAS_NETWORK.subnets(new_prefix=30)):
            host_ip, camera_ip = list(network.hosts())
            if host_ip not in taken:
                break
        else:
            raise RuntimeError(f"every /30 of {CAMERAS_NETWORK} is in use")
        interface = f"{INTERFACE_PREFIX}{index}"
        _ip("link", "add", interface, "type", "veth", "peer", "name", CAMERA_INTERFACE, "netns", str(pid))
        _ip("addr", "add", f"{host_ip}/30", "dev", interface)
        _ip("link", "set", interface, "up")
    return interface, str(host_ip), str(camera_ip), network


def _addresses_in_use() -> set[ipaddress.IPv4Address]:
    listing = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in listing.splitlines():
        fields = line.split()
        if "inet" in fields:
            found.add(ipaddress.ip_interface(fields[fields.index("inet") + 1]).ip)
    return found


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(BrokenPipeError, OSError):
            process.stdin.close()  # the camera stops itself when its stdin closes
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


# ---- the camera process (in its own network namespace) ----


def _camera_main() -> None:
    print("namespace", flush=True)
    settings = json.loads(sys.stdin.readline())
    for command in (
        ["link", "set", "lo", "up"],
        ["addr", "add", f"{settings['ip']}/{settings['prefix']}", "dev", CAMERA_INTERFACE],
        ["link", "set", CAMERA_INTERFACE, "up"],
        ["route", "add", "default", "via", settings["gateway"]],
    ):
        _ip(*command)
    camera = _start_ipycam(settings)
    config = camera.config
    facts = {
        "name": config.name, "manufacturer": config.manufacturer, "model": config.model,
        "firmware": config.firmware_version, "serial": config.serial_number,
        "mac": _own_mac(),
        "rtsp_path": f"/{config.main_stream_name}", "snapshot_path": f"/{config.snapshot_url}",
    }
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    _feed_frames(camera, stop, on_first_frame=lambda: print("ready " + json.dumps(facts), flush=True))
    camera.stop()


def _own_mac() -> str:
    # Not /sys/class/net: that sysfs was mounted by the tests' namespace, not this one.
    listing = subprocess.run(["ip", "-j", "link", "show", CAMERA_INTERFACE], capture_output=True, check=True)
    return json.loads(listing.stdout)[0]["address"]


def _start_ipycam(settings: dict):
    from ipycam import CameraConfig, IPCamera

    config = CameraConfig(
        name=settings["name"], serial_number=settings["serial"], local_ip=settings["ip"],
        onvif_port=settings["onvif_port"], rtsp_port=settings["rtsp_port"],
        main_width=settings["width"], main_height=settings["height"], main_fps=settings["fps"],
        main_bitrate="500K", sub_width=settings["width"] // 2, sub_height=settings["height"] // 2,
        sub_fps=settings["fps"], sub_bitrate="200K", hw_accel="cpu",
        username=settings["username"], password=settings["password"],
    )
    camera = IPCamera(config)
    _answer_network_interfaces(camera.onvif)
    _answer_the_time_to_anyone(camera.onvif)
    if settings["clock_offset"]:
        _shift_onvif_clock(settings["clock_offset"])
    if not camera.start():
        sys.exit("ipycam did not start")
    return camera


def _answer_network_interfaces(service) -> None:
    mac = _own_mac()
    answer = (
        "<tds:GetNetworkInterfacesResponse>"
        '<tds:NetworkInterfaces token="eth0"><tt:Enabled>true</tt:Enabled>'
        f"<tt:Info><tt:Name>eth0</tt:Name><tt:HwAddress>{mac}</tt:HwAddress></tt:Info>"
        "</tds:NetworkInterfaces></tds:GetNetworkInterfacesResponse>"
    )
    original = service.handle_action

    def handle_action(action: str, body: str):
        if "GetNetworkInterfaces" in (action or body):
            return service._wrap_envelope(answer)
        return original(action, body)

    service.handle_action = handle_action


def _answer_the_time_to_anyone(service) -> None:
    checked = service.verify_usernametoken

    def verify_usernametoken(body: str) -> bool:
        return "GetSystemDateAndTime" in body or checked(body)

    service.verify_usernametoken = verify_usernametoken


def _shift_onvif_clock(offset: float) -> None:
    """A camera whose clock is wrong: ipycam's ONVIF module reads the time through these two names."""
    import types
    from datetime import datetime, timedelta

    import ipycam.onvif

    class ShiftedDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(seconds=offset)

    ipycam.onvif.datetime = ShiftedDatetime
    ipycam.onvif.time = types.SimpleNamespace(gmtime=lambda: time.gmtime(time.time() + offset))


def _feed_frames(camera, stop, on_first_frame) -> None:
    import numpy as np

    config = camera.config
    frame = np.zeros((config.main_height, config.main_width, 3), dtype=np.uint8)
    column = 0
    while not stop.is_set() and camera.is_running:
        frame[:] = (40, 30, 20)
        frame[:, column : column + 16] = (0, 200, 255)  # a moving bar: the stream changes
        column = (column + 8) % config.main_width
        camera.stream(frame)  # paces itself to the configured frame rate
        if on_first_frame:  # a snapshot has a frame to show from now on
            on_first_frame()
            on_first_frame = None


if __name__ == "__main__" and sys.argv[1:] == ["--child"]:
    _camera_main()
