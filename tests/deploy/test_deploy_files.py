"""The deployment files agree with each other, with the code and with the README.

Docker cannot run here (nor in CI), so the compose file and the Dockerfile are checked
as data: every file they name exists, the data directory is one named volume shared by
web and agent, ports and paths line up across compose, nginx.conf, the units and the
README.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from camgate import config
from camgate.agent.plan import UplinkSettings
from tests.deploy.nginx_template import NGINX_CONF, TemplateMismatch, render
from tests.deploy.support import DEPLOY, REPO

COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
ENV_EXAMPLE = DEPLOY / ".env.example"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
SYSTEMD = DEPLOY / "systemd"
README = REPO / "README.md"

RELAY_SETTINGS = {"CAMGATE_UPLINK_HOST", "CAMGATE_UPLINK_TLS", "CAMGATE_PROVISIONING_URL", "CAMGATE_RELAY_ADMIN_TOKEN", "CAMGATE_SSH_PORT"}
DEPLOYMENT_SETTINGS = {"CAMGATE_STATIC_ROOT", "CAMGATE_WEB_HOST", "CAMGATE_WEB_PORT", "CAMGATE_WEB_TUNNEL_PORT",
                       "CAMGATE_SCHEMA_WAIT_SECONDS"}


# --- small readers ---------------------------------------------------------------------

def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def interpolated_default(value: str) -> str:
    """What compose makes of ${VAR:-default} when VAR is unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


def build_context(service: dict) -> Path:
    return (COMPOSE_FILE.parent / service["build"]["context"]).resolve()


def dockerfile_stages() -> list[dict]:
    """Each stage: its base image and its instructions as (keyword, argument words)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stages.append({"from": rest.split()[0], "instructions": []})
        else:
            stages[-1]["instructions"].append((keyword, rest.strip()))
    return stages


def dockerfile_env(stage: dict) -> dict:
    env = {}
    for keyword, rest in stage["instructions"]:
        if keyword == "ENV":
            for word in shlex.split(rest):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def volume_mounts(service: dict) -> dict[str, tuple[str, bool]]:
    """target -> (source, read-only) for short-syntax volumes."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *options = entry.split(":")
        mounts[target] = (source, "ro" in options)
    return mounts


def nginx_conf() -> str:
    return NGINX_CONF.read_text()


def nginx_static_root() -> str:
    return re.search(r"location /static/ \{\s*alias (\S+?)/?;", nginx_conf()).group(1)


def nginx_upstream() -> tuple[str, int]:
    host, port = re.search(r"set \$camgate_web http://([\w.-]+):(\d+);", nginx_conf()).groups()
    return host, int(port)


def readme_section() -> str:
    text = README.read_text()
    match = re.search(r"^## Production install\n(.*?)(?=^## )", text, re.M | re.S)
    assert match, "README lost its '## Production install' section"
    return match.group(1)


def readme_services() -> dict[str, tuple[int | None, bool]]:
    """service -> (port, published) from the section's table."""
    services = {}
    for name, port in re.findall(r"^\| `(\w+)` \| ([^|]+) \|", readme_section(), re.M):
        number = re.search(r"\d+", port)
        services[name] = (int(number.group()) if number else None, "published" in port)
    return services


def unit(name: str) -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    for line in (SYSTEMD / name).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            entries.setdefault(key.strip(), []).append(value.strip())
    return entries


# --- compose and Dockerfile ------------------------------------------------------------

def test_services_and_restart_policies():
    services = compose()["services"]
    assert set(services) == {"nginx", "web", "agent"}
    assert {name: service.get("restart") for name, service in services.items()} == dict.fromkeys(services, "unless-stopped")
    assert services["web"]["command"] == ["web"] and services["agent"]["command"] == ["agent"]
    # One image for both: same build, same tag.
    assert services["web"]["build"] == services["agent"]["build"]
    assert services["web"]["image"] == services["agent"]["image"]


def test_every_referenced_file_exists():
    spec = compose()
    for name in ("web", "agent"):
        service = spec["services"][name]
        context = build_context(service)
        assert (context / service["build"]["dockerfile"]).resolve() == DOCKERFILE
        env_file = COMPOSE_FILE.parent / service["env_file"]
        # deploy/.env is the operator's copy of .env.example, never committed.
        assert env_file.exists() or env_file.with_name(env_file.name + ".example").exists(), env_file
    for source, _ in volume_mounts(spec["services"]["nginx"]).values():
        if source.startswith("."):
            assert (COMPOSE_FILE.parent / source).exists(), source
    context = build_context(spec["services"]["web"])
    ignored = [line.strip() for line in (context / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")]
    copied = []
    for stage in dockerfile_stages():
        for keyword, rest in stage["instructions"]:
            if keyword in ("COPY", "ADD"):
                words = [word for word in rest.split() if not word.startswith("--")]
                if "--from=" in rest:
                    continue
                copied += words[:-1]
    assert {"pyproject.toml", "README.md", "src", "deploy/entrypoint.sh"} <= set(copied)
    for source in copied:
        assert (context / source).exists(), f"COPY {source}: no such file in the build context"
        assert not any(fnmatch.fnmatch(source, pattern) or source.startswith(pattern.rstrip("/") + "/") for pattern in ignored), \
            f"COPY {source} is excluded by .dockerignore"


def test_dockerfile_builds_a_non_root_app_image():
    final = dockerfile_stages()[-1]
    assert final["from"] == "python:3.11-slim"
    keywords = dict(final["instructions"])
    assert keywords["USER"] not in ("root", "0")
    assert keywords["ENTRYPOINT"] == '["camgate-entrypoint"]'
    assert any(keyword == "COPY" and rest.endswith("deploy/entrypoint.sh /usr/local/bin/camgate-entrypoint") for keyword, rest in final["instructions"])
    runs = [rest for stage in dockerfile_stages() for keyword, rest in stage["instructions"] if keyword == "RUN"]
    # The image ships the locked versions, and camgate itself resolves nothing more.
    assert any("--require-hashes -r requirements/runtime.txt" in rest for rest in runs)
    assert any("pip install --no-deps ." in rest for rest in runs)
    assert not any(rest.rstrip().endswith("pip install .") for rest in runs)


def test_data_directory_is_one_named_volume_for_web_and_agent():
    spec = compose()
    env = dockerfile_env(dockerfile_stages()[-1])
    data_dir = env["CAMGATE_DATA_DIR"]
    sources = set()
    for name in ("web", "agent"):
        service = spec["services"][name]
        assert service["environment"]["CAMGATE_DATA_DIR"] == data_dir
        source, read_only = volume_mounts(service)[data_dir]
        assert not read_only
        sources.add(source)
    (volume,) = sources
    assert "/" not in volume and not volume.startswith(".")  # a named volume, not a bind mount
    declared = spec["volumes"][volume]
    # External with a fixed name: `docker compose down -v` or another project name
    # cannot delete or orphan the gateway's data.
    assert declared == {"external": True, "name": volume}
    assert f"docker volume create {volume}" in readme_section()


def test_static_files_flow_from_web_to_nginx():
    spec = compose()
    static_root = nginx_static_root()
    assert dockerfile_env(dockerfile_stages()[-1])["CAMGATE_STATIC_ROOT"] == static_root
    assert spec["services"]["web"]["environment"]["CAMGATE_STATIC_ROOT"] == static_root
    web_source, web_ro = volume_mounts(spec["services"]["web"])[static_root]
    nginx_source, nginx_ro = volume_mounts(spec["services"]["nginx"])[static_root]
    assert web_source == nginx_source and not web_ro and nginx_ro
    assert volume_mounts(spec["services"]["nginx"])["/etc/nginx/nginx.conf"] == ("./nginx.conf", True)


def test_ports_match_the_readme_and_nginx_conf():
    services = compose()["services"]
    published = {name: [interpolated_default(port).split(":") for port in service.get("ports", [])] for name, service in services.items()}
    assert published["web"] == [] and published["agent"] == []  # never publish 8000: see TRUSTED_PROXIES
    ((host_port, container_port),) = published["nginx"]
    assert re.search(rf"^\s*listen {container_port};", nginx_conf(), re.M)
    upstream_host, upstream_port = nginx_upstream()
    assert upstream_host == "web"
    assert services["web"]["expose"] == [str(upstream_port), services["web"]["environment"]["CAMGATE_WEB_TUNNEL_PORT"]]
    assert services["web"]["environment"]["CAMGATE_WEB_PORT"] == str(upstream_port)
    assert readme_services() == {"nginx": (int(host_port), True), "web": (upstream_port, False), "agent": (None, False)}


def test_health_checks_and_trusted_proxies():
    spec = compose()
    services = spec["services"]
    for name in ("web", "agent"):
        assert services[name]["healthcheck"]["test"] == ["CMD", "python", "-m", "camgate.health", name]
        # Django trusts exactly the compose network, where nginx is.
        subnet = spec["networks"]["default"]["ipam"]["config"][0]["subnet"]
        assert services[name]["environment"]["CAMGATE_TRUSTED_PROXIES"] == subnet
    assert "/nginx-health" in " ".join(services["nginx"]["healthcheck"]["test"])
    assert "location = /nginx-health" in nginx_conf()
    assert services["nginx"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_the_gateway_tunnel_reaches_the_web_servers_tunnel_port_in_every_install(monkeypatch):
    """The agent delivers internet users from its own address, which the web server's
    main port trusts as a proxy's (loopback; compose's subnet): the gateway tunnel's web
    forward must name the tunnel port, where nothing they say is believed."""
    services = compose()["services"]
    web, agent = services["web"]["environment"], services["agent"]["environment"]
    assert (agent["CAMGATE_GATEWAY_HTTP_HOST"], agent["CAMGATE_GATEWAY_HTTP_PORT"]) == ("web", web["CAMGATE_WEB_TUNNEL_PORT"])
    assert web["CAMGATE_WEB_TUNNEL_PORT"] != web["CAMGATE_WEB_PORT"]

    web_command = shlex.split(unit("camgate-web.service")["ExecStart"][-1])
    agent_command = shlex.split(unit("camgate-agent.service")["ExecStart"][-1])
    assert "CAMGATE_WEB_TUNNEL_PORT=8001" in web_command and "CAMGATE_WEB_PORT=8000" in web_command
    assert {"CAMGATE_GATEWAY_HTTP_HOST=127.0.0.1", "CAMGATE_GATEWAY_HTTP_PORT=8001"} <= set(agent_command)

    # Without any setting, `camgate agent` aims where `camgate web` and the entrypoint listen.
    monkeypatch.delenv("CAMGATE_GATEWAY_HTTP_PORT", raising=False)
    defaults = {setting.name: setting.default for setting in config.SETTINGS}
    assert defaults["CAMGATE_GATEWAY_HTTP_PORT"] == "8001" == str(UplinkSettings.from_environment().gateway_http_port)
    assert '--tunnel-port "${CAMGATE_WEB_TUNNEL_PORT:-8001}"' in ENTRYPOINT.read_text()


# --- settings ---------------------------------------------------------------------------

def documented_settings() -> dict[str, str]:
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"#? ?([A-Z][A-Z0-9_]*)=(.*)", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def test_env_example_documents_every_setting():
    documented = documented_settings()
    compose_variables = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    expected = {setting.name for setting in config.SETTINGS} | RELAY_SETTINGS | DEPLOYMENT_SETTINGS | compose_variables
    assert expected - set(documented) == set()
    for setting in config.SETTINGS:
        if setting.default and not setting.default.startswith(("per-user", "generated", "host name")):
            assert documented[setting.name] == setting.default, setting.name


def test_env_example_reads_the_same_in_compose_systemd_and_dotenv():
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        pytest.fail(f"an active line in .env.example sets a value for everyone who copies it: {line!r}")
    for name, value in documented_settings().items():
        assert not re.search(r"[\s'\"]", value), f"{name}: quotes and spaces parse differently in compose, systemd and dotenv"
    assert subprocess.run(["git", "check-ignore", "-q", "deploy/.env"], cwd=REPO).returncode == 0


# --- nginx.conf ---------------------------------------------------------------------

def test_nginx_body_limit_matches_max_body_bytes():
    from django.conf import settings

    size = re.search(r"client_max_body_size (\d+)([km]?);", nginx_conf())
    number, unit_suffix = int(size.group(1)), size.group(2)
    limit = number * {"": 1, "k": 1024, "m": 1024 * 1024}[unit_suffix]
    assert limit == settings.MAX_BODY_BYTES == int(next(s.default for s in config.SETTINGS if s.name == "CAMGATE_MAX_BODY_BYTES"))
    assert f"Request body is larger than {limit} bytes." in nginx_conf()


@pytest.mark.parametrize("change", [
    lambda text: text.replace("listen 80;", "listen 80;\n        listen 80;"),
    lambda text: text.replace("http://web:8000", "http://camgate-web:8000"),
    lambda text: text.replace("alias /var/cache/camgate/static/;", "root /srv;"),
    lambda text: text.replace("/var/log/nginx/error.log", "stderr"),
])
def test_nginx_template_fails_when_the_file_changes_shape(change, tmp_path):
    render(1, "127.0.0.1:2", tmp_path, tmp_path)  # the real file renders
    with pytest.raises(TemplateMismatch):
        render(1, "127.0.0.1:2", tmp_path, tmp_path, text=change(nginx_conf()))


# --- systemd ------------------------------------------------------------------------

@pytest.mark.parametrize("service", ["web", "agent"])
def test_systemd_units(service):
    entries = unit(f"camgate-{service}.service")
    single = {key: values[-1] for key, values in entries.items()}
    assert single["User"] == "camgate" and single["EnvironmentFile"] == "/etc/camgate/camgate.env"
    assert single["NoNewPrivileges"] == "yes" and single["ProtectSystem"] == "strict"
    assert "/var/lib/camgate" in single["ReadWritePaths"].split()
    assert single["StateDirectory"] == "camgate"
    assert single["Restart"] == "always"
    assert single["PartOf"] == "camgate.target" and single["WantedBy"] == "camgate.target"
    command = shlex.split(single["ExecStart"])
    assert command[-2:] == ["/opt/camgate/entrypoint.sh", service]
    assert "CAMGATE_DATA_DIR=/var/lib/camgate" in command
    if service == "web":
        assert f"CAMGATE_STATIC_ROOT={nginx_static_root()}" in command
        assert {"CAMGATE_WEB_HOST=127.0.0.1", "CAMGATE_WEB_PORT=8000", "CAMGATE_WEB_TUNNEL_PORT=8001"} <= set(command)


def test_systemd_target_and_readme_install_agree():
    assert unit("camgate.target")["Wants"] == ["camgate-web.service camgate-agent.service"]
    section = readme_section()
    for path in set(re.findall(r"deploy/[\w./-]+\w", section)):
        assert (REPO / path).exists(), f"the README installs {path}, which does not exist"
    # The README's nginx edit for the systemd install: the one upstream, to the web
    # unit's loopback address.
    old, new = re.search(r"sed 's#([^#]+)#([^#]+)#' deploy/nginx\.conf", section).groups()
    assert nginx_conf().count(old) == 1 and new == "http://127.0.0.1:8000"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_the_units():
    units = [str(SYSTEMD / name) for name in ("camgate-web.service", "camgate-agent.service", "camgate.target")]
    result = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True)
    assert (result.returncode, result.stderr.strip()) == (0, "")


# --- entrypoint and README --------------------------------------------------------------

def test_entrypoint_is_executable_posix_sh():
    assert ENTRYPOINT.stat().st_mode & 0o111
    mode = subprocess.run(["git", "ls-files", "-s", "deploy/entrypoint.sh"], cwd=REPO, capture_output=True, text=True).stdout
    assert mode.startswith("100755"), "git must record the entrypoint as executable"
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    assert subprocess.run(["sh", "-n", str(ENTRYPOINT)]).returncode == 0


def test_readme_covers_both_installs_upgrade_and_backup():
    section = readme_section()
    for heading in ("### With Docker compose", "### With systemd (no Docker)", "### Upgrade", "### Backup and restore"):
        assert heading in section
    for needle in ("docker compose up -d", "systemctl enable --now camgate.target", "camgate backup", "restore --force",
                   "-wal", ".backup", "CAMGATE_TRUSTED_PROXIES"):
        assert needle in section, needle
