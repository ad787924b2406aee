"""GitSource against real remotes: each remote kind and ref kind, incremental fetches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gitopsd.config import RefKind
from gitopsd.model import Revision
from gitopsd.source import GitSource
from tests.source.conftest import MANIFESTS, MakeSource
from tests.support.git_remotes import BareRemote, GitHttpServer, SshServer

EXPECTED_PATHS = ["app.yaml", "data.json", "extra/more.yml"]


def _paths(source: GitSource, revision: Revision) -> list[str]:
    return [f.path for f in source.read_tree(revision)]


def test_local_path(bare_remote: BareRemote, make_source: MakeSource) -> None:
    commit = bare_remote.commit(MANIFESTS)
    source = make_source(str(bare_remote.bare))
    revision = source.fetch()
    assert (revision.commit, revision.ref) == (commit, "refs/heads/main")
    assert _paths(source, revision) == EXPECTED_PATHS


def test_manifest_suffixes_match_in_any_case(
    bare_remote: BareRemote, make_source: MakeSource
) -> None:
    upper = {"deploy/Upper.YAML": "kind: A\n", "deploy/mixed.Yml": "kind: B\n"}
    bare_remote.commit({**MANIFESTS, **upper, "deploy/data.JSON.bak": "{}"})
    source = make_source(bare_remote.file_url)
    paths = _paths(source, source.fetch())
    assert paths == sorted([*EXPECTED_PATHS, "Upper.YAML", "mixed.Yml"])


def test_a_kustomization_without_suffix_is_read_only_at_the_top(
    bare_remote: BareRemote, make_source: MakeSource
) -> None:
    # kustomize's third name for its file; `render: auto` looks for it at the target's path.
    files = {"deploy/Kustomization": "resources: []\n", "deploy/sub/Kustomization": "x: 1\n"}
    bare_remote.commit({**MANIFESTS, **files})
    source = make_source(bare_remote.file_url)
    assert _paths(source, source.fetch()) == sorted([*EXPECTED_PATHS, "Kustomization"])


def test_file_url(bare_remote: BareRemote, make_source: MakeSource) -> None:
    commit = bare_remote.commit(MANIFESTS)
    source = make_source(bare_remote.file_url)
    assert source.fetch().commit == commit


def test_http_with_password_file(
    bare_remote: BareRemote, http_source: Callable[..., GitSource]
) -> None:
    commit = bare_remote.commit(MANIFESTS)
    source = http_source(bare_remote)
    revision = source.fetch()
    assert revision.commit == commit
    assert _paths(source, revision) == EXPECTED_PATHS
    assert source.read_tree(revision)[0].content == MANIFESTS["deploy/app.yaml"].encode()


def test_http_with_password_from_environment(
    bare_remote: BareRemote,
    make_source: MakeSource,
    git_http_server: GitHttpServer,
    http_password: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gitopsd.config import SecretRef

    commit = bare_remote.commit(MANIFESTS)
    monkeypatch.setenv("GITOPSD_TEST_TOKEN", http_password)
    source = make_source(
        git_http_server.url(bare_remote),
        username=git_http_server.username,
        password=SecretRef(env="GITOPSD_TEST_TOKEN"),
    )
    assert source.fetch().commit == commit


def test_ssh_url_with_key_and_known_hosts(
    bare_remote: BareRemote, ssh_source: Callable[..., GitSource]
) -> None:
    commit = bare_remote.commit(MANIFESTS)
    source = ssh_source(bare_remote)
    revision = source.fetch()
    assert revision.commit == commit
    assert _paths(source, revision) == EXPECTED_PATHS


def test_ssh_key_with_passphrase(
    bare_remote: BareRemote,
    git_ssh_server: SshServer,
    ssh_source: Callable[..., GitSource],
    tmp_path: Path,
) -> None:
    from gitopsd.config import SecretRef
    from tests.support.git_remotes import ssh_keygen

    key = ssh_keygen(tmp_path / "locked_key", passphrase="open sesame")
    git_ssh_server.authorize(Path(f"{key}.pub"))
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("open sesame\n")
    commit = bare_remote.commit(MANIFESTS)
    source = ssh_source(bare_remote, ssh_key=key, ssh_passphrase=SecretRef(file=passphrase))
    assert source.fetch().commit == commit


def test_scp_like_url(
    bare_remote: BareRemote, make_source: MakeSource, git_ssh_server_port22: SshServer
) -> None:
    server = git_ssh_server_port22
    commit = bare_remote.commit(MANIFESTS)
    url = f"{server.user}@{server.host}:{bare_remote.bare}"
    source = make_source(url, ssh_key=server.client_key, known_hosts=server.known_hosts)
    assert source.fetch().commit == commit


def test_other_branch(bare_remote: BareRemote, make_source: MakeSource) -> None:
    bare_remote.commit(MANIFESTS)
    staging = bare_remote.commit({"deploy/app.yaml": "kind: X\n"}, branch="staging")
    source = make_source(str(bare_remote.bare), ref="staging")
    assert source.fetch().commit == staging


@pytest.mark.parametrize("annotated", [False, True], ids=["lightweight", "annotated"])
def test_tag(bare_remote: BareRemote, make_source: MakeSource, annotated: bool) -> None:
    tagged = bare_remote.commit(MANIFESTS)
    bare_remote.tag("release-1", annotated=annotated)
    bare_remote.commit({"deploy/app.yaml": "kind: Later\n"})
    source = make_source(str(bare_remote.bare), ref_kind=RefKind.TAG, ref="release-1")
    revision = source.fetch()
    assert (revision.commit, revision.ref) == (tagged, "refs/tags/release-1")


def test_semver_picks_highest_matching_tag(
    bare_remote: BareRemote, http_source: Callable[..., GitSource]
) -> None:
    commits = {}
    for tag in ["v1.0.0", "v1.2.0", "v1.4.0", "v2.0.0", "v1.5.0-rc.1"]:
        commits[tag] = bare_remote.commit({"deploy/app.yaml": f"version: {tag}\n"})
        bare_remote.tag(tag, annotated=tag == "v1.4.0")
    source = http_source(bare_remote, ref_kind=RefKind.SEMVER, ref=">=1.2 <2")
    revision = source.fetch()
    assert (revision.commit, revision.ref) == (commits["v1.4.0"], "refs/tags/v1.4.0")
    commits["v1.9.3"] = bare_remote.commit({"deploy/app.yaml": "version: 1.9.3\n"})
    bare_remote.tag("v1.9.3")
    assert source.fetch().commit == commits["v1.9.3"]


def test_pinned_commit(bare_remote: BareRemote, http_source: Callable[..., GitSource]) -> None:
    first = bare_remote.commit(MANIFESTS)
    bare_remote.commit({"deploy/app.yaml": "kind: Later\n"})
    source = http_source(bare_remote, ref_kind=RefKind.COMMIT, ref=first)
    assert source.fetch().commit == first
    short = http_source(bare_remote, ref_kind=RefKind.COMMIT, ref=first[:10])
    assert short.fetch().commit == first


def test_new_commit_seen_on_next_fetch(
    bare_remote: BareRemote, ssh_source: Callable[..., GitSource]
) -> None:
    bare_remote.commit(MANIFESTS)
    source = ssh_source(bare_remote)
    source.fetch()
    newer = bare_remote.commit({"deploy/new.yaml": "kind: New\n"}, "add new")
    revision = source.fetch()
    assert (revision.commit, revision.message) == (newer, "add new")
    assert "new.yaml" in _paths(source, revision)


def test_unchanged_remote_downloads_nothing(
    bare_remote: BareRemote, http_source: Callable[..., GitSource], git_http_server: GitHttpServer
) -> None:
    commit = bare_remote.commit(MANIFESTS)
    source = http_source(bare_remote)
    source.fetch()
    git_http_server.clear_log()
    assert source.fetch().commit == commit
    requests = [r for r in git_http_server.log() if bare_remote.bare.name in r.path]
    assert source.last_transfer is None
    assert {(r.method, r.path.split("?")[0]) for r in requests} == {
        ("GET", f"/{bare_remote.bare.name}/info/refs")
    }
    # libgit2 sends no credentials until challenged: a 401, then the authenticated listing.
    assert [r.status for r in requests] == [401, 200]


def test_incremental_fetch_downloads_only_the_new_commit(
    bare_remote: BareRemote, http_source: Callable[..., GitSource], git_http_server: GitHttpServer
) -> None:
    bare_remote.commit({f"deploy/f{i}.yaml": f"n: {i}\n" for i in range(200)})
    source = http_source(bare_remote)
    source.fetch()
    first_bytes = sum(r.bytes_out for r in git_http_server.log() if r.method == "POST")
    git_http_server.clear_log()
    bare_remote.commit({"deploy/f7.yaml": "n: changed\n"})
    source.fetch()
    assert source.last_transfer is not None
    # One commit, two trees (root, deploy) and one blob.
    assert source.last_transfer.received_objects == 4
    log = git_http_server.log()
    # The fetch reuses the connection of the ref listing: one listing, one pack request.
    assert [(r.method, r.status) for r in log] == [("GET", 401), ("GET", 200), ("POST", 200)]
    assert log[-1].bytes_out < first_bytes / 4


def test_mirror_is_shared_and_reused(
    bare_remote: BareRemote, make_source: MakeSource, state_dir: Path
) -> None:
    bare_remote.commit(MANIFESTS)
    make_source(bare_remote.file_url, target="one").fetch()
    make_source(bare_remote.file_url, target="two").fetch()
    assert len(list((state_dir / "mirrors").iterdir())) == 1
