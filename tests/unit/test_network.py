"""A target's network keys, and the proxy chosen for a remote (pure: no socket here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitopsd.config import load_config
from gitopsd.errors import ConfigError
from gitopsd.netconfig import NetworkSettings, ProxyCredentials
from gitopsd.source.network import bypassed, proxy_for

URL = "https://git.corp.example:8443/infra.git"


def _config(tmp_path: Path, keys: str) -> Path:
    path = tmp_path / "gitopsd.yaml"
    path.write_text(
        f"state_dir: state\ntargets:\n  - {{name: web, repo: '{URL}', branch: main, {keys}}}\n"
    )
    return path


def test_network_keys_become_settings(tmp_path: Path) -> None:
    ca = tmp_path / "corp-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    keys = (
        f"ca_file: {ca}, proxy: 'http://proxy.corp:3128', proxy_username: bastion, "
        "proxy_password_env: PROXY_PASSWORD"
    )
    network = load_config(_config(tmp_path, keys)).targets[0].source.network
    assert network == NetworkSettings(
        ca_file=ca,
        proxy="http://proxy.corp:3128",
        proxy_credentials=ProxyCredentials("bastion", password_env="PROXY_PASSWORD"),
    )
    assert not network.insecure_skip_tls_verify


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ("proxy: 'http://u:p@proxy:3128'", "targets[0].proxy: must be http://host:port"),
        ("proxy: 'socks5://proxy:1080'", "targets[0].proxy: must be http://host:port"),
        ("ca_file: /nonexistent/ca.pem", "targets[0].ca_file: /nonexistent/ca.pem is not a file"),
        ("proxy_username: u", "targets[0].proxy_username: needs proxy"),
        ("proxy_password_env: P", "targets[0].proxy_username: a proxy password needs"),
        ("insecure_skip_tls_verify: 'yes'", "targets[0].insecure_skip_tls_verify"),
    ],
)
def test_wrong_network_keys_are_refused_naming_the_key(
    tmp_path: Path, keys: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(_config(tmp_path, keys))
    assert problem in str(refused.value)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"HTTPS_PROXY": "http://egress:3128"}, "http://egress:3128"),
        ({"https_proxy": "egress:3128"}, "http://egress:3128"),
        ({"HTTP_PROXY": "http://egress:3128"}, None),  # an https remote reads HTTPS_PROXY
        ({"HTTPS_PROXY": "http://egress:3128", "NO_PROXY": "corp.example"}, None),
        ({"HTTPS_PROXY": "http://egress:3128", "no_proxy": ".corp.example"}, None),
        ({"HTTPS_PROXY": "http://egress:3128", "NO_PROXY": "*"}, None),
        (
            {"HTTPS_PROXY": "http://egress:3128", "NO_PROXY": "git.corp.example:443"},
            "http://egress:3128",
        ),
        ({"HTTPS_PROXY": "http://egress:3128", "NO_PROXY": "example.org"}, "http://egress:3128"),
    ],
)
def test_the_environment_chooses_the_proxy(environ: dict[str, str], expected: str | None) -> None:
    assert proxy_for(URL, NetworkSettings(), environ) == expected


def test_the_target_proxy_wins_and_ssh_never_uses_one(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("p@ss:w/rd\n")
    network = NetworkSettings(
        proxy="http://proxy.corp:3128",
        proxy_credentials=ProxyCredentials("bastion", password_file=secret),
    )
    environ = {"HTTPS_PROXY": "http://other:1", "NO_PROXY": "*"}
    assert proxy_for(URL, network, environ) == "http://bastion:p%40ss%3Aw%2Frd@proxy.corp:3128"
    assert proxy_for("ssh://git@git.corp.example/infra.git", network, environ) is None
    assert proxy_for("git@git.corp.example:infra.git", network, environ) is None


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "expected"),
    [
        ("10.1.2.3", 443, "10.0.0.0/8", True),
        ("10.1.2.3", 443, "192.168.0.0/16", False),
        ("::1", 443, "[::1]", True),
        ("git.corp.example", 8443, "git.corp.example:8443", True),
        ("notcorp.example", 443, "corp.example", False),
        ("git.corp.example", 443, " , corp.example ", True),
    ],
)
def test_no_proxy_rules(host: str, port: int, no_proxy: str, expected: bool) -> None:
    assert bypassed(host, port, no_proxy) is expected
