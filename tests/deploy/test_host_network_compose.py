"""deploy/docker-compose.host-network.yml (every service on the host's network, for
multicast ONVIF discovery) agrees with the main compose file, nginx.conf and the README.
Docker cannot run here: the files are checked as data, and nginx's rewrite is run."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.deploy.support import DEPLOY, REPO
from tests.deploy.test_deploy_files import COMPOSE_FILE, nginx_conf

OVERRIDE = DEPLOY / "docker-compose.host-network.yml"
LOOPBACK_PROXIES = "127.0.0.1,::1"


class ComposeLoader(yaml.SafeLoader):
    pass


# Compose's !reset empties what the main file set (published ports, say).
ComposeLoader.add_constructor("!reset", lambda loader, node: {"reset": loader.construct_sequence(node)})


def override() -> dict:
    return yaml.load(OVERRIDE.read_text(), Loader=ComposeLoader)


def test_every_service_moves_to_the_host_network_and_drops_the_bridges_wiring():
    main, services = yaml.safe_load(COMPOSE_FILE.read_text())["services"], override()["services"]
    assert set(services) == set(main)
    assert {service["network_mode"] for service in services.values()} == {"host"}
    assert services["nginx"]["ports"] == {"reset": []} and "ports" in main["nginx"]
    assert services["web"]["expose"] == {"reset": []} and "expose" in main["web"]
    assert services["agent"]["extra_hosts"] == {"reset": []} and "extra_hosts" in main["agent"]


def test_web_listens_on_loopback_behind_nginx_and_trusts_only_it():
    web, agent = override()["services"]["web"], override()["services"]["agent"]
    assert web["environment"] == {"CAMGATE_WEB_HOST": "127.0.0.1", "CAMGATE_TRUSTED_PROXIES": LOOPBACK_PROXIES}
    # The agent's gateway tunnel still goes to web's tunnel port (the main file's), now on loopback.
    main_agent = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["agent"]
    assert main_agent["environment"]["CAMGATE_GATEWAY_HTTP_PORT"] == "8001"
    assert agent["environment"] == {"CAMGATE_TRUSTED_PROXIES": LOOPBACK_PROXIES,
                                    "CAMGATE_GATEWAY_HTTP_HOST": "127.0.0.1", "CAMGATE_SSH_HOST": "127.0.0.1"}


def test_nginx_is_rewritten_to_reach_web_on_loopback_and_listen_on_the_http_port(tmp_path):
    nginx = override()["services"]["nginx"]
    (source, target, _), = [mount.split(":") for mount in nginx["volumes"]]
    assert (DEPLOY / source).resolve() == (DEPLOY / "nginx.conf").resolve()
    script = nginx["command"][2].replace("${CAMGATE_HTTP_PORT:-80}", "8080")  # as compose would, with it set
    sed = re.match(r"(sed .*?) " + re.escape(target) + r" > (\S+)", script)
    assert sed and script.endswith(f"exec nginx -c {sed.group(2)} -g 'daemon off;'")
    (tmp_path / "camgate.conf").write_text(nginx_conf())
    rewritten = subprocess.run(f"{sed.group(1)} camgate.conf", shell=True, cwd=tmp_path, check=True,
                               capture_output=True, text=True).stdout
    changed = [(old, new) for old, new in zip(nginx_conf().splitlines(), rewritten.splitlines()) if old != new]
    assert [new.strip() for _, new in changed] == ["listen 8080;", "set $camgate_web http://127.0.0.1:8000;"]
    assert "/nginx-health" in nginx["healthcheck"]["test"][-1]


def test_the_readme_and_env_example_say_how_to_use_it():
    readme = (REPO / "README.md").read_text()
    assert "docker-compose.host-network.yml" in readme
    assert "COMPOSE_FILE=docker-compose.yml:docker-compose.host-network.yml" in (DEPLOY / ".env.example").read_text()
