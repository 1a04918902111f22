"""What the relay must remember across restarts: devices and their public ports.

Kept in memory and, when a path is given, in one JSON file rewritten atomically after
every change: at once, or, when ``deferred_save`` is set (the relay's FileStore), by
the caller off the event loop, one write for all the changes made meanwhile (with 2000
devices the file is half a megabyte, and a write per forward's first port took minutes
of the event loop when they all connected at once). Access tokens are stored as issued,
because provisioning hands them out again; device passwords only as a SHA-256 digest,
because they are only ever compared.

What one device holds is bounded, so no device can use up the public port range by
connecting with new forward names again and again: the ports of its current forwards,
and those of the set it had before (the *previous* set, for a grace period, so a
configuration rolled back gets its ports back). Older ones are freed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

log = logging.getLogger(__name__)

STATE_VERSION = 2  # 2 added "released"; a version 1 file reads as all ports current
# How long a device keeps the ports of the forwards it no longer announces.
PREVIOUS_PORTS_GRACE_S = 3600.0


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Device:
    camid: int
    cmngrid: int
    access_token: str
    serial: str | None = None  # upper-cased, for provisioning
    password_sha256: str | None = None  # of the upper-cased password

    def __repr__(self) -> str:  # the token is a secret
        return f"Device(camid={self.camid}, cmngrid={self.cmngrid}, serial={self.serial!r})"

    def password_matches(self, password: str) -> bool:
        if self.password_sha256 is None:
            return False
        return hmac.compare_digest(self.password_sha256, _digest(password.upper()))


class Snapshot(NamedTuple):
    """The state at one moment, copied cheaply (shallow) to be written elsewhere."""

    devices: list[Device]
    ports: dict[str, int]
    released: dict[str, float]


class RelayStore:
    def __init__(
        self, path: str | os.PathLike[str] | None = None, previous_ports_grace: float = PREVIOUS_PORTS_GRACE_S
    ) -> None:
        self.path = Path(path) if path else None
        self.previous_ports_grace = previous_ports_grace
        self._devices: dict[int, Device] = {}
        # Looked up by digest so a presented token is never compared byte by byte.
        self._by_token: dict[str, int] = {}
        self._ports: dict[str, int] = {}
        # The keys in _ports of each device, so that a connecting tunnel's are found without
        # a scan of every device's (2000 devices reconnecting at once scanned for 0.5 s).
        self._keys: dict[int, list[str]] = {}
        # Keys of the previous set (in _ports too), with the wall-clock time they left
        # the device's forwards: wall clock, because it must mean the same after a restart.
        self._released: dict[str, float] = {}
        # Called instead of writing the file, when the owner writes it (see the module doc).
        self.deferred_save: Callable[[], None] | None = None
        if self.path is not None and self.path.exists():
            self._load()

    # --- devices -------------------------------------------------------------

    def devices(self) -> list[Device]:
        return sorted(self._devices.values(), key=lambda d: d.camid)

    def device(self, camid: int) -> Device | None:
        return self._devices.get(camid)

    def device_for_token(self, token: str) -> Device | None:
        camid = self._by_token.get(_digest(token))
        return self._devices.get(camid) if camid is not None else None

    def device_for_serial(self, serial: str, password: str) -> Device | None:
        serial = serial.upper()
        for device in self._devices.values():
            if device.serial == serial and device.password_matches(password):
                return device
        return None

    def put_device(
        self, camid: int, cmngrid: int, access_token: str, serial: str | None = None, password: str | None = None
    ) -> tuple[Device, bool]:
        """Add or re-issue a device; True when it is new. The old token stops working."""
        old = self._devices.get(camid)
        if old is not None:
            self._by_token.pop(_digest(old.access_token), None)
        if serial is not None:
            serial = serial.upper()
            for other in self._devices.values():
                if other.serial == serial and other.camid != camid:
                    other.serial = None  # a serial names one device; the newest wins
                    other.password_sha256 = None
        device = Device(
            camid=camid,
            cmngrid=cmngrid,
            access_token=access_token,
            serial=serial if serial is not None else (old.serial if old else None),
            password_sha256=(
                _digest(password.upper()) if password is not None else (old.password_sha256 if old else None)
            ),
        )
        self._devices[camid] = device
        self._by_token[_digest(access_token)] = camid
        self._save()
        return device, old is None

    def remove_device(self, camid: int) -> bool:
        device = self._devices.pop(camid, None)
        if device is None:
            return False
        self._by_token.pop(_digest(device.access_token), None)
        for key in self._keys_of(camid):
            self._forget_port(key)
        self._save()
        return True

    # --- stable public ports -----------------------------------------------------

    def port_for(self, camid: int, forward_name: str) -> int | None:
        return self._ports.get(f"{camid}/{forward_name}")

    def assign_port(self, camid: int, forward_name: str, port: int) -> None:
        key = f"{camid}/{forward_name}"
        if self._ports.get(key) == port:
            return
        if key not in self._ports:
            self._keys.setdefault(camid, []).append(key)
        self._ports[key] = port
        self._save()

    def ports_in_use(self, now: float | None = None) -> set[int]:
        """Ports some device holds: its current forwards' and, for the grace period, its
        previous set's."""
        now = time.time() if now is None else now
        expired = [k for k, since in self._released.items() if now - since >= self.previous_ports_grace]
        for key in expired:
            self._forget_port(key)
        if expired:
            self._save()
        return set(self._ports.values())

    def hold_forwards(self, camid: int, names: list[str] | tuple[str, ...], now: float | None = None) -> None:
        """``camid`` connects announcing forwards ``names``: keep their ports; if some
        forward it had is gone, the forwards it had become its previous set and the set
        before that is freed. Call before binding, so freed ports can be handed out."""
        now = time.time() if now is None else now
        current = {f"{camid}/{name}" for name in names}
        keys = self._keys_of(camid)
        leaving = [k for k in keys if k not in current and k not in self._released]
        changed = False
        if leaving:
            for key in keys:
                if key in self._released and key not in current:
                    self._forget_port(key)  # older than the previous set
            self._released.update(dict.fromkeys(leaving, now))
            changed = True
        for key in current:
            changed |= self._released.pop(key, None) is not None  # announced again: current
        if changed:
            self._save()

    def _keys_of(self, camid: int) -> list[str]:
        return list(self._keys.get(camid, ()))

    def _forget_port(self, key: str) -> None:
        if self._ports.pop(key, None) is not None:
            camid = int(key.partition("/")[0])
            keys = self._keys[camid]
            keys.remove(key)
            if not keys:
                del self._keys[camid]
        self._released.pop(key, None)

    # --- persistence ---------------------------------------------------------

    def _load(self) -> None:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_text("utf-8"))
            for item in data.get("devices", []):
                device = Device(**item)
                self._devices[device.camid] = device
                self._by_token[_digest(device.access_token)] = device.camid
            self._ports = {str(k): int(v) for k, v in data.get("ports", {}).items()}
            for key in self._ports:
                self._keys.setdefault(int(key.partition("/")[0]), []).append(key)
            self._released = {str(k): float(v) for k, v in data.get("released", {}).items() if k in self._ports}
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            # Refuse to start over an unreadable file: silently starting empty would
            # invalidate every device's token and port at the next save.
            raise RuntimeError(f"relay state file {self.path} is unreadable: {exc}") from exc

    def _save(self) -> None:
        if self.path is None:
            return
        if self.deferred_save is not None:
            self.deferred_save()
            return
        write_snapshot(self.path, self.snapshot())

    def snapshot(self) -> Snapshot:
        return Snapshot(list(self._devices.values()), dict(self._ports), dict(self._released))


def write_snapshot(path: Path, snapshot: Snapshot) -> None:
    """Write ``snapshot`` to the state file at ``path`` atomically (a temporary file,
    fsync'ed, renamed over it). Needs no event loop: may run in a thread."""
    data = {
        "version": STATE_VERSION,
        "devices": [dict(vars(d)) for d in sorted(snapshot.devices, key=lambda d: d.camid)],  # asdict, without its deep copy
        "ports": dict(sorted(snapshot.ports.items())),
        "released": dict(sorted(snapshot.released.items())),
    }
    # dumps, not dump: only the one-shot encoder is the C one (about 10 times faster).
    text = json.dumps(data, separators=(",", ":"))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".relay-state-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)  # it holds access tokens
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
