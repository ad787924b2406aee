"""A revision and its files, read once: the source of a preview (`gitopsd diff`).

A preview reads its revision up front (from the mirror under the state-directory lock,
or from a local directory) and then compares it with the cluster holding no lock: the
Reconciler gets this in place of the Git source, so the pass is a daemon's pass in
every stage but the fetch, and it can never mark anything applied.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gitopsd.model import Revision, SourceFile


class Origin(enum.Enum):
    """Where a previewed revision was read."""

    GIT = "git"
    PATH = "path"


@dataclass(frozen=True)
class Snapshot:
    """One revision's declared files; `refusal` says why the daemon would refuse the
    revision (its signature), shown by the preview rather than enforced."""

    revision: Revision
    files: tuple[SourceFile, ...]
    origin: Origin = Origin.GIT
    refusal: str | None = None
    # Writes the whole repository for kustomize and Helm (GitSource.checkout); None: none.
    checkout: Callable[[Revision, Path], frozenset[str]] | None = None

    def fetch(self) -> Revision:
        return self.revision

    def read_tree(self, revision: Revision) -> tuple[SourceFile, ...]:
        if revision != self.revision:
            raise ValueError(f"this snapshot holds {self.revision.short}, not {revision.short}")
        return self.files

    def mark_applied(self, revision: Revision) -> None:
        # A preview is a dry run: a pass that got here would be a bug, and the applied
        # marker the daemon keeps for history checks must not move.
        raise RuntimeError(f"a preview never marks a revision applied ({revision.short})")
