"""Each failure is one clear SourceError naming the target and the redacted remote."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gitopsd.config import RefKind, SecretRef
from gitopsd.errors import (
    AuthenticationError,
    ConfigError,
    PathNotFoundError,
    RefNotFoundError,
    RemoteUnreachableError,
    SourceError,
    UnsafeTreeError,
)
from gitopsd.source import GitSource
from tests.source.conftest import MANIFESTS, MakeSource, SilentServer
from tests.support.git_remotes import BareRemote, GitHttpServer, SshServer, Symlink, ssh_keygen


def _one_line(err: pytest.ExceptionInfo[SourceError], remote: str) -> str:
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"target web, remote {remote}: ")
    return message


def test_wrong_password(
    bare_remote: BareRemote, make_source: MakeSource, git_http_server: GitHttpServer, tmp_path: Path
) -> None:
    bare_remote.commit(MANIFESTS)
    (tmp_path / "wrong").write_text("hunter2-wrong\n")
    url = git_http_server.url(bare_remote)
    source = make_source(
        url, username=git_http_server.username, password=SecretRef(file=tmp_path / "wrong")
    )
    with pytest.raises(AuthenticationError) as err:
        source.fetch()
    message = _one_line(err, url)
    assert "refused the credentials" in message and "hunter2" not in message
    assert not err.value.retryable


def test_missing_credentials(
    bare_remote: BareRemote, make_source: MakeSource, git_http_server: GitHttpServer
) -> None:
    bare_remote.commit(MANIFESTS)
    with pytest.raises(AuthenticationError, match="none are configured"):
        make_source(git_http_server.url(bare_remote)).fetch()


def test_unknown_host_key_names_host_and_fingerprint(
    bare_remote: BareRemote,
    ssh_source: Callable[..., GitSource],
    git_ssh_server: SshServer,
    tmp_path: Path,
) -> None:
    bare_remote.commit(MANIFESTS)
    impostor = ssh_keygen(tmp_path / "impostor")
    known = tmp_path / "known_hosts"
    known.write_text(git_ssh_server.known_hosts_line(impostor))
    source = ssh_source(bare_remote, known_hosts=known)
    with pytest.raises(AuthenticationError) as err:
        source.fetch()
    message = _one_line(err, git_ssh_server.url(bare_remote))
    real = Path(f"{git_ssh_server.host_key}.pub").read_text().split()[1]
    import base64
    import hashlib

    fingerprint = base64.b64encode(hashlib.sha256(base64.b64decode(real)).digest())
    assert f"host key of 127.0.0.1:{git_ssh_server.port}" in message
    assert f"SHA256:{fingerprint.decode().rstrip('=')}" in message


def test_unauthorized_ssh_key(
    bare_remote: BareRemote, ssh_source: Callable[..., GitSource], tmp_path: Path
) -> None:
    bare_remote.commit(MANIFESTS)
    stranger = ssh_keygen(tmp_path / "stranger")
    with pytest.raises(AuthenticationError, match="refused the credentials"):
        ssh_source(bare_remote, ssh_key=stranger).fetch()


def test_missing_branch_and_tag_and_semver(
    bare_remote: BareRemote, make_source: MakeSource
) -> None:
    bare_remote.commit(MANIFESTS)
    url = str(bare_remote.bare)
    with pytest.raises(RefNotFoundError, match="branch 'nope' not found") as err:
        make_source(url, ref="nope").fetch()
    assert not err.value.retryable
    with pytest.raises(RefNotFoundError, match="tag 'v9' not found"):
        make_source(url, ref_kind=RefKind.TAG, ref="v9").fetch()
    with pytest.raises(RefNotFoundError, match="no tag matches semver"):
        make_source(url, ref_kind=RefKind.SEMVER, ref="^3").fetch()
    with pytest.raises(RefNotFoundError, match="commit 0123456789ab"):
        make_source(url, ref_kind=RefKind.COMMIT, ref="0123456789ab").fetch()


def test_missing_path(bare_remote: BareRemote, make_source: MakeSource) -> None:
    bare_remote.commit(MANIFESTS)
    source = make_source(bare_remote.file_url, path="clusters/prod")
    revision = source.fetch()
    with pytest.raises(PathNotFoundError, match="path 'clusters/prod' does not exist"):
        source.read_tree(revision)
    with pytest.raises(PathNotFoundError):  # a file is not a directory of manifests
        make_source(bare_remote.file_url, path="deploy/app.yaml").read_tree(revision)


@pytest.mark.parametrize(
    "link", ["../other/ignored.yaml", "../../etc/passwd", "/etc/passwd", "inner/../../other"]
)
@pytest.mark.parametrize("name", ["sneaky.yaml", "sneaky.YML", "sneaky.Json"])
def test_escaping_symlink_is_refused(
    bare_remote: BareRemote, make_source: MakeSource, link: str, name: str
) -> None:
    bare_remote.commit({**MANIFESTS, f"deploy/{name}": Symlink(link)})
    source = make_source(bare_remote.file_url)
    revision = source.fetch()
    with pytest.raises(UnsafeTreeError, match=rf"symlink '{name}' points outside 'deploy'"):
        source.read_tree(revision)


def test_escaping_symlink_that_is_never_read_is_left_alone(
    bare_remote: BareRemote, make_source: MakeSource
) -> None:
    links = {
        "deploy/README": Symlink("../README"),
        "deploy/docs/notes.txt": Symlink("/etc/passwd"),
        "deploy/shared": Symlink("../other"),  # a directory outside: never traversed
        "deploy/loop": Symlink("loop"),
    }
    bare_remote.commit({**MANIFESTS, "README": "the project\n", **links})
    source = make_source(bare_remote.file_url)
    paths = [f.path for f in source.read_tree(source.fetch())]
    assert paths == ["app.yaml", "data.json", "extra/more.yml"]


def test_symlink_inside_path_is_read(bare_remote: BareRemote, make_source: MakeSource) -> None:
    bare_remote.commit({**MANIFESTS, "deploy/alias.yaml": Symlink("extra/more.yml")})
    source = make_source(bare_remote.file_url)
    files = {f.path: f.content for f in source.read_tree(source.fetch())}
    assert files["alias.yaml"] == files["extra/more.yml"]


def test_oversized_file_is_refused(bare_remote: BareRemote, make_source: MakeSource) -> None:
    bare_remote.commit(
        {
            **MANIFESTS,
            "deploy/huge.yaml": "x: " + "y" * 2048 + "\n",
            "deploy/huge.bin": b"\0" * 4096,
        }
    )
    source = make_source(bare_remote.file_url, max_file_bytes=1024)
    with pytest.raises(UnsafeTreeError, match=r"file 'huge.yaml' is 2052 bytes, above the limit"):
        source.read_tree(source.fetch())


def test_errors_leave_last_applied_alone(
    bare_remote: BareRemote, make_source: MakeSource, state_dir: Path
) -> None:
    bare_remote.commit(MANIFESTS)
    source = make_source(bare_remote.file_url)
    good = source.fetch()
    source.mark_applied(good)
    bare_remote.commit({"deploy/bad.yaml": Symlink("../../etc/shadow")})
    with pytest.raises(UnsafeTreeError):
        source.read_tree(source.fetch())
    assert source.last_applied == good.commit
    assert make_source(bare_remote.file_url).last_applied == good.commit
    assert source.read_tree(good)[0].path == "app.yaml"


def test_unreachable_remote_is_retryable(make_source: MakeSource) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/repo.git"
    with pytest.raises(RemoteUnreachableError) as err:
        make_source(url).fetch()
    _one_line(err, url)
    assert err.value.retryable
    assert isinstance(err.value.__cause__, Exception)


def test_timeout(make_source: MakeSource, silent_server: SilentServer) -> None:
    url = f"http://127.0.0.1:{silent_server.port}/repo.git"
    started = time.monotonic()
    with pytest.raises(RemoteUnreachableError, match="timeout 1s") as err:
        make_source(url, timeout_seconds=1.0).fetch()
    assert time.monotonic() - started < 10
    assert err.value.retryable


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"ref": ""}, "ref is empty"),
        ({"ref_kind": RefKind.COMMIT, "ref": "main"}, "not a hexadecimal commit id"),
        ({"ref_kind": RefKind.SEMVER, "ref": ">=banana"}, "semver range"),
        ({"path": "../elsewhere"}, "leaves the repository"),
    ],
)
def test_invalid_settings_are_config_errors(
    make_source: MakeSource, overrides: dict[str, object], problem: str
) -> None:
    with pytest.raises(ConfigError, match=f"target web: .*{problem}"):
        make_source("/nowhere", **overrides)


def test_unreadable_password_file_names_the_target(
    bare_remote: BareRemote, make_source: MakeSource, git_http_server: GitHttpServer, tmp_path: Path
) -> None:
    bare_remote.commit(MANIFESTS)
    (tmp_path / "latin1").write_bytes(b"p\xe4ssword\n")
    url = git_http_server.url(bare_remote)
    for name in ("latin1", "absent"):
        source = make_source(
            url, username=git_http_server.username, password=SecretRef(file=tmp_path / name)
        )
        with pytest.raises(AuthenticationError) as err:
            source.fetch()
        message = _one_line(err, url)
        assert f"password: cannot read secret file {tmp_path / name}: " in message
        assert not err.value.retryable
