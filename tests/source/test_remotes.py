"""The test remotes themselves: pygit2 clones over each transport, and refuses bad credentials."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

from tests.support.git_remotes import BareRemote, GitHttpServer, SshServer, ssh_keygen

FILES = {"app/config.yaml": "kind: ConfigMap\n", "README.md": "hello\n"}


def _cloned_head(url: str, dest: Path, callbacks: pygit2.RemoteCallbacks | None = None) -> str:
    repo = pygit2.clone_repository(url, str(dest), bare=True, callbacks=callbacks)
    return str(repo.revparse_single("refs/heads/main").id)


@pytest.fixture
def ssh_home(tmp_path: Path, git_ssh_server: SshServer) -> Iterator[Path]:
    """A home whose .ssh/known_hosts libgit2 reads: pygit2.settings.homedir is process-wide."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(git_ssh_server.known_hosts_line())
    previous = pygit2.settings.homedir
    pygit2.settings.homedir = str(home)
    yield home
    pygit2.settings.homedir = previous  # type: ignore[assignment]  # None restores the default


class StrictHostKey(pygit2.RemoteCallbacks):
    """Key auth; accept the host only when libssh2 found its key in known_hosts."""

    def __init__(self, key: Path) -> None:
        super().__init__(credentials=pygit2.Keypair("root", f"{key}.pub", str(key), ""))
        self.hosts: list[tuple[bool, bytes]] = []

    def certificate_check(self, certificate: None, valid: bool, host: bytes) -> bool:
        self.hosts.append((valid, host))
        return valid


class WrongPassword(pygit2.RemoteCallbacks):
    """Offers a wrong password once; libgit2 asks again after the 401, which ends the loop."""

    def __init__(self, username: str) -> None:
        super().__init__()
        self.username = username
        self.attempts = 0

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: pygit2.enums.CredentialType
    ) -> pygit2.UserPass:
        self.attempts += 1
        if self.attempts > 1:
            raise pygit2.GitError("credentials refused")
        return pygit2.UserPass(self.username, "not-the-password")


def test_clone_from_local_path(bare_remote: BareRemote, git_scratch: Path) -> None:
    commit = bare_remote.commit(FILES)
    assert _cloned_head(str(bare_remote.bare), git_scratch / "clone") == commit


def test_clone_from_file_url(bare_remote: BareRemote, git_scratch: Path) -> None:
    commit = bare_remote.commit(FILES)
    assert bare_remote.file_url.startswith("file://")
    assert _cloned_head(bare_remote.file_url, git_scratch / "clone") == commit


def test_clone_over_http_with_credentials(
    bare_remote: BareRemote, git_scratch: Path, git_http_server: GitHttpServer, http_password: str
) -> None:
    commit = bare_remote.commit(FILES)
    creds = pygit2.RemoteCallbacks(
        credentials=pygit2.UserPass(git_http_server.username, http_password)
    )
    git_http_server.clear_log()
    url = git_http_server.url(bare_remote)
    assert _cloned_head(url, git_scratch / "clone", creds) == commit
    log = git_http_server.log()
    assert any(r.status == 200 and r.user == git_http_server.username for r in log)
    assert any(r.method == "POST" and r.bytes_out > 0 for r in log)


def test_http_wrong_password_is_refused(
    bare_remote: BareRemote, git_scratch: Path, git_http_server: GitHttpServer
) -> None:
    bare_remote.commit(FILES)
    callbacks = WrongPassword(git_http_server.username)
    with pytest.raises(pygit2.GitError):
        _cloned_head(git_http_server.url(bare_remote), git_scratch / "clone", callbacks)
    assert not any(
        r.status == 200
        for r in git_http_server.log()
        if r.path.startswith(f"/{bare_remote.bare.name}")
    )


def test_clone_over_ssh_with_key_and_verified_host(
    bare_remote: BareRemote, git_scratch: Path, git_ssh_server: SshServer, ssh_home: Path
) -> None:
    commit = bare_remote.commit(FILES)
    callbacks = StrictHostKey(git_ssh_server.client_key)
    assert _cloned_head(git_ssh_server.url(bare_remote), git_scratch / "clone", callbacks) == commit
    assert callbacks.hosts and all(valid for valid, _ in callbacks.hosts)


def test_ssh_unknown_host_key_is_refused(
    bare_remote: BareRemote,
    git_scratch: Path,
    git_ssh_server: SshServer,
    ssh_home: Path,
    tmp_path: Path,
) -> None:
    bare_remote.commit(FILES)
    other = ssh_keygen(tmp_path / "other_host_key")
    (ssh_home / ".ssh" / "known_hosts").write_text(git_ssh_server.known_hosts_line(other))
    callbacks = StrictHostKey(git_ssh_server.client_key)
    with pytest.raises(pygit2.GitError):
        _cloned_head(git_ssh_server.url(bare_remote), git_scratch / "clone", callbacks)
    assert callbacks.hosts == [(False, b"127.0.0.1")]
