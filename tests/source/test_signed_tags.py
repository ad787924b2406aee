"""verify.mode: the annotated tag's own signature (`git tag -s`, GPG or SSH), the commit's,
or both, as Flux's Tag / HEAD / TagAndHEAD (issue 11)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from gitopsd.config import RefKind, SignatureSettings, VerifyMode, load_config
from gitopsd.errors import ConfigError, SignatureError
from tests.source.conftest import MANIFESTS, MakeSource
from tests.support.git_remotes import BareRemote, GpgKey, Signer, SshSigningKey, run


def _signed_tag(remote: BareRemote, name: str, signer: Signer | None) -> None:
    """`git tag -s` (or -a without a signer) of the head, pushed."""
    options = [
        item
        for key, val in (signer.config if signer else {}).items()
        for item in ("-c", f"{key}={val}")
    ]
    kind = "-s" if signer else "-a"
    env = signer.env if signer else {}
    run("git", *options, "-C", remote.work, "tag", kind, "-m", name, name, env=env)
    run("git", "-C", remote.work, "push", "-q", "origin", f"refs/tags/{name}")


@pytest.fixture(scope="module")
def gpg_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpgKey]:
    key = GpgKey(tmp_path_factory.mktemp("gpg-tags"), "tagger@x.invalid")
    try:
        yield key
    finally:
        key.close()


def _source(make_source: MakeSource, remote: BareRemote, settings: SignatureSettings) -> object:
    return make_source(remote.file_url, ref_kind=RefKind.TAG, ref="v1.0.0", signature=settings)


def test_a_gpg_signed_tag_passes_tag_mode_on_an_unsigned_commit(
    bare_remote: BareRemote, gpg_key: GpgKey, make_source: MakeSource, tmp_path: Path
) -> None:
    commit = bare_remote.commit(MANIFESTS)  # unsigned: only the tag is
    _signed_tag(bare_remote, "v1.0.0", gpg_key.signer())
    keyring = gpg_key.export(tmp_path / "keys.asc")
    tag_mode = SignatureSettings(gpg_keyring=keyring, mode=VerifyMode.TAG)
    with structlog.testing.capture_logs() as logs:
        assert _source(make_source, bare_remote, tag_mode).fetch().commit == commit  # type: ignore[attr-defined]
    verified = [e for e in logs if e["event"] == "signature_verified"]
    assert [(e["tag"], e["signer"]) for e in verified] == [("v1.0.0", gpg_key.fingerprint)]

    for mode in (VerifyMode.COMMIT, VerifyMode.BOTH):  # the commit itself is unsigned
        settings = SignatureSettings(gpg_keyring=keyring, mode=mode)
        with pytest.raises(SignatureError, match="is not signed"):
            _source(make_source, bare_remote, settings).fetch()  # type: ignore[attr-defined]


@pytest.mark.parametrize("tag", ["annotated", "lightweight"])
def test_an_unsigned_tag_fails_tag_mode_even_on_a_signed_commit(
    bare_remote: BareRemote, gpg_key: GpgKey, make_source: MakeSource, tmp_path: Path, tag: str
) -> None:
    bare_remote.commit(MANIFESTS, signer=gpg_key.signer())
    if tag == "annotated":
        _signed_tag(bare_remote, "v1.0.0", None)
    else:
        bare_remote.tag("v1.0.0")
    keyring = gpg_key.export(tmp_path / "keys.asc")
    source = _source(
        make_source, bare_remote, SignatureSettings(gpg_keyring=keyring, mode=VerifyMode.BOTH)
    )
    with pytest.raises(SignatureError) as refused:
        source.fetch()  # type: ignore[attr-defined]
    reason = "the tag is not signed" if tag == "annotated" else "lightweight tag"
    assert "tag v1.0.0: " in str(refused.value) and reason in str(refused.value)


def test_an_ssh_signed_tag_and_commit_pass_both(
    bare_remote: BareRemote, make_source: MakeSource, tmp_path: Path
) -> None:
    key = SshSigningKey(tmp_path / "signing", "release@x.invalid")
    commit = bare_remote.commit(MANIFESTS, signer=key.signer())
    _signed_tag(bare_remote, "v1.0.0", key.signer())
    allowed = key.allowed_signers(tmp_path / "allowed_signers")
    both = SignatureSettings(ssh_allowed_signers=allowed, mode=VerifyMode.BOTH)
    assert _source(make_source, bare_remote, both).fetch().commit == commit  # type: ignore[attr-defined]


def test_tag_mode_needs_a_tag_ref(tmp_path: Path) -> None:
    path = tmp_path / "gitopsd.yaml"
    path.write_text(
        "state_dir: state\ntargets:\n  - {name: web, repo: 'https://h/r.git', branch: main, "
        "verify: {gpg_keyring: /k.asc, mode: tag}}\n"
    )
    with pytest.raises(
        ConfigError, match=r"targets\[0\]\.verify\.mode: tag needs a tag: or semver: ref"
    ):
        load_config(path)


def test_a_preview_in_tag_mode_does_not_refuse_an_unsigned_commit(
    bare_remote: BareRemote, gpg_key: GpgKey, make_source: MakeSource, tmp_path: Path
) -> None:
    bare_remote.commit(MANIFESTS)
    keyring = gpg_key.export(tmp_path / "keys.asc")
    for mode, refused in ((VerifyMode.TAG, False), (VerifyMode.BOTH, True)):
        source = _source(
            make_source, bare_remote, SignatureSettings(gpg_keyring=keyring, mode=mode)
        )
        snapshot = source.snapshot("main")  # type: ignore[attr-defined]
        assert (snapshot.refusal is not None) is refused, mode
