"""The lock on the state directory: one gitopsd per mirrors and journal.

Two cron runs overlapping, or a cron run beside the daemon, would otherwise
fetch into the same mirrors and apply the same targets at once. flock is
released by the kernel when the process dies, so a crash never leaves it stale.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from gitopsd.errors import LockError, StateError

LOCK_NAME = "gitopsd.lock"


class StateLock:
    """An exclusive flock on `<state_dir>/gitopsd.lock`, holding the owner's pid."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, *, wait: bool = False) -> None:
        """Take the lock; LockError at once when another process holds it and `wait` is False.

        Only that is a LockError (exit 4, not restarted by systemd); a lock file that cannot
        be made or written is a StateError naming it (a full disk, a read-only mount).
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StateError(self.path, exc.strerror or str(exc)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise LockError(
                f"another gitopsd{holder} is using the state directory {self.path.parent}; "
                "use --wait-lock to wait for it"
            ) from None
        except OSError as exc:  # ENOLCK: a file system without locks (some NFS mounts)
            os.close(fd)
            raise StateError(self.path, exc.strerror or str(exc)) from exc
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            os.close(fd)
            raise StateError(self.path, exc.strerror or str(exc)) from exc
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> StateLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""
