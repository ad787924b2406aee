"""The bare mirror of one remote under the state directory: made, opened, and repaired.

Only gitopsd writes its mirrors. Other processes are kept out by the state-directory
lock (gitopsd/lock.py) and other targets of this process by `Mirror.held`, so a lock
file found in a mirror by the holder is stale: a gitopsd was killed mid-fetch. A
mirror that lacks an object or holds a corrupt one says so (MirrorDamagedError),
never "remote unreachable"; a state directory that cannot be written is a StateError.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pygit2

from gitopsd.errors import MirrorDamagedError, StateError
from gitopsd.source.redact import strip_credentials

# What reading the object database raises on a missing or corrupt object.
_ODB_ERRORS = (pygit2.GitError, KeyError, ValueError, OSError)

_LOCKS: dict[Path, threading.Lock] = {}
# Every Repository opened on a mirror, released when the mirror is discarded: libgit2
# keeps packs open process-wide by path, so one left open would serve the deleted,
# corrupt pack to the fresh mirror.
_OPENED: dict[Path, weakref.WeakSet[pygit2.Repository]] = {}
_LOCKS_GUARD = threading.Lock()


def slug(text: str) -> str:
    """`text` reduced to a short file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[-48:] or "x"


def mirror_dir(state_dir: Path, repo_url: str) -> Path:
    """The mirror of one remote: shared by every target that reads from it."""
    clean = strip_credentials(repo_url)
    digest = hashlib.sha256(clean.encode()).hexdigest()[:12]
    return state_dir / "mirrors" / f"{slug(clean)}-{digest}"


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """A failure to write the state directory (disk full, read-only) as a StateError."""
    try:
        yield
    except OSError as exc:
        raise StateError(exc.filename or path, exc.strerror or str(exc)) from exc
    except pygit2.GitError as exc:  # libgit2 names the file in its message
        raise StateError(path, str(exc)) from exc


class Mirror:
    """One remote's bare mirror, as one target's source sees it."""

    def __init__(self, state_dir: Path, repo_url: str, log: Any) -> None:
        self.path = mirror_dir(state_dir, repo_url)
        self._key = self.path.resolve()
        self._log = log
        self._locks_cleared = False

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the mirror against other targets of this process that read the same remote.

        libgit2 takes its own lock files (refs, shallow) while fetching and fails at once
        on finding another's.
        """
        with _LOCKS_GUARD:
            lock = _LOCKS.setdefault(self._key, threading.Lock())
        with lock:
            yield

    def open(self) -> pygit2.Repository:
        """The mirror, made first if need be; the caller holds `held`."""
        if not self.path.exists():
            self._create()
        try:
            repo = pygit2.Repository(str(self.path))
        except pygit2.GitError:
            self._log.warning("mirror_recreated", path=str(self.path))
            with writing(self.path):
                shutil.rmtree(self.path)
            self._create()
            with writing(self.path):
                repo = pygit2.Repository(str(self.path))
        self._clear_stale_locks()
        with _LOCKS_GUARD:
            _OPENED.setdefault(self._key, weakref.WeakSet()).add(repo)
        return repo

    def discard(self) -> None:
        """Delete the mirror, so the next open makes it afresh."""
        with self.held(), writing(self.path):
            with _LOCKS_GUARD:
                opened = list(_OPENED.pop(self._key, ()))
            for repo in opened:
                repo.free()
            if self.path.exists():
                shutil.rmtree(self.path)

    @contextmanager
    def reading(self, action: str) -> Iterator[None]:
        """A missing or corrupt object met while reading the mirror, as MirrorDamagedError."""
        try:
            yield
        except _ODB_ERRORS as exc:
            detail = f"object {exc.args[0]} is missing" if isinstance(exc, KeyError) else exc
            raise MirrorDamagedError(
                f"mirror {self.path} is damaged: {action}: {detail}", retryable=False
            ) from exc

    def _create(self) -> None:
        # Initialise aside and rename, so a concurrent reader never opens a half-made mirror.
        with writing(self.path.parent):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=".new-"))
            try:
                pygit2.init_repository(str(tmp), bare=True)
            except pygit2.GitError:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        try:
            tmp.rename(self.path)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another target created it first

    def _clear_stale_locks(self) -> None:
        """Remove the lock files a killed gitopsd left, once per source (see the module doc).

        libgit2 refuses to update a ref whose `.lock` exists, so one left behind would fail
        every fetch that moves the ref, forever.
        """
        if self._locks_cleared:
            return
        with writing(self.path):
            stale = [*self.path.glob("*.lock"), *(self.path / "refs").rglob("*.lock")]
            for lock in sorted(stale):
                lock.unlink(missing_ok=True)
                self._log.warning("stale_lock_removed", path=str(lock))
        self._locks_cleared = True
