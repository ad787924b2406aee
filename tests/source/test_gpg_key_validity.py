"""A commit signed by a key that has since expired, or was revoked, is refused: being in
the keyring is not enough (issue 11; `--trust-model always` used to accept both)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitopsd.config import SignatureSettings
from gitopsd.errors import SignatureError
from tests.source.conftest import MANIFESTS, MakeSource
from tests.support.git_remotes import BareRemote, GpgKey, run

DAY = 86400


def _gpg_time(seconds: float) -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))


class AgingKey(GpgKey):
    """A key made three days ago with no expiry: it signs today, then is expired or revoked."""

    def __init__(self, home: Path, email: str) -> None:
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)
        self.home, self.env = home, {"GNUPGHOME": str(home)}
        run(
            *("gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", ""),
            *("--faked-system-time", _gpg_time(time.time() - 3 * DAY)),
            *("--quick-generate-key", f"gitopsd tests <{email}>", "ed25519", "sign", "never"),
            env=self.env,
        )
        listing = run("gpg", "--batch", "--with-colons", "--list-keys", email, env=self.env)
        self.fingerprint = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )

    def expire_yesterday(self) -> None:
        """A new self-signature dated two days ago that makes the key expire a day later."""
        run(
            *("gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", ""),
            *("--faked-system-time", _gpg_time(time.time() - 2 * DAY)),
            *("--quick-set-expire", self.fingerprint, "1d"),
            env=self.env,
        )

    def revoke(self) -> None:
        certificate = self.home / "openpgp-revocs.d" / f"{self.fingerprint}.rev"
        text = certificate.read_text().replace(":-----BEGIN", "-----BEGIN")
        revocation = self.home / "revocation.asc"
        revocation.write_text(text)
        run("gpg", "--batch", "--import", str(revocation), env=self.env)


@pytest.fixture
def aging_key(tmp_path: Path) -> Iterator[AgingKey]:
    key = AgingKey(tmp_path / "gnupg", "aging@x.invalid")
    try:
        yield key
    finally:
        key.close()


@pytest.mark.parametrize("fate", ["expired", "revoked"])
def test_a_commit_by_a_key_no_longer_valid_is_refused(
    bare_remote: BareRemote, aging_key: AgingKey, make_source: MakeSource, tmp_path: Path, fate: str
) -> None:
    bare_remote.commit(MANIFESTS, signer=aging_key.signer())
    valid = aging_key.export(tmp_path / "valid.asc")
    source = make_source(bare_remote.file_url, signature=SignatureSettings(gpg_keyring=valid))
    assert source.fetch().commit == bare_remote.head()  # the same commit, key still valid

    aging_key.expire_yesterday() if fate == "expired" else aging_key.revoke()
    keyring = aging_key.export(tmp_path / f"{fate}.asc")
    source = make_source(
        bare_remote.file_url,
        target=f"web-{fate}",
        signature=SignatureSettings(gpg_keyring=keyring),
    )
    with pytest.raises(SignatureError) as refused:
        source.fetch()
    words = "has expired" if fate == "expired" else "has been revoked"
    message = str(refused.value)
    assert f"signed by key {aging_key.fingerprint}, which {words}" in message
    assert "\n" not in message
