"""Run the real deploy/nginx.conf under Debian's nginx, for tests.

Only ports and paths change, each by a plain text substitution that must match exactly
as often as expected: if deploy/nginx.conf changes shape, the tests fail here instead
of quietly testing something else.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "deploy" / "nginx.conf"
NGINX_BINARY_FALLBACK = Path("/usr/sbin/nginx")
TEMP_PATH_DIRECTIVES = ("client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path")

# What the real file says, and how often.
LISTEN = ("listen 80;", 1)
UPSTREAM = ("http://web:8000", 1)
STATIC_ALIAS = ("alias /var/cache/camgate/static/;", 1)
LOG_DIR = ("/var/log/nginx/", 2)
HTTP_BLOCK = ("http {\n", 1)


class TemplateMismatch(AssertionError):
    pass


def nginx_binary() -> str:
    """Debian's nginx; a missing nginx is a failure, not a skip (CI installs it)."""
    found = shutil.which("nginx") or (str(NGINX_BINARY_FALLBACK) if NGINX_BINARY_FALLBACK.exists() else None)
    if not found:
        raise RuntimeError("nginx is not installed (Debian package nginx-light; .ci/run installs it)")
    return found


def substitute(text: str, expected: tuple[str, int], new: str) -> str:
    old, count = expected
    found = text.count(old)
    if found != count:
        raise TemplateMismatch(f"deploy/nginx.conf: expected {old!r} {count} time(s), found {found}")
    return text.replace(old, new)


def render(listen_port: int, upstream: str, static_root: Path, work_dir: Path, text: str | None = None) -> str:
    """deploy/nginx.conf (or TEXT) listening on loopback LISTEN_PORT, proxying to
    UPSTREAM (host:port), serving STATIC_ROOT, with logs and temporary files in WORK_DIR."""
    text = NGINX_CONF.read_text() if text is None else text
    text = substitute(text, LISTEN, f"listen 127.0.0.1:{listen_port};")
    text = substitute(text, UPSTREAM, f"http://{upstream}")
    text = substitute(text, STATIC_ALIAS, f"alias {static_root}/;")
    text = substitute(text, LOG_DIR, f"{work_dir}/")
    temp_paths = "".join(f"    {name} {work_dir}/{name};\n" for name in TEMP_PATH_DIRECTIVES)
    return substitute(text, HTTP_BLOCK, "http {\n" + temp_paths)


@dataclass
class NginxProcess:
    process: subprocess.Popen
    work_dir: Path
    port: int

    def error_log(self) -> str:
        return "".join(path.read_text(errors="replace") for path in sorted(self.work_dir.glob("*error*.log")))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_nginx(conf_text: str, work_dir: Path, port: int, timeout: float = 10.0) -> NginxProcess:
    """Start nginx in the foreground with its own prefix, pid file and logs in WORK_DIR."""
    work_dir.mkdir(parents=True, exist_ok=True)
    conf = work_dir / "nginx.conf"
    conf.write_text(conf_text)
    directives = f"daemon off; pid {work_dir}/nginx.pid;"
    if os.geteuid() == 0:
        # As root, nginx drops its workers to `nobody`, who cannot read pytest's private
        # temporary directories; the real installs keep their default user.
        directives += " user root;"
    binary = nginx_binary()
    base = [binary, "-p", f"{work_dir}/", "-e", f"{work_dir}/startup-error.log", "-c", str(conf), "-g", directives]
    check = subprocess.run([*base, "-t", "-q"], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"nginx rejected the rendered config:\n{check.stderr}{conf_text}")
    with open(work_dir / "nginx.out", "ab") as log:
        process = subprocess.Popen(base, stdout=log, stderr=subprocess.STDOUT)
    nginx = NginxProcess(process, work_dir, port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}:\n{nginx.error_log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return nginx
        except OSError:
            time.sleep(0.05)
    nginx.stop()
    raise TimeoutError(f"nginx did not listen on {port} within {timeout} s:\n{nginx.error_log()}")
