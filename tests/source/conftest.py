"""Helpers shared by the source-stage tests: settings builders and a GitSource factory."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gitopsd.config import RefKind, SecretRef, SourceSettings
from gitopsd.source import GitSource
from tests.support.git_remotes import BareRemote, GitHttpServer, SshServer

MANIFESTS = {
    "deploy/app.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n",
    "deploy/extra/more.yml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: more}\n",
    "deploy/data.json": '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}}',
    "deploy/README.md": "not a manifest\n",
    "other/ignored.yaml": "kind: ConfigMap\n",
}

MakeSource = Callable[..., GitSource]


def branch_settings(url: str, **overrides: Any) -> SourceSettings:
    base = SourceSettings(repo=url, ref_kind=RefKind.BRANCH, ref="main", path="deploy")
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def make_source(state_dir: Path) -> MakeSource:
    """GitSource for a URL with overrides of the default settings (branch main, path deploy)."""

    def make(
        url: str, *, target: str = "web", last_applied: str | None = None, **overrides: Any
    ) -> GitSource:
        return GitSource(
            target, branch_settings(url, **overrides), state_dir, last_applied=last_applied
        )

    return make


@pytest.fixture
def http_secret(tmp_path: Path, http_password: str) -> SecretRef:
    path = tmp_path / "http-password"
    path.write_text(http_password + "\n")
    return SecretRef(file=path)


@pytest.fixture
def http_source(
    make_source: MakeSource, git_http_server: GitHttpServer, http_secret: SecretRef
) -> Callable[..., GitSource]:
    def make(remote: BareRemote, **overrides: Any) -> GitSource:
        return make_source(
            git_http_server.url(remote),
            username=git_http_server.username,
            password=http_secret,
            **overrides,
        )

    return make


@pytest.fixture
def ssh_source(make_source: MakeSource, git_ssh_server: SshServer) -> Callable[..., GitSource]:
    def make(remote: BareRemote, **overrides: Any) -> GitSource:
        settings = {
            "ssh_key": git_ssh_server.client_key,
            "known_hosts": git_ssh_server.known_hosts,
            **overrides,
        }
        return make_source(git_ssh_server.url(remote), **settings)

    return make


@pytest.fixture(scope="session")
def git_ssh_server_port22(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """sshd on 127.0.0.2:22, for scp-like URLs (`user@host:path`), which cannot name a port."""
    server = SshServer(tmp_path_factory.mktemp("sshd22"), host="127.0.0.2", port=22)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclasses.dataclass
class SilentServer:
    """A remote that accepts connections and never answers."""

    port: int
    accepted: threading.Event  # set at the first connection


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    silent = SilentServer(server.getsockname()[1], threading.Event())
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            silent.accepted.set()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield silent
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()
