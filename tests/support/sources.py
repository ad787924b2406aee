"""An in-memory Source for engine tests that need no Git remote."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from gitopsd.model import Revision, SourceFile


@dataclass
class FilesSource:
    """Declared files held in memory; each distinct content is its own revision."""

    files: dict[str, str] = field(default_factory=dict)
    applied: list[Revision] = field(default_factory=list)
    reads: int = 0

    def fetch(self) -> Revision:
        digest = hashlib.sha1()
        for path in sorted(self.files):
            digest.update(path.encode() + b"\0" + self.files[path].encode() + b"\0")
        return Revision(digest.hexdigest(), ref="memory")

    def read_tree(self, revision: Revision) -> tuple[SourceFile, ...]:
        self.reads += 1
        return tuple(SourceFile(p, self.files[p].encode()) for p in sorted(self.files))

    def mark_applied(self, revision: Revision) -> None:
        self.applied.append(revision)
