"""pytest plugin: real Git remotes (path, file://, smart HTTP, SSH) started once per session.

A server that cannot start fails the tests that need it; nothing is skipped.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.git_remotes import BareRemote, GitHttpServer, RemoteFactory, SshServer

HTTP_USER = "gitopsd-reader"

_counter = itertools.count()


@pytest.fixture(scope="session")
def git_factory(tmp_path_factory: pytest.TempPathFactory) -> RemoteFactory:
    """Where every test's bare repositories live; all servers export this root."""
    return RemoteFactory(tmp_path_factory.mktemp("git-remotes"))


@pytest.fixture(scope="session")
def http_password() -> str:
    return f"pw-{secrets.token_hex(12)}"


@pytest.fixture(scope="session")
def git_http_server(git_factory: RemoteFactory, http_password: str) -> Iterator[GitHttpServer]:
    """git-http-backend behind Basic auth on a loopback port."""
    server = GitHttpServer(git_factory.repos, HTTP_USER, http_password)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def git_ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """sshd on a loopback port with a generated host key and one authorized client key."""
    server = SshServer(tmp_path_factory.mktemp("sshd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bare_remote(git_factory: RemoteFactory, request: pytest.FixtureRequest) -> BareRemote:
    """A fresh bare repository (branch `main`, no commits yet) for one test."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:60]
    return git_factory.create(f"{name}-{next(_counter)}")


@pytest.fixture
def git_scratch(tmp_path: Path) -> Path:
    """A directory for clones and mirrors made by one test."""
    path = tmp_path / "scratch"
    path.mkdir()
    return path
