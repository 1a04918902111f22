"""The virtual ONVIF camera of tests/support/onvif_camera.py: open without credentials
(WS-Security off), and gone, process and interface, once stopped."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest

from camgate.onvif.device import read_device
from tests.support.onvif_camera import onvif_camera

pytestmark = pytest.mark.e2e


def test_an_open_camera_is_read_without_a_login_and_leaves_nothing_behind():
    with onvif_camera() as camera:
        facts = asyncio.run(read_device(camera.ip, camera.onvif_port, "", ""))
        assert (facts.serial, facts.mac, facts.rtsp_path) == (camera.serial, camera.mac, camera.rtsp_path)
        assert subprocess.run(["ip", "link", "show", camera.interface], capture_output=True).returncode == 0
    with pytest.raises(ProcessLookupError):
        os.killpg(camera.pid, 0)  # no process left in the camera's group (ipycam, its FFmpeg encoders)
    assert subprocess.run(["ip", "link", "show", camera.interface], capture_output=True).returncode != 0
