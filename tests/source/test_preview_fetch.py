"""GitSource.snapshot: another ref read for a preview, leaving the daemon's mirror refs and
applied marker alone, over smart HTTP against a real remote."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from gitopsd.config import SignatureSettings
from gitopsd.errors import RefNotFoundError, SignatureError
from gitopsd.model import SourceFile
from gitopsd.source import GitSource
from gitopsd.source.mirror import mirror_dir
from tests.source.conftest import MANIFESTS
from tests.support.git_remotes import BareRemote, SshSigningKey

HttpSource = Callable[..., GitSource]


def mirror_refs(source: GitSource) -> str:
    mirror = mirror_dir(source.state_dir, source.settings.repo)
    return subprocess.run(
        ["git", "--git-dir", str(mirror), "for-each-ref", "--format=%(refname) %(objectname)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def app_of(files: tuple[SourceFile, ...]) -> bytes:
    return next(f.content for f in files if f.path == "app.yaml")


@pytest.fixture
def applied(bare_remote: BareRemote, http_source: HttpSource) -> GitSource:
    """A source whose configured branch (main) was fetched and marked applied."""
    bare_remote.commit(MANIFESTS)
    source: GitSource = http_source(bare_remote)
    source.mark_applied(source.fetch())
    return source


def test_a_branch_is_read_without_moving_any_ref_or_the_applied_marker(
    bare_remote: BareRemote, applied: GitSource, state_dir: Path
) -> None:
    main = bare_remote.head()
    head = bare_remote.commit({"deploy/app.yaml": "v: feature\n"}, "feature work", branch="feature")
    refs, marker = mirror_refs(applied), (state_dir / "source" / "web.json").read_text()

    snapshot = applied.snapshot("feature")

    assert snapshot.revision.commit == head
    assert (snapshot.revision.ref, snapshot.revision.message) == (
        "refs/heads/feature",
        "feature work",
    )
    assert app_of(snapshot.files) == b"v: feature\n"
    assert snapshot.refusal is None
    assert mirror_refs(applied) == refs and main in refs and head not in refs
    assert (state_dir / "source" / "web.json").read_text() == marker
    assert applied.last_applied == main
    assert applied.fetch().commit == main and applied.history_rewrite is None


@pytest.mark.parametrize("annotated", [False, True])
def test_tags_pull_request_refs_and_commit_ids(
    bare_remote: BareRemote, applied: GitSource, annotated: bool
) -> None:
    old = bare_remote.commit({"deploy/app.yaml": "v: old\n"}, branch="topic")
    bare_remote.commit({"deploy/app.yaml": "v: new\n"}, branch="topic")  # `old` is no tip now
    bare_remote.tag("v9", old, annotated=annotated)
    subprocess.run(
        ["git", "-C", str(bare_remote.bare), "update-ref", "refs/pull/42/head", old], check=True
    )
    for ref, name in [
        ("v9", "refs/tags/v9"),
        ("refs/pull/42/head", "refs/pull/42/head"),
        (old, old),
        (old[:9], old[:9]),
    ]:
        snapshot = applied.snapshot(ref)
        assert (snapshot.revision.commit, snapshot.revision.ref) == (old, name), ref
        assert app_of(snapshot.files) == b"v: old\n", ref


def test_a_commit_on_no_ref_is_found_after_fetching_branches(
    bare_remote: BareRemote, http_source: HttpSource
) -> None:
    bare_remote.commit(MANIFESTS)
    old = bare_remote.commit({"deploy/app.yaml": "v: 2\n"}, branch="topic")
    bare_remote.commit({"deploy/app.yaml": "v: 3\n"}, branch="topic")
    fresh = http_source(bare_remote)  # an empty mirror: the id is nowhere yet
    assert fresh.snapshot(old).revision.commit == old


def test_an_unknown_ref_is_named(applied: GitSource) -> None:
    for ref in ("no-such-branch", "refs/pull/1/head", "deadbeef1"):
        with pytest.raises(RefNotFoundError, match=f"ref '{ref}' not found"):
            applied.snapshot(ref)


def test_a_refused_signature_is_reported_not_raised(
    bare_remote: BareRemote, http_source: HttpSource, tmp_path: Path
) -> None:
    trusted = SshSigningKey(tmp_path / "sign", "release@x.invalid")
    verify = SignatureSettings(ssh_allowed_signers=trusted.allowed_signers(tmp_path / "allowed"))
    bare_remote.commit(MANIFESTS, signer=trusted.signer())
    signed = bare_remote.commit(
        {"deploy/app.yaml": "v: signed\n"}, branch="ok", signer=trusted.signer()
    )
    unsigned = bare_remote.commit({"deploy/app.yaml": "v: unsigned\n"}, branch="ok")
    source: GitSource = http_source(bare_remote, signature=verify)

    assert source.snapshot(signed).refusal is None
    refused = source.snapshot("ok")

    assert refused.revision.commit == unsigned and app_of(refused.files) == b"v: unsigned\n"
    assert refused.refusal is not None
    assert f"commit {unsigned[:12]}: the commit is not signed" in refused.refusal
    assert refused.refusal.startswith("target web, remote http://127.0.0.1:")
    # The configured ref keeps its policy: a refused commit there is still an error.
    bare_remote.commit({"deploy/app.yaml": "v: unsigned main\n"})
    with pytest.raises(SignatureError, match="not signed"):
        source.snapshot()
