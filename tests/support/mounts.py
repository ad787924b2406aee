"""Real mounts for state-directory failures: a small tmpfs to fill, a read-only bind mount.

The suite runs as root, so file modes stop nothing; a full or read-only file system is
the real condition an operator meets. Every mount is undone when its context ends.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path


def _mount(*args: str | Path) -> None:
    subprocess.run(["mount", *map(str, args)], check=True, capture_output=True)


def _umount(path: Path) -> None:
    # Lazy: a test's own process may still hold a file open there (a mapped pack, a journal).
    subprocess.run(["umount", "--lazy", str(path)], check=True, capture_output=True)


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of `size` mounted on `path` (created if need be)."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", path)
    try:
        yield path
    finally:
        _umount(path)


def fill(folder: Path) -> None:
    """Write into `folder` until its file system has no byte left."""
    with open(folder / "filler", "wb", buffering=0) as out:
        for size in (65536, 4096, 512, 1):  # the last partial blocks too
            with contextlib.suppress(OSError):  # ENOSPC: full at this block size
                while out.write(b"\0" * size):
                    pass


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """`path` bind-mounted over itself, read-only, until the context ends."""
    _mount("--bind", path, path)
    try:
        _mount("-o", "remount,bind,ro", path)
        yield path
    finally:
        _umount(path)
