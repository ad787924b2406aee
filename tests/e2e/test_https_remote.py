"""The gitopsd command against a Git remote served over HTTPS by a private CA: `ca_file` in
the configuration reaches libgit2, and without it the refusal names the remote (issue 11).
Each run is its own process, so libgit2's process-wide trust store starts empty."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Gitopsd, configmap
from tests.support.git_fixtures import HTTP_USER
from tests.support.git_remotes import RemoteFactory
from tests.support.tls_remotes import GitHttpsServer, serving_https


@pytest.fixture
def https_server(
    git_factory: RemoteFactory, tmp_path: Path, http_password: str
) -> Iterator[GitHttpsServer]:
    yield from serving_https(git_factory.repos, HTTP_USER, http_password, tmp_path / "ca")


def test_validate_trusts_the_ca_file_and_names_the_remote_without_it(
    gitopsd: Gitopsd, https_server: GitHttpsServer
) -> None:
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", gitopsd.namespace, a="1")})
    url = https_server.https_url(gitopsd.remote.bare.name)
    ca = str(https_server.ca.certificate)
    gitopsd.write_config(gitopsd.target(repo=url, ca_file=ca))
    trusted = gitopsd.run("validate")
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout.startswith("app: ok, 1 objects")

    gitopsd.write_config(gitopsd.target(repo=url))
    refused = gitopsd.run("validate")
    assert refused.returncode == 1
    assert f"remote {url}: " in refused.stderr
    assert "TLS certificate of 127.0.0.1 is not trusted" in refused.stderr
    assert "Traceback" not in refused.stderr
