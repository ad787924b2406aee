"""A target's network settings for its Git remote: the CA to trust, the proxy to go through.

Kept apart from config.py so the Git transport's options grow without crowding the target's
table; config.py adds NETWORK_KEYS to the keys it accepts and stores `read_network(node)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gitopsd.configread import Section

NETWORK_KEYS = frozenset(
    {
        "ca_file",
        "insecure_skip_tls_verify",
        "proxy",
        "proxy_username",
        "proxy_password_file",
        "proxy_password_env",
    }
)
_PROXY = re.compile(r"^(https?)://(?P<host>\[[^\]/@]+\]|[^:/@\[\]]+)(?::\d{1,5})?/?$")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ProxyCredentials:
    """A user for the proxy and where its password is read at use time (never inline)."""

    username: str
    password_file: Path | None = None
    password_env: str | None = None


@dataclass(frozen=True)
class NetworkSettings:
    """How a target reaches its HTTPS remote."""

    ca_file: Path | None = None  # PEM bundle trusted in addition to the system store
    insecure_skip_tls_verify: bool = False  # an explicit, logged opt-in
    proxy: str | None = None  # http://host:port; None: HTTPS_PROXY/HTTP_PROXY/NO_PROXY
    proxy_credentials: ProxyCredentials | None = None


def read_network(node: Section) -> NetworkSettings:
    """The network keys of one target; ConfigError naming the key when one is wrong."""
    proxy = node.text("proxy")
    if proxy is not None and not _PROXY.match(proxy):
        raise node.error(
            "must be http://host:port (credentials go in proxy_username and "
            "proxy_password_file or proxy_password_env)",
            key="proxy",
        )
    ca_file = node.path("ca_file")
    if ca_file is not None and not ca_file.is_file():
        raise node.error(f"{ca_file} is not a file", key="ca_file")
    return NetworkSettings(
        ca_file=ca_file,
        insecure_skip_tls_verify=node.flag("insecure_skip_tls_verify", False),
        proxy=proxy,
        proxy_credentials=_credentials(node, proxy),
    )


def _credentials(node: Section, proxy: str | None) -> ProxyCredentials | None:
    username = node.text("proxy_username")
    file, env = node.path("proxy_password_file"), node.text("proxy_password_env")
    if username is None:
        if file is not None or env is not None:
            raise node.error("a proxy password needs proxy_username", key="proxy_username")
        return None
    if proxy is None:
        raise node.error("needs proxy", key="proxy_username")
    if env is not None and not _ENV_NAME.fullmatch(env):
        raise node.error("must be a variable name: letters, digits and _", key="proxy_password_env")
    if (file is None) == (env is None):
        raise node.error(
            "give one of proxy_password_file or proxy_password_env", key="proxy_username"
        )
    return ProxyCredentials(username, file, env)
