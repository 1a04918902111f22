"""`camgate uplink`, the drop-in for vxg-proxy-client: a real process with the reference
agent's arguments, against camgate's relay on loopback, carrying a TCP echo camera and a
GStreamer RTSP camera (probed with ffprobe)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from camgate.cli import main
from camgate.uplink.tokens import encode_access_token
from tests.support.cameras import RtspCamera, ffprobe_stream
from tests.support.processes import camgate_env, free_port

from .loopback import ADMIN_TOKEN, echo_through, wait_until


async def start_uplink(tmp_path: Path, *args: str, **env: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "camgate.cli", "uplink", *args,
        env=camgate_env(tmp_path / "no-data-dir-needed", **env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def public_ports(relay, camid: int) -> dict[str, int]:
    """The relay's answer for the device: forward name -> public port ({} without a tunnel)."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{relay.url}/api/device/{camid}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                            ssl=False) as r:
            if r.status != 200:
                return {}
            return {f["name"]: f["proxy_port"] for f in (await r.json())["forwards"]}


async def wait_for_ports(relay, camid: int, process: asyncio.subprocess.Process) -> dict[str, int]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while loop.time() < deadline:
        assert process.returncode is None, "camgate uplink exited"
        if ports := await public_ports(relay, camid):
            return ports
        await asyncio.sleep(0.05)
    raise AssertionError(f"camid {camid} never got a tunnel")


async def stop(process: asyncio.subprocess.Process, signum: int = signal.SIGTERM) -> tuple[int, str]:
    process.send_signal(signum)
    _, err = await asyncio.wait_for(process.communicate(), 15)
    return process.returncode, err.decode()


async def test_reference_arguments_tunnel_a_camera_through_camgates_relay(tmp_path, relay, camera):
    device, _ = await relay.issue_device(6001)
    token = device.access_token
    assert relay.uplink.startswith("127.0.0.1:")  # not 80 or 443: the token names the port
    cam = await camera()
    process = await start_uplink(tmp_path, "--http", "--token", token,
                                 "-f", f"rtsp:tcp:127.0.0.1:{cam.port}", "-f", f"http:http:[127.0.0.1]:{cam.port}")
    try:
        ports = await wait_for_ports(relay, 6001, process)
        assert set(ports) == {"rtsp", "http"}
        await echo_through(ports["rtsp"])
        await echo_through(ports["http"])
    finally:
        code, err = await stop(process)
    assert code == 0, err
    assert "stopping" in err
    assert token not in err
    await wait_until(lambda: relay.tunnel(6001) is None, 5, "the relay to see the tunnel closed")


async def test_token_from_the_environment_tunnels_an_rtsp_camera_for_ffprobe(tmp_path, relay):
    device, _ = await relay.issue_device(6002)
    rtsp = await asyncio.to_thread(lambda: RtspCamera(free_port(), 320, 240).start())
    process = await start_uplink(tmp_path, "--http", "-f", f"rtsp:tcp:127.0.0.1:{rtsp.port}",
                                 CAMGATE_UPLINK_TOKEN=device.access_token)
    try:
        ports = await wait_for_ports(relay, 6002, process)
        stream = await asyncio.to_thread(ffprobe_stream, f"rtsp://127.0.0.1:{ports['rtsp']}{rtsp.path}")
        assert (stream["width"], stream["height"]) == (320, 240)
    finally:
        code, err = await stop(process, signal.SIGINT)
        await asyncio.to_thread(rtsp.stop)
    assert code == 0, err
    assert device.access_token not in err


async def echo_then_stop(relay, camid: int, process: asyncio.subprocess.Process) -> str:
    """Echo through the forward named ``cam``, then SIGTERM: it exits 0; its stderr."""
    try:
        ports = await wait_for_ports(relay, camid, process)
        await echo_through(ports["cam"])
    finally:
        code, err = await stop(process)
    assert code == 0, err
    return err


async def wait_for_line(process: asyncio.subprocess.Process, text: str, timeout: float = 15) -> str:
    async with asyncio.timeout(timeout):
        while line := (await process.stderr.readline()).decode():
            if text in line:
                return line
    raise AssertionError(f"camgate uplink exited without saying {text!r}")


async def test_insecure_is_tls_without_checking_the_certificate(tmp_path, make_relay, camera, certificate):
    cert, key = certificate
    relay = await make_relay(tls_cert=cert, tls_key=key)
    device, _ = await relay.issue_device(6004)
    cam = await camera()
    forward = f"cam:tcp:127.0.0.1:{cam.port}"
    checking = await start_uplink(tmp_path, "-f", forward, CAMGATE_UPLINK_TOKEN=device.access_token)
    try:
        await wait_for_line(checking, "TLS certificate not trusted")
    finally:
        await stop(checking)
    insecure = await start_uplink(tmp_path, "--insecure", "-f", forward, CAMGATE_UPLINK_TOKEN=device.access_token)
    await echo_then_stop(relay, 6004, insecure)


async def test_serial_provisions_from_the_relay_named_by_the_environment(tmp_path, relay, camera):
    await relay.issue_device(6003, serial="BOX-7", password="aa:bb:cc:dd:ee:ff")
    cam = await camera()
    process = await start_uplink(tmp_path, "--http", "--serial", "box-7", "-f", f"cam:tcp:127.0.0.1:{cam.port}",
                                 CAMGATE_PROVISIONING_URL=relay.uplink, CAMGATE_UPLINK_PASSWORD="aa:bb:cc:dd:ee:ff")
    err = await echo_then_stop(relay, 6003, process)
    assert "aa:bb:cc:dd:ee:ff" not in err.lower()


async def test_a_token_the_relay_refuses_exits_0_saying_why(tmp_path, relay):
    token = encode_access_token({"camid": 6099, "cmngrid": 1, "uplink": relay.uplink, "token": "not-issued-here"})
    process = await start_uplink(tmp_path, "--http", "--token", token, "-f", "rtsp:tcp:127.0.0.1:554")
    _, err = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 0, err
    assert err.decode().splitlines()[-1] == "camgate uplink: invalid token"
    assert token not in err.decode()


def test_an_undecodable_token_exits_0_with_one_line(capsys):
    assert main(["uplink", "--token", "s3cret-not-base64", "-f", "rtsp:tcp:127.0.0.1:554"]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == ["camgate uplink: invalid token: token is not valid base64"]
    assert "s3cret" not in out + err


def usage_error(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(["uplink", *args])
    assert exit_.value.code == 2
    return capsys.readouterr().err.splitlines()[-1]


def test_eleven_forwards_is_a_usage_error_naming_the_extra_one(capsys):
    forwards = [arg for n in range(11) for arg in ("-f", f"f{n}:tcp:127.0.0.1:{1000 + n}")]
    line = usage_error(capsys, "--token", "T0KEN", *forwards)
    assert "at most 10 -f, got 11" in line and "'f10:tcp:127.0.0.1:1010'" in line
    assert "T0KEN" not in line


@pytest.mark.parametrize("forward, why", [
    ("rtsp:tcp:camera", "not name:protocol:host:port"),
    ("rtsp:udp:camera:554", "'udp' is not one of"),
    ("rtsp:tcp:camera:0", "not in 1..65535"),
])
def test_a_malformed_forward_is_a_usage_error_naming_it(capsys, forward, why):
    line = usage_error(capsys, "--token", "T0KEN", "-f", "http:http:camera:80", "-f", forward)
    assert repr(forward) in line and why in line


def test_usage_errors_for_what_is_missing_or_repeated(capsys, monkeypatch):
    monkeypatch.delenv("CAMGATE_UPLINK_TOKEN", raising=False)
    monkeypatch.delenv("CAMGATE_UPLINK_SERIAL", raising=False)
    assert "--token or --serial is required" in usage_error(capsys, "-f", "a:tcp:h:1")
    assert "at least one -f" in usage_error(capsys, "--token", "T0KEN")
    assert "unique: a" in usage_error(capsys, "--token", "T0KEN", "-f", "a:tcp:h:1", "-f", "a:tcp:h:2")
    assert "not allowed with" in usage_error(capsys, "--token", "T0KEN", "--serial", "S", "-f", "a:tcp:h:1")
