"""Read a target's declared files straight from the object database, safely.

Reading from the odb (never a checkout) means a reader never sees a half-updated tree.
Safety rules follow the path-escape CVEs of Argo CD (CVE-2022-24348, CVE-2022-24904):
only files inside `path`, none read through a symlink leading out of it, and size
limits per file and per revision, checked from object headers before any content is
read (a revision of twenty 3.9 MB files once cost a gigabyte of memory before the API
server refused it). A symlink that is never read (no manifest suffix) is left alone.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator

import pygit2
from pygit2.enums import FileMode, ObjectType

from gitopsd.errors import PathNotFoundError, SourceError, UnsafeTreeError
from gitopsd.model import SourceFile, is_read

_MAX_LINK_HOPS = 8

ErrorFactory = Callable[[type[SourceError], str], SourceError]


def _within(repo_path: str, base: str) -> bool:
    return not base or repo_path == base or repo_path.startswith(base + "/")


class TreeReader:
    """Collects the manifests under `base` in one commit's tree."""

    def __init__(
        self,
        repo: pygit2.Repository,
        root: pygit2.Tree,
        base: str,
        max_bytes: int,
        error: ErrorFactory,
        *,
        max_total: int,
    ) -> None:
        self.repo = repo
        self.root = root
        self.base = base
        self.max_bytes = max_bytes
        self.max_total = max_total
        self.error = error

    def read(self) -> tuple[SourceFile, ...]:
        """Every YAML/JSON file under `base`, paths relative to it, sorted."""
        tree = self._subtree()
        found = [self._blob(path, entry) for path, entry in self._walk(tree, self.base)]
        blobs = sorted(blob for blob in found if blob is not None)
        total = sum(size for _, _, size in blobs)
        if total > self.max_total:
            raise self.error(
                UnsafeTreeError,
                f"the {len(blobs)} manifests under {self.base or 'the repository root'!r} "
                f"total {total} bytes, above max_revision_size ({self.max_total} bytes): "
                "raise max_revision_size for this target, or split the path into smaller targets",
            )
        return tuple(SourceFile(path, self._data(oid)) for path, oid, _ in blobs)

    def _subtree(self) -> pygit2.Tree:
        if not self.base:
            return self.root
        try:
            entry = self.root[self.base]
        except KeyError:
            entry = None
        if entry is None or entry.type != ObjectType.TREE:
            raise self.error(PathNotFoundError, f"path {self.base!r} does not exist")
        return self.repo[entry.id].peel(pygit2.Tree)

    def _walk(self, tree: pygit2.Tree, prefix: str) -> Iterator[tuple[str, pygit2.Object]]:
        for entry in tree:
            repo_path = f"{prefix}/{entry.name}" if prefix else str(entry.name)
            if entry.type == ObjectType.TREE:
                yield from self._walk(self.repo[entry.id].peel(pygit2.Tree), repo_path)
            elif entry.type == ObjectType.BLOB:
                # Symlinks included: _file checks where one leads only if it would be read.
                yield repo_path, entry
            # Submodules (commit entries) hold no manifests of this repository: skipped.

    def _relative(self, repo_path: str) -> str:
        return repo_path[len(self.base) + 1 :] if self.base else repo_path

    def _check_link(self, repo_path: str, entry: pygit2.Object) -> str:
        """Where a symlink finally points, refused when it leaves `base` at any hop."""
        current, target = repo_path, entry
        for _ in range(_MAX_LINK_HOPS):
            link = self.repo[target.id].peel(pygit2.Blob).data.decode(errors="replace")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(current), link))
            if (
                link.startswith("/")
                or resolved.startswith("../")
                or resolved == ".."
                or not _within(resolved, self.base)
            ):
                raise self.error(
                    UnsafeTreeError,
                    f"symlink {self._relative(repo_path)!r} points outside "
                    f"{self.base or 'the repository'!r} (to {link!r})",
                )
            try:
                target = self.root[resolved]
            except KeyError:
                return resolved  # dangling: nothing to read, nothing escapes
            if target.filemode != FileMode.LINK:
                return resolved
            current = resolved
        raise self.error(UnsafeTreeError, f"symlink {self._relative(repo_path)!r} loops")

    def _blob(self, repo_path: str, entry: pygit2.Object) -> tuple[str, pygit2.Oid, int] | None:
        """(path relative to `base`, blob id, size) of a manifest that would be read."""
        relative = self._relative(repo_path)
        # Case-insensitive like render's: `app.YAML` is read, and its symlink checked.
        if not is_read(relative):
            return None  # never read, so a README -> ../README link refuses nothing
        if entry.filemode == FileMode.LINK:
            try:
                entry = self.root[self._check_link(repo_path, entry)]
            except KeyError:
                return None
            if entry.type != ObjectType.BLOB:
                return None
        _, size = self.repo.odb.read_header(entry.id)  # the size without the content
        if size > self.max_bytes:
            raise self.error(
                UnsafeTreeError,
                f"file {relative!r} is {size} bytes, above the limit of {self.max_bytes}",
            )
        return relative, entry.id, size

    def _data(self, oid: pygit2.Oid) -> bytes:
        _, data = self.repo.odb.read(oid)  # half the time of Blob.data, which copies twice
        return data
