"""Check that a commit or tag carries a valid signature from a trusted key (OpenPGP or SSH).

Verification runs the real tools (`gpg`, `ssh-keygen -Y`) on the signature and the
signed payload that pygit2 extracts, as `git verify-commit` does.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path

from gitopsd.config import SignatureSettings

SSH_ARMOR = b"-----BEGIN SSH SIGNATURE-----"
PGP_ARMOR = b"-----BEGIN PGP SIGNATURE-----"
_TOOL_TIMEOUT = 30


class Untrusted(Exception):
    """The signature is missing, invalid, or made by a key that is not trusted."""


def verify_signature(
    signature: bytes | None,
    payload: bytes | None,
    settings: SignatureSettings,
    state_dir: Path,
    what: str = "commit",
) -> str:
    """Who signed (fingerprint or principal); raise Untrusted unless a trusted key did.
    `what` (commit, tag) names the signed object in the messages."""
    if signature is None or payload is None:
        raise Untrusted(f"the {what} is not signed")
    if signature.lstrip().startswith(SSH_ARMOR):
        if settings.ssh_allowed_signers is None:
            raise Untrusted(f"the {what} has an SSH signature but no allowed_signers is set")
        return _verify_ssh(signature, payload, settings.ssh_allowed_signers, what)
    if signature.lstrip().startswith(PGP_ARMOR):
        if settings.gpg_keyring is None:
            raise Untrusted(f"the {what} has an OpenPGP signature but no keyring is set")
        return _verify_gpg(signature, payload, settings.gpg_keyring, state_dir, what)
    raise Untrusted(f"the {what} has a signature of an unknown kind")


def tag_signature(raw: bytes) -> tuple[bytes | None, bytes]:
    """An annotated tag object's signature and the payload it signs: git appends the
    signature block to the tag message, and signs everything before it."""
    starts = [raw.rfind(b"\n" + armor) for armor in (PGP_ARMOR, SSH_ARMOR)]
    start = max(starts)
    if start < 0:
        return None, raw
    return raw[start + 1 :], raw[: start + 1]


def _run(args: list[str], *, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            args, input=stdin, capture_output=True, timeout=_TOOL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Untrusted(f"cannot run {args[0]}: {exc}") from exc


def _verify_ssh(signature: bytes, payload: bytes, allowed_signers: Path, what: str) -> str:
    with tempfile.NamedTemporaryFile(suffix=".sig") as sig:
        sig.write(signature)
        sig.flush()
        found = _run(
            ["ssh-keygen", "-Y", "find-principals", "-f", str(allowed_signers), "-s", sig.name]
        )
        principals = found.stdout.decode(errors="replace").split()
        if found.returncode != 0 or not principals:
            raise Untrusted(f"the {what} is signed by an SSH key not in allowed_signers")
        for principal in principals:
            checked = _run(
                [
                    "ssh-keygen",
                    "-Y",
                    "verify",
                    "-f",
                    str(allowed_signers),
                    "-I",
                    principal,
                    "-n",
                    "git",
                    "-s",
                    sig.name,
                ],
                stdin=payload,
            )
            if checked.returncode == 0:
                return principal
    raise Untrusted(f"the {what}'s SSH signature does not verify")


def _gpg_home(keyring: Path, state_dir: Path) -> Path:
    """A GnuPG home holding only the target's keyring, imported once per keyring content."""
    data = keyring.read_bytes()
    home = state_dir / "gnupg" / hashlib.sha256(data).hexdigest()[:16]
    if (home / "imported").exists():
        return home
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    imported = _run(
        ["gpg", "--homedir", str(home), "--batch", "--no-autostart", "--import"], stdin=data
    )
    if imported.returncode != 0:
        raise Untrusted(f"cannot import keyring {keyring}")
    (home / "imported").touch()
    return home


def _verify_gpg(signature: bytes, payload: bytes, keyring: Path, state_dir: Path, what: str) -> str:
    try:
        home = _gpg_home(keyring, state_dir)
    except OSError as exc:
        raise Untrusted(f"cannot read keyring {keyring}: {exc.strerror}") from exc
    with tempfile.NamedTemporaryFile(suffix=".asc") as sig:
        sig.write(signature)
        sig.flush()
        # Trust comes from being in the target's keyring, not from the web of trust.
        checked = _run(
            [
                "gpg",
                "--homedir",
                str(home),
                "--batch",
                "--no-autostart",
                "--trust-model",
                "always",
                "--status-fd",
                "1",
                "--verify",
                sig.name,
                "-",
            ],
            stdin=payload,
        )
    status = checked.stdout.decode(errors="replace").splitlines()
    valid = [line.split()[2] for line in status if line.startswith("[GNUPG:] VALIDSIG ")]
    if checked.returncode != 0 or not valid:
        raise Untrusted(f"the {what} is not signed by a key in the keyring")
    problem = key_problem(status)
    if problem:
        raise Untrusted(f"the {what} is signed by key {valid[0]}, which {problem}")
    return valid[0]


# gpg's status words for a signature that verifies but must not be trusted. `--trust-model
# always` takes the keyring's keys as trusted; it does not make an expired key valid again.
_KEY_PROBLEMS = {
    "EXPKEYSIG": "has expired",
    "REVKEYSIG": "has been revoked",
    "EXPSIG": "made a signature that has expired",
}


def key_problem(status: list[str]) -> str | None:
    """Why a verified signature is still refused, from gpg's --status-fd lines; None if good."""
    for line in status:
        words = line.split()
        if len(words) > 1 and words[0] == "[GNUPG:]" and words[1] in _KEY_PROBLEMS:
            return _KEY_PROBLEMS[words[1]]
    if not any(line.startswith("[GNUPG:] GOODSIG ") for line in status):
        return "gpg did not report as good"
    return None
