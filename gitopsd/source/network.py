"""HTTPS trust and proxies for a target's Git remote, applied through libgit2.

libgit2 (OpenSSL, in pygit2's wheel) has one trust store per process: a CA file added to
it is trusted by every later TLS connection and cannot be taken out again. So a target's
`ca_file` joins the system store for the whole process, once; a remote signed by a CA that
no target names still fails its certificate check. The proxy, by contrast, is chosen per
remote: the target's `proxy:`, else HTTPS_PROXY / HTTP_PROXY unless NO_PROXY names the host.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit

import pygit2
import structlog

from gitopsd.config import SecretRef
from gitopsd.netconfig import NetworkSettings

log = structlog.get_logger("gitopsd.source")

_trusted: set[Path] = set()
_warned: set[str] = set()
_lock = threading.Lock()


def trust(ca_file: Path) -> None:
    """Add `ca_file` to libgit2's process-wide trust store (once per file)."""
    path = ca_file.expanduser().resolve()
    with _lock:
        if path in _trusted:
            return
        pygit2.settings.set_ssl_cert_locations(str(path), None)
        _trusted.add(path)


def warn_insecure(target: str, remote: str) -> None:
    """Log, once per target and process, that its remote's certificate goes unchecked."""
    with _lock:
        if target in _warned:
            return
        _warned.add(target)
    log.warning(
        "tls_verification_disabled",
        target=target,
        remote=remote,
        reason="insecure_skip_tls_verify: true; anyone on the path can serve this remote",
    )


def proxy_for(url: str, settings: NetworkSettings, environ: Mapping[str, str]) -> str | None:
    """The proxy URL (credentials included, never to be logged) for `url`; None: direct.

    `proxy:` wins; else the scheme's *_PROXY variable of `environ`, unless NO_PROXY names
    the host. SSH and local remotes never use one.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return None
    if settings.proxy is not None:
        return _with_credentials(settings)
    scheme = parts.scheme
    proxy = environ.get(f"{scheme}_proxy") or environ.get(f"{scheme.upper()}_PROXY")
    if not proxy:
        return None
    no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY") or ""
    if bypassed(parts.hostname or "", parts.port, no_proxy):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether NO_PROXY (curl's rules: `*`, names matching a suffix, IPs, CIDR ranges, an
    optional :port) sends `host` direct."""
    host = host.strip("[]").lower()
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, wanted = entry.rpartition(":") if _has_port(entry) else (entry, "", "")
        if wanted and port is not None and wanted != str(port):
            continue
        name = name.strip("[]").lstrip(".")
        if host == name or host.endswith("." + name) or _in_range(host, name):
            return True
    return False


def _has_port(entry: str) -> bool:
    if entry.startswith("["):
        return "]:" in entry
    return entry.count(":") == 1


def _in_range(host: str, entry: str) -> bool:
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False


def _with_credentials(settings: NetworkSettings) -> str:
    assert settings.proxy is not None
    credentials = settings.proxy_credentials
    if credentials is None:
        return settings.proxy
    secret = SecretRef(file=credentials.password_file, env=credentials.password_env).read()
    scheme, rest = settings.proxy.split("://", 1)
    user = f"{quote(credentials.username, safe='')}:{quote(secret, safe='')}"
    return f"{scheme}://{user}@{rest}"
