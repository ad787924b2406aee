"""History rewrites and signed commits, with real gpg and ssh-keygen signatures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from gitopsd.config import HistoryPolicy, SignatureSettings
from gitopsd.errors import HistoryRewrittenError, SignatureError
from gitopsd.source import GitSource
from tests.source.conftest import MANIFESTS, MakeSource
from tests.support.git_remotes import BareRemote, GpgKey, SshSigningKey


def test_force_push_is_followed_and_reported(
    bare_remote: BareRemote, make_source: MakeSource
) -> None:
    base = bare_remote.commit(MANIFESTS)
    applied = bare_remote.commit({"deploy/app.yaml": "v: 2\n"})
    source = make_source(bare_remote.file_url)
    source.mark_applied(source.fetch())
    rewritten = bare_remote.force_push({"deploy/app.yaml": "v: 2b\n"}, onto=base)
    with structlog.testing.capture_logs() as logs:
        revision = source.fetch()
    assert revision.commit == rewritten
    assert source.history_rewrite == (applied, rewritten)
    events = [e for e in logs if e["event"] == "history_rewritten"]
    assert events and events[0]["target"] == "web"
    assert (events[0]["revision"], events[0]["previous"]) == (rewritten, applied)


@pytest.mark.parametrize("policy", [HistoryPolicy.FOLLOW, HistoryPolicy.REFUSE])
def test_rewrite_is_logged_once_per_pair_but_reported_at_each_fetch(
    bare_remote: BareRemote, make_source: MakeSource, policy: HistoryPolicy
) -> None:
    base = bare_remote.commit(MANIFESTS)
    applied = bare_remote.commit({"deploy/app.yaml": "v: 2\n"})
    source = make_source(bare_remote.file_url, history=policy)
    source.mark_applied(source.fetch())
    first = bare_remote.force_push({"deploy/app.yaml": "v: 2b\n"}, onto=base)
    second = None
    with structlog.testing.capture_logs() as logs:
        for attempt in range(4):  # not applied meanwhile: the same rewrite at every pass
            if attempt == 2:
                second = bare_remote.force_push({"deploy/app.yaml": "v: 2c\n"}, onto=base)
            try:
                source.fetch()
            except HistoryRewrittenError:
                assert policy is HistoryPolicy.REFUSE
            assert source.history_rewrite == (applied, first if attempt < 2 else second)
    pairs = [(e["previous"], e["revision"]) for e in logs if e["event"] == "history_rewritten"]
    assert pairs == [(applied, first), (applied, second)]


def test_force_push_refused_by_policy_keeps_last_applied(
    bare_remote: BareRemote, make_source: MakeSource, state_dir: Path
) -> None:
    base = bare_remote.commit(MANIFESTS)
    bare_remote.commit({"deploy/app.yaml": "v: 2\n"})
    source = make_source(bare_remote.file_url, history=HistoryPolicy.REFUSE)
    applied = source.fetch()
    source.mark_applied(applied)
    bare_remote.force_push({"deploy/app.yaml": "v: other\n"}, onto=base)
    with pytest.raises(HistoryRewrittenError, match=r"target web.*history rewritten") as err:
        source.fetch()
    assert not err.value.retryable
    assert source.last_applied == applied.commit
    # A restarted daemon reads the persisted last-applied commit and still refuses.
    again = make_source(bare_remote.file_url, history=HistoryPolicy.REFUSE)
    assert again.last_applied == applied.commit
    with pytest.raises(HistoryRewrittenError):
        again.fetch()


def test_fast_forward_is_not_a_rewrite(bare_remote: BareRemote, make_source: MakeSource) -> None:
    bare_remote.commit(MANIFESTS)
    source = make_source(bare_remote.file_url, history=HistoryPolicy.REFUSE)
    source.mark_applied(source.fetch())
    newer = bare_remote.commit({"deploy/app.yaml": "v: 3\n"})
    assert source.fetch().commit == newer
    assert source.history_rewrite is None


# --- signatures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpg_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GpgKey, GpgKey]]:
    root = tmp_path_factory.mktemp("gpg")
    trusted, other = GpgKey(root / "trusted", "trusted@x.invalid"), None
    try:
        other = GpgKey(root / "other", "other@x.invalid")
        yield trusted, other
    finally:
        trusted.close()
        if other is not None:
            other.close()


@pytest.fixture
def gpg_source(
    make_source: MakeSource, gpg_keys: tuple[GpgKey, GpgKey], tmp_path: Path
) -> Callable[[BareRemote], GitSource]:
    keyring = gpg_keys[0].export(tmp_path / "trusted.asc")
    return lambda remote: make_source(
        remote.file_url, signature=SignatureSettings(gpg_keyring=keyring)
    )


def test_gpg_signed_commit_is_accepted(
    bare_remote: BareRemote,
    gpg_keys: tuple[GpgKey, GpgKey],
    gpg_source: Callable[[BareRemote], GitSource],
) -> None:
    commit = bare_remote.commit(MANIFESTS, signer=gpg_keys[0].signer())
    with structlog.testing.capture_logs() as logs:
        assert gpg_source(bare_remote).fetch().commit == commit
    verified = [e for e in logs if e["event"] == "signature_verified"]
    assert verified[0]["signer"] == gpg_keys[0].fingerprint


def test_gpg_other_key_and_unsigned_are_refused(
    bare_remote: BareRemote,
    gpg_keys: tuple[GpgKey, GpgKey],
    gpg_source: Callable[[BareRemote], GitSource],
) -> None:
    bare_remote.commit(MANIFESTS, signer=gpg_keys[1].signer())
    source = gpg_source(bare_remote)
    with pytest.raises(SignatureError, match="not signed by a key in the keyring"):
        source.fetch()
    bare_remote.commit({"deploy/app.yaml": "v: unsigned\n"})
    with pytest.raises(SignatureError, match="not signed"):
        source.fetch()
    assert source.last_applied is None


@pytest.fixture
def ssh_signers(tmp_path: Path) -> tuple[SshSigningKey, SshSigningKey]:
    return (
        SshSigningKey(tmp_path / "sign_ok", "release@x.invalid"),
        SshSigningKey(tmp_path / "sign_other", "mallory@x.invalid"),
    )


def test_ssh_signed_commit_accepted_other_key_refused(
    bare_remote: BareRemote,
    make_source: MakeSource,
    ssh_signers: tuple[SshSigningKey, SshSigningKey],
    tmp_path: Path,
) -> None:
    trusted, other = ssh_signers
    allowed = trusted.allowed_signers(tmp_path / "allowed_signers")
    signed = bare_remote.commit(MANIFESTS, signer=trusted.signer())
    source = make_source(
        bare_remote.file_url, signature=SignatureSettings(ssh_allowed_signers=allowed)
    )
    revision = source.fetch()
    assert revision.commit == signed
    source.mark_applied(revision)
    bare_remote.commit({"deploy/app.yaml": "v: evil\n"}, signer=other.signer())
    with pytest.raises(SignatureError, match="not in allowed_signers"):
        source.fetch()
    bare_remote.commit({"deploy/app.yaml": "v: unsigned\n"})
    with pytest.raises(SignatureError, match="not signed"):
        source.fetch()
    assert source.last_applied == signed


def test_ssh_signature_without_allowed_signers_is_refused(
    bare_remote: BareRemote,
    make_source: MakeSource,
    ssh_signers: tuple[SshSigningKey, SshSigningKey],
    gpg_keys: tuple[GpgKey, GpgKey],
    tmp_path: Path,
) -> None:
    bare_remote.commit(MANIFESTS, signer=ssh_signers[0].signer())
    keyring = gpg_keys[0].export(tmp_path / "k.asc")
    source = make_source(bare_remote.file_url, signature=SignatureSettings(gpg_keyring=keyring))
    with pytest.raises(SignatureError, match="no allowed_signers"):
        source.fetch()
