"""Write one commit's whole tree into a directory, for renderers that run a tool.

kustomize and Helm read files themselves (`../../base`, `values-prod.yaml`, templates), so
they need a directory, not the manifests tree.py hands the plain renderer. The tree is
written from the object database into a fresh private directory, with the same rules:
a symlink that leads out of the repository (CVE-2022-24348, CVE-2022-24904) is not
written, and its path is returned so a renderer that needs it can refuse by name;
submodules are skipped; the total size is bounded by max_revision_size.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from pathlib import Path

import pygit2
from pygit2.enums import FileMode, ObjectType

from gitopsd.errors import SourceError, UnsafeTreeError

ErrorFactory = Callable[[type[SourceError], str], SourceError]


def export_tree(
    repo: pygit2.Repository,
    root: pygit2.Tree,
    directory: Path,
    *,
    max_total: int,
    error: ErrorFactory,
) -> frozenset[str]:
    """Write `root` under `directory`; the repository paths of symlinks left out."""
    exporter = _Exporter(repo, directory, max_total, error)
    exporter.write(root, "")
    return frozenset(exporter.escaping)


class _Exporter:
    def __init__(
        self, repo: pygit2.Repository, directory: Path, max_total: int, error: ErrorFactory
    ):
        self.repo = repo
        self.directory = directory
        self.max_total = max_total
        self.error = error
        self.total = 0
        self.escaping: list[str] = []

    def write(self, tree: pygit2.Tree, prefix: str) -> None:
        (self.directory / prefix).mkdir(mode=0o700, exist_ok=True)
        for entry in tree:
            path = f"{prefix}/{entry.name}" if prefix else str(entry.name)
            if entry.type == ObjectType.TREE:
                self.write(self.repo[entry.id].peel(pygit2.Tree), path)
            elif entry.type == ObjectType.BLOB and entry.filemode == FileMode.LINK:
                self._link(path, entry)
            elif entry.type == ObjectType.BLOB:
                self._file(path, entry)

    def _file(self, path: str, entry: pygit2.Object) -> None:
        _, data = self.repo.odb.read(entry.id)
        self.total += len(data)
        if self.total > self.max_total:
            raise self.error(
                UnsafeTreeError,
                f"the repository's files total more than max_revision_size ({self.max_total} "
                "bytes) when written out for rendering: raise max_revision_size for this target",
            )
        mode = 0o700 if entry.filemode == FileMode.BLOB_EXECUTABLE else 0o600
        fd = os.open(self.directory / path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)

    def _link(self, path: str, entry: pygit2.Object) -> None:
        link = self.repo[entry.id].peel(pygit2.Blob).data.decode(errors="replace")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), link))
        if link.startswith("/") or resolved == ".." or resolved.startswith("../"):
            self.escaping.append(path)
            return
        # Inside the tree: a further link is written the same way, checked on its own.
        os.symlink(link, self.directory / path)
