"""The stand-in shown for a Secret value: a keyed hash, so a change shows but the value
cannot be confirmed by guessing.

An unsalted `sha256(value)[:8]` in logs, diffs and the journal let anyone reading them test
a guessed password offline. HMAC-SHA256 under a per-installation key (a file in the state
directory, created 0600 on first use) keeps the property that matters (the same value gives
the same stand-in, so a change is visible) without that one. Until a command loads its
installation's key, a random per-process key is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import threading
from pathlib import Path

from gitopsd.errors import StateError

KEY_FILE = "redaction.key"
_KEY_BYTES = 32
_lock = threading.Lock()
_key = secrets.token_bytes(_KEY_BYTES)


def stand_in(raw: bytes, key: bytes | None = None) -> str:
    """`<redacted hmac:xxxxxxxx>` for a secret value's bytes, under `key` or the loaded one."""
    with _lock:
        chosen = key if key is not None else _key
    return f"<redacted hmac:{hmac.new(chosen, raw, hashlib.sha256).hexdigest()[:8]}>"


def use_installation_key(state_dir: Path) -> None:
    """Hash stand-ins from now on with the key of the installation at `state_dir`."""
    global _key
    key = installation_key(state_dir)
    with _lock:
        _key = key


def installation_key(state_dir: Path) -> bytes:
    """The key in `state_dir`, created (0600, never overwritten) when there is none."""
    path = state_dir / KEY_FILE
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _create(path)
        key = path.read_bytes()
    except OSError as error:
        raise StateError(error.filename or path, error.strerror or str(error)) from error
    if len(key) != _KEY_BYTES:
        raise StateError(path, f"holds {len(key)} bytes, not {_KEY_BYTES}; delete it")
    return key


def _create(path: Path) -> None:
    """Write a new key beside `path`, then link it into place: a concurrent reader sees no
    key or a whole one, and of two creators the first link wins."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(secrets.token_bytes(_KEY_BYTES))
        # Another process may have linked its key first: that one is the key.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
