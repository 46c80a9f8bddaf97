"""The Docker host's configuration (deploy/compose.yaml, deploy/nginx/nginx.conf) cannot run
here (no Docker): what it must say for signed requests to verify behind its nginx is checked
as text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def test_the_instances_believe_forwarded_headers_from_nginx_alone() -> None:
    services = _compose()["services"]
    nginx_address = services["nginx"]["networks"]["backend"]["ipv4_address"]
    for name in ("keyservice-a", "keyservice-b"):
        assert services[name]["environment"]["FORWARDED_ALLOW_IPS"] == nginx_address
        assert services[name]["networks"] == ["backend"]


def test_the_docker_nginx_terminates_tls_and_shares_the_proxy_policy() -> None:
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert "listen 8443 ssl;" in conf
    assert "include /etc/nginx/carevault/proxy.conf;" in conf
    assert "X-Forwarded-Proto $scheme" in (DEPLOY / "nginx" / "proxy.conf").read_text()
    assert _compose()["services"]["nginx"]["ports"] == ["443:8443"]
