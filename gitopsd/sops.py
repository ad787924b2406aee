"""Decrypt the SOPS-encrypted files of a revision in memory, before any renderer reads them.

Secrets may live in Git only encrypted. The `sops` command users already have does the
work, fed the file on stdin and read back from a pipe, so no decrypted byte touches a
disk; sops reads the key material from the files the target names. sops's own output is
never shown: it can quote the file, so each failure is classified into a one-line reason
naming the file. What the files hold is read by gitopsd.sopsfiles (pure).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import tempfile
from binascii import Error as Base64Error
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from gitopsd.decryptconfig import DecryptionSettings
from gitopsd.errors import DecryptionError
from gitopsd.model import SourceFile
from gitopsd.sopsfiles import (
    Decrypted,
    carries_ciphertext,
    mark_decrypted,
    recipients,
    secret_values,
    shows_ciphertext_of,
    sops_format,
)

__all__ = [
    "Decrypted",
    "TreeDecryption",
    "decrypt_files",
    "decrypt_tree",
    "mark_decrypted",
    "private_base",
    "private_dir",
    "recipients",
    "sops_format",
]

# sops exit codes (cmd/sops/codes): why a decryption failed.
_MAC_MISMATCH, _MAC_NOT_FOUND, _NO_KEY = 51, 52, 128
# ErrorDecryptingMac, ErrorDecryptingTree: a value's or the MAC's ciphertext fails AES-GCM
# authentication, which is what an edit of the encrypted bytes themselves gives.
_CIPHERTEXT_TAMPERED = (24, 25)
_TIMEOUT_SECONDS = 60.0
_PARALLEL = 4


def decrypt_files(
    files: Sequence[SourceFile], settings: DecryptionSettings | None, target: str
) -> Decrypted:
    """Every file, SOPS-encrypted ones decrypted; DecryptionError refuses the revision."""
    found = [(file, fmt) for file in files if (fmt := sops_format(file)) is not None]
    if not found:
        return Decrypted(tuple(files))
    if settings is None:
        raise DecryptionError(
            f"{found[0][0].path}: encrypted with SOPS; set decryption on target {target} "
            "(decryption: {provider: sops, age_key_file: ...})"
        )
    decrypted: dict[str, SourceFile] = {}
    values: set[str] = set()
    for (file, fmt), plain in zip(found, _decrypt_all(settings, found), strict=True):
        if isinstance(plain, _Refused):
            raise DecryptionError(
                f"{file.path}: {plain.reason}", retryable=plain.retryable
            ) from plain.__cause__
        decrypted[file.path] = replace(file, content=plain)
        values.update(secret_values(file, plain, fmt))
    return Decrypted(
        tuple(decrypted.get(file.path, file) for file in files),
        frozenset(decrypted),
        frozenset(values),
    )


@dataclass(frozen=True)
class TreeDecryption:
    """What decrypting a written-out repository did: files decrypted in place, and why
    others could not be (they matter only if the render reads them)."""

    root: Path
    target: str
    decrypted: Decrypted
    refused: tuple[tuple[str, str, bytes], ...] = ()  # (path, reason, content), path order

    def check_output(self, output: bytes) -> None:
        """Refuse a render whose output still carries SOPS-encrypted values."""
        if not carries_ciphertext(output):
            return
        if self.refused:
            # The file whose ciphertext shows in the output, else the first one refused.
            path, reason, _ = next(
                (r for r in self.refused if shows_ciphertext_of(r[2], output)),
                self.refused[0],
            )
            raise DecryptionError(f"{path}: {reason}")
        found = next((file.path for _, file, _ in _sops_files(self.root)), None)
        if found is not None:  # no decryption section: the tree was not even read
            raise DecryptionError(
                f"{found}: encrypted with SOPS; set decryption on target {self.target}"
            )
        raise DecryptionError(
            f"target {self.target}: the render output carries SOPS-encrypted values "
            "(ENC[...]) that come from no SOPS file of the repository; refusing the revision"
        )


def decrypt_tree(root: Path, settings: DecryptionSettings | None, target: str) -> TreeDecryption:
    """Decrypt in place every SOPS file under `root`, a checkout in a private_dir.

    A repository may hold files encrypted for other targets' keys: a file that cannot be
    decrypted is left as it is and refuses the revision only if the render output shows
    it was read (see TreeDecryption.check_output).
    """
    found = list(_sops_files(root)) if settings is not None else []
    if settings is None or not found:
        return TreeDecryption(root, target, Decrypted(files=()))
    paths, values, refused = set(), set(), []
    inputs = [(file, fmt) for _, file, fmt in found]
    for (path, file, fmt), plain in zip(found, _decrypt_all(settings, inputs), strict=True):
        if isinstance(plain, _Refused):
            refused.append((file.path, plain.reason, file.content))
            continue
        path.write_bytes(plain)
        paths.add(file.path)
        values.update(secret_values(file, plain, fmt))
    decrypted = Decrypted(files=(), paths=frozenset(paths), values=frozenset(values))
    return TreeDecryption(root, target, decrypted, tuple(refused))


def _sops_files(root: Path) -> Iterator[tuple[Path, SourceFile, str]]:
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        file = SourceFile(path.relative_to(root).as_posix(), path.read_bytes())
        fmt = sops_format(file)
        if fmt is not None:
            yield path, file, fmt


def private_base(settings: DecryptionSettings | None) -> str | None:
    """Where a render that may hold decrypted files works: a tmpfs when decrypting."""
    shm = Path("/dev/shm")
    if settings is None or not (shm.is_dir() and os.access(shm, os.W_OK | os.X_OK)):
        return None
    return str(shm)


@contextlib.contextmanager
def private_dir(prefix: str = "gitopsd-sops-") -> Iterator[Path]:
    """A 0700 folder on a tmpfs (/dev/shm) when there is one, removed with all it holds."""
    base = private_base(DecryptionSettings())
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))  # mkdtemp makes it 0700
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _environment(settings: DecryptionSettings, home: Path) -> dict[str, str]:
    """sops's whole environment: the configured keys and nothing the daemon happens to have
    (no ~/.config/sops/age/keys.txt, no ~/.gnupg, no cloud credentials)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home),
        "GNUPGHOME": str(home),
        # Without a GnuPG home configured, sops must not start gpg (and its agent).
        "SOPS_GPG_EXEC": shutil.which("false") or "/bin/false",
    }
    if settings.age_key_file is not None:
        # sops would only say that no key could decrypt: name the file that is not there.
        if not os.access(settings.age_key_file, os.R_OK):
            problem = "does not exist" if not settings.age_key_file.exists() else "is unreadable"
            raise DecryptionError(
                f"age_key_file {settings.age_key_file} {problem}: fix decryption.age_key_file "
                "or give gitopsd's user read access to it",
                retryable=True,
            )
        env["SOPS_AGE_KEY_FILE"] = str(settings.age_key_file)
    keyring = settings.gpg_keyring
    if keyring is not None and keyring.is_dir():
        env["GNUPGHOME"] = str(keyring)
        env["SOPS_GPG_EXEC"] = "gpg"
    elif keyring is not None:
        # Exported secret keys: sops reads a legacy secring.gpg itself, without gpg.
        _write_secring(keyring, home / "secring.gpg")
    return env


def _write_secring(keyring: Path, secring: Path) -> None:
    try:
        data = keyring.read_bytes()
    except OSError as exc:
        raise DecryptionError(
            f"cannot read gpg_keyring {keyring}: {exc.strerror or exc}", retryable=True
        ) from exc
    if data.lstrip().startswith(b"-----BEGIN PGP"):
        data = _dearmor(data, keyring)
    fd = os.open(secring, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _dearmor(armored: bytes, keyring: Path) -> bytes:
    """The binary packets of an ASCII-armored key block (RFC 4880 section 6.2)."""
    lines = armored.decode("ascii", errors="replace").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("-----BEGIN"))
        blank = next(i for i in range(start + 1, len(lines)) if not lines[i].strip())
        body = []
        for line in lines[blank + 1 :]:
            if line.startswith(("=", "-----END")):
                break
            body.append(line.strip())
        return base64.b64decode("".join(body), validate=True)
    except (StopIteration, Base64Error) as exc:
        raise DecryptionError(
            f"gpg_keyring {keyring}: not an OpenPGP key block: export it with "
            "`gpg --export-secret-keys`, or name a GnuPG home folder"
        ) from exc


def _decrypt_all(
    settings: DecryptionSettings, found: Sequence[tuple[SourceFile, str]]
) -> list[bytes | _Refused]:
    """Each file's plaintext, or why sops refused it; a few sops processes at a time,
    since each spends most of its time starting (measured in README)."""
    with private_dir() as home:
        env = _environment(settings, home)

        def one(item: tuple[SourceFile, str]) -> bytes | _Refused:
            try:
                return _run_sops(settings.sops_tool, item[0], item[1], env)
            except _Refused as refusal:
                return refusal

        if len(found) == 1:
            return [one(found[0])]
        with ThreadPoolExecutor(max_workers=_PARALLEL) as pool:
            return list(pool.map(one, found))


def _run_sops(tool: str, file: SourceFile, fmt: str, env: Mapping[str, str]) -> bytes:
    command = [tool, "decrypt", "--input-type", fmt, "--output-type", fmt]
    try:
        result = subprocess.run(
            command, input=file.content, capture_output=True, env=dict(env),
            timeout=_TIMEOUT_SECONDS, check=False,
        )  # fmt: skip
    except OSError as exc:
        raise _Refused(
            f"encrypted with SOPS, and the sops command {tool!r} cannot be run "
            f"({exc.strerror or exc}): install sops or set tools.sops on the target",
            retryable=True,
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise _Refused(
            f"sops took longer than {_TIMEOUT_SECONDS:.0f}s to decrypt it", retryable=True
        ) from exc
    if result.returncode != 0:
        raise _Refused(_reason(result.returncode, file))
    return result.stdout


class _Refused(Exception):
    """sops did not decrypt one file; `reason` is one line, without the file's name."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.retryable = reason, retryable


def _reason(code: int, file: SourceFile) -> str:
    """Why sops refused, from its exit code and the file's metadata (never its output)."""
    if code == _MAC_MISMATCH:
        return (
            "MAC mismatch: the file was changed after it was encrypted (edit it only "
            "with `sops`); refusing the revision"
        )
    if code in _CIPHERTEXT_TAMPERED:
        return (
            "an encrypted value does not authenticate: its ciphertext was changed after it "
            "was encrypted (edit the file only with `sops`); refusing the revision"
        )
    if code == _MAC_NOT_FOUND:
        return "SOPS metadata has no MAC: re-encrypt the file with `sops encrypt`"
    if code == _NO_KEY:
        listed = ", ".join(recipients(file)) or "none listed"
        return (
            f"no key able to decrypt it (recipients: {listed}); add a matching identity "
            "to decryption.age_key_file or decryption.gpg_keyring"
        )
    return f"sops could not decrypt it (sops exit code {code}); try `sops decrypt` on it by hand"
