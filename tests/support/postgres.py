"""A real PostgreSQL server for tests: Debian's server binaries, initdb into a temporary
directory, run as an unprivileged user (the server refuses to run as root), listening on
a free loopback port. Trust authentication: nothing but this machine can reach it."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .processes import free_port

SERVER_USER = "nobody"  # whom the server runs as when the tests run as root


def find_bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="camgate-pg-"))
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        # Popen's user/group (not runuser, which would not pass our signals on).
        self._as_user: dict = {}
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            self._as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        self._run([str(bin_dir / "initdb"), "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust",
                   "--no-sync", "-E", "UTF8"])

    def _run(self, args: list[str]) -> None:
        subprocess.run(args, check=True, capture_output=True, cwd=self.dir, **self._as_user)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 20.0) -> None:
        log = open(self.dir / "server.log", "ab")  # noqa: SIM115 - the server writes it
        os.chmod(self.dir / "server.log", 0o666)
        self.process = subprocess.Popen(
            [str(self.bin_dir / "postgres"), "-D", str(self.dir / "data"), "-h", "127.0.0.1",
             "-p", str(self.port), "-k", str(self.dir), "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=100"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, **self._as_user,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while subprocess.run([str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"]
                             ).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: {(self.dir / 'server.log').read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        """A fast shutdown: sessions are ended, as when an operator stops the database."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(20)
        self.process = None

    def create_database(self, name: str) -> str:
        subprocess.run([str(self.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        name], check=True, capture_output=True)
        return self.dsn(name)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
