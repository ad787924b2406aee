"""Git over HTTPS with a private CA, and through a real CONNECT proxy (issue 11).

libgit2 trusts CA files process-wide and for good (source/network.py), so each server here
has its own CA, created by its fixture: a CA no target names stays untrusted whatever order
the tests run in.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from gitopsd.config import SecretRef
from gitopsd.errors import AuthenticationError, RemoteUnreachableError
from gitopsd.netconfig import NetworkSettings, ProxyCredentials
from gitopsd.source import GitSource
from tests.source.conftest import MANIFESTS, MakeSource
from tests.support.git_fixtures import HTTP_USER
from tests.support.git_remotes import BareRemote, RemoteFactory
from tests.support.tls_remotes import Authority, GitHttpsServer, Squid, Tinyproxy, serving_https

PROXY_USER = "bastion"


@pytest.fixture(scope="module")
def https_server(
    git_factory: RemoteFactory, tmp_path_factory: pytest.TempPathFactory, http_password: str
) -> Iterator[GitHttpsServer]:
    """Served with a certificate from a CA the tests name in ca_file."""
    yield from serving_https(
        git_factory.repos, HTTP_USER, http_password, tmp_path_factory.mktemp("tls")
    )


@pytest.fixture(scope="module")
def untrusted_server(
    git_factory: RemoteFactory, tmp_path_factory: pytest.TempPathFactory, http_password: str
) -> Iterator[GitHttpsServer]:
    """Served with a certificate from a CA no target ever names."""
    yield from serving_https(
        git_factory.repos, HTTP_USER, http_password, tmp_path_factory.mktemp("tls-untrusted")
    )


@pytest.fixture(scope="module")
def proxy_password() -> str:
    return f"proxy-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tinyproxy]:
    server = Tinyproxy(tmp_path_factory.mktemp("tinyproxy"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def locked_proxy(proxy_password: str) -> Iterator[Squid]:
    """A proxy that wants Basic credentials, as corporate egress proxies do."""
    server = Squid(PROXY_USER, proxy_password)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def remote(bare_remote: BareRemote) -> BareRemote:
    bare_remote.commit(MANIFESTS)
    return bare_remote


@pytest.fixture
def https_source(make_source: MakeSource, http_secret: SecretRef) -> Callable[..., GitSource]:
    def make(server: GitHttpsServer, remote: BareRemote, **network: Any) -> GitSource:
        return make_source(
            server.https_url(remote.bare.name),
            username=HTTP_USER,
            password=http_secret,
            network=NetworkSettings(**network),
        )

    return make


def test_an_https_remote_signed_by_the_ca_file_is_fetched(
    https_server: GitHttpsServer, remote: BareRemote, https_source: Callable[..., GitSource]
) -> None:
    source = https_source(https_server, remote, ca_file=https_server.ca.certificate)
    assert source.fetch().commit == remote.head()


@pytest.mark.parametrize("named_ca", [False, True], ids=["system-store", "other-ca-file"])
def test_a_certificate_from_an_unknown_ca_is_refused_naming_the_remote(
    untrusted_server: GitHttpsServer,
    remote: BareRemote,
    https_source: Callable[..., GitSource],
    tmp_path: Path,
    named_ca: bool,
) -> None:
    other = Authority.create(tmp_path / "other", f"other-{uuid.uuid4().hex[:8]}")
    network = {"ca_file": other.certificate} if named_ca else {}
    source = https_source(untrusted_server, remote, **network)
    with pytest.raises(AuthenticationError) as refused:
        source.fetch()
    message = str(refused.value)
    assert "\n" not in message
    assert untrusted_server.https_url(remote.bare.name) in message
    assert "TLS certificate of 127.0.0.1 is not trusted" in message
    assert "set ca_file:" in message


def test_skipping_verification_is_an_explicit_logged_opt_in(
    untrusted_server: GitHttpsServer, remote: BareRemote, https_source: Callable[..., GitSource]
) -> None:
    source = https_source(untrusted_server, remote, insecure_skip_tls_verify=True)
    with structlog.testing.capture_logs() as logs:
        assert source.fetch().commit == remote.head()
    warnings = [e for e in logs if e["event"] == "tls_verification_disabled"]
    assert [w["log_level"] for w in warnings] == ["warning"]
    assert warnings[0]["target"] == "web"


def test_a_configured_proxy_carries_the_fetch(
    https_server: GitHttpsServer,
    proxy: Tinyproxy,
    remote: BareRemote,
    https_source: Callable[..., GitSource],
) -> None:
    before = len(proxy.connects())
    source = https_source(
        https_server,
        remote,
        ca_file=https_server.ca.certificate,
        proxy=proxy.url,
    )
    assert source.fetch().commit == remote.head()
    assert f"CONNECT 127.0.0.1:{https_server.port} HTTP/1.1" in proxy.connects()[before:]


def test_https_proxy_is_honoured_and_no_proxy_bypasses_it(
    https_server: GitHttpsServer,
    proxy: Tinyproxy,
    remote: BareRemote,
    https_source: Callable[..., GitSource],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca = https_server.ca.certificate
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    before = len(proxy.connects())
    assert https_source(https_server, remote, ca_file=ca).fetch().commit == remote.head()
    through = proxy.connects()[before:]
    assert f"CONNECT 127.0.0.1:{https_server.port} HTTP/1.1" in through

    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    remote.commit({"deploy/new.yaml": "kind: ConfigMap\n"})
    before = len(proxy.connects())
    assert https_source(https_server, remote, ca_file=ca).fetch().commit == remote.head()
    assert proxy.connects()[before:] == []


def test_proxy_credentials_come_from_a_file_and_never_show(
    https_server: GitHttpsServer,
    locked_proxy: Squid,
    remote: BareRemote,
    https_source: Callable[..., GitSource],
    proxy_password: str,
    tmp_path: Path,
) -> None:
    ca = https_server.ca.certificate
    secret = tmp_path / "proxy-password"
    secret.write_text("not-the-password\n")
    credentials = ProxyCredentials(PROXY_USER, password_file=secret)
    network = {"ca_file": ca, "proxy": locked_proxy.url, "proxy_credentials": credentials}
    with pytest.raises((AuthenticationError, RemoteUnreachableError)) as refused:
        https_source(https_server, remote, **network).fetch()
    assert "not-the-password" not in str(refused.value)
    assert locked_proxy.tunnels() == []

    secret.write_text(proxy_password + "\n")
    with structlog.testing.capture_logs() as logs:
        assert https_source(https_server, remote, **network).fetch().commit == remote.head()
    tunnel = f"{PROXY_USER} CONNECT 127.0.0.1:{https_server.port}"
    assert tunnel in locked_proxy.tunnels()
    assert proxy_password not in repr(logs)
