"""The virtual ONVIF camera of tests/support/onvif_camera.py: open without credentials
(WS-Security off), and gone, process and interface, once stopped."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from camgate.onvif.device import read_device
from tests.support.onvif_camera import onvif_camera

pytestmark = pytest.mark.e2e


def test_an_open_camera_is_read_without_a_login_and_leaves_nothing_behind():
    with onvif_camera() as camera:
        facts = asyncio.run(read_device(camera.ip, camera.onvif_port, "", ""))
        assert (facts.serial, facts.mac, facts.rtsp_path) == (camera.serial, camera.mac, camera.rtsp_path)
        ifindex = interface_index(camera.interface)
        assert ifindex is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(camera.pid, 0)  # no process left in the camera's group (ipycam, its FFmpeg encoders)
    # Gone; a camera another test process started meanwhile may reuse the name, not the link.
    assert interface_index(camera.interface) != ifindex


def interface_index(name: str) -> int | None:
    try:
        return int(Path(f"/sys/class/net/{name}/ifindex").read_text())
    except FileNotFoundError:
        return None
