"""Read a target's manifests from a local directory (`gitopsd diff --path`), as safely as
from Git.

A working copy before it is pushed is previewed with the rules of the Git tree reader
(source/tree.py): only YAML/JSON files are read, none through a symlink that leads out
of the directory (CVE-2022-24348, CVE-2022-24904), sizes checked per file and per
revision before any content is read. Symlinked directories are not entered (Git stores
them as links, which the tree reader never walks into), and `.git` is skipped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from functools import partial
from pathlib import Path, PurePosixPath

from gitopsd.config import SourceSettings
from gitopsd.errors import PathNotFoundError, SourceError, UnsafeTreeError
from gitopsd.model import Revision, SourceFile, is_read
from gitopsd.source.snapshot import Origin, Snapshot


def read_directory(target: str, directory: Path, settings: SourceSettings) -> Snapshot:
    """The manifests under `directory`, with the target's size limits, as a Snapshot."""
    reader = _DirectoryReader(target, directory, settings)
    files = reader.read()
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.path}\0{len(file.content)}\0".encode())
        digest.update(file.content)
    # Not a commit: named so that no log or output mistakes it for one.
    revision = Revision(f"local-{digest.hexdigest()[:16]}", str(reader.root), "local directory")
    top = repository_root(reader.root, settings.path)
    checkout = partial(_write_out, reader, top) if top is not None else None
    return Snapshot(revision, files, Origin.PATH, checkout=checkout)


def repository_root(directory: Path, path: str) -> Path | None:
    """The working copy's top for a target whose `path` is `directory`: `directory` with
    `path`'s parts taken off its end; None when it does not end with them."""
    parts = [part for part in PurePosixPath(path).parts if part not in (".", "/")]
    if not parts:
        return directory
    if len(parts) >= len(directory.parts) or list(directory.parts[-len(parts) :]) != parts:
        return None
    return directory.parents[len(parts) - 1]


def _write_out(reader: _DirectoryReader, top: Path, _: Revision, into: Path) -> frozenset[str]:
    """Copy the working copy at `top` into `into` for kustomize and Helm, as GitSource
    writes a commit out: `.git` skipped, links leading out left out (and returned)."""
    escaping: list[str] = []
    total = 0
    for folder, subfolders, names in os.walk(top, onerror=reader._walk_error):
        subfolders[:] = sorted(name for name in subfolders if name != ".git")
        here = Path(folder)
        (into / here.relative_to(top)).mkdir(mode=0o700, exist_ok=True)
        for name in [*names, *(d for d in subfolders if (here / d).is_symlink())]:
            source = here / name
            relative = source.relative_to(top).as_posix()
            if source.is_symlink():
                if not Path(os.path.realpath(source)).is_relative_to(top):
                    escaping.append(relative)
                    continue
                os.symlink(os.readlink(source), into / relative)
                continue
            if not source.is_file():
                continue  # a FIFO or socket: nothing a renderer reads
            total += source.stat().st_size
            if total > reader.max_total:
                raise reader.error(
                    UnsafeTreeError,
                    f"the working copy at {top} totals more than max_revision_size "
                    f"({reader.max_total} bytes): raise max_revision_size for this target",
                )
            shutil.copyfile(source, into / relative, follow_symlinks=False)
            (into / relative).chmod(0o600)
    return frozenset(escaping)


class _DirectoryReader:
    def __init__(self, target: str, directory: Path, settings: SourceSettings) -> None:
        self.target = target
        self.directory = directory
        self.max_bytes = settings.max_file_bytes
        self.max_total = settings.max_revision_bytes
        self.root = Path(os.path.realpath(directory))

    def error(self, cls: type[SourceError], what: str) -> SourceError:
        return cls(f"target {self.target}, directory {self.directory}: {what}")

    def read(self) -> tuple[SourceFile, ...]:
        if not self.root.is_dir():
            raise self.error(PathNotFoundError, "not a directory (give the folder of manifests)")
        found = sorted(self._manifests())
        total = sum(size for _, _, size in found)
        if total > self.max_total:
            raise self.error(
                UnsafeTreeError,
                f"the {len(found)} manifests total {total} bytes, above max_revision_size "
                f"({self.max_total} bytes)",
            )
        return tuple(
            SourceFile(relative, self._content(relative, real)) for relative, real, _ in found
        )

    def _manifests(self) -> list[tuple[str, Path, int]]:
        """(path relative to the directory, real path, size) of every file to read."""
        found = []
        for folder, subfolders, names in os.walk(self.root, onerror=self._walk_error):
            # Sorted, as Git trees are: the first problem reported is always the same one.
            subfolders[:] = sorted(name for name in subfolders if name != ".git")
            for name in sorted(names):
                path = Path(folder, name)
                relative = path.relative_to(self.root).as_posix()
                # Case-insensitive like the tree reader's: `app.YAML` is read.
                if is_read(relative):
                    entry = self._entry(relative, path)
                    if entry is not None:
                        found.append(entry)
        return found

    def _entry(self, relative: str, path: Path) -> tuple[str, Path, int] | None:
        real = Path(os.path.realpath(path))
        if path.is_symlink() and not real.is_relative_to(self.root):
            raise self.error(
                UnsafeTreeError,
                f"symlink {relative!r} points outside the directory (to {os.readlink(path)!r})",
            )
        try:
            info = real.stat()
        except FileNotFoundError:
            return None  # a dangling link: nothing to read, nothing escapes
        except OSError as exc:
            raise self.error(SourceError, f"cannot read {relative!r}: {exc.strerror}") from exc
        if stat.S_ISDIR(info.st_mode):
            return None  # a link to a folder inside: not walked, as in Git
        if not stat.S_ISREG(info.st_mode):
            raise self.error(UnsafeTreeError, f"{relative!r} is not a regular file")
        if info.st_size > self.max_bytes:
            raise self.error(
                UnsafeTreeError,
                f"file {relative!r} is {info.st_size} bytes, above the limit of {self.max_bytes}",
            )
        return relative, real, info.st_size

    def _content(self, relative: str, real: Path) -> bytes:
        try:
            with real.open("rb") as handle:
                data = handle.read(self.max_bytes + 1)  # it may have grown since stat
        except OSError as exc:
            raise self.error(SourceError, f"cannot read {relative!r}: {exc.strerror}") from exc
        if len(data) > self.max_bytes:
            raise self.error(
                UnsafeTreeError, f"file {relative!r} is above the limit of {self.max_bytes} bytes"
            )
        return data

    def _walk_error(self, error: OSError) -> None:
        raise self.error(SourceError, f"cannot list {error.filename}: {error.strerror}") from error
