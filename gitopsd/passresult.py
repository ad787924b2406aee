"""What one pass did: outcome, changes and timing, shared by reconcile, status and CLI."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gitopsd.errors import GitopsdError
from gitopsd.model import ChangeSet, Plan, ResourceKey, Revision


class PassOutcome(enum.Enum):
    IN_SYNC = "in_sync"
    CONVERGED = "converged"
    WOULD_CHANGE = "would_change"
    FAILED = "failed"


@dataclass(frozen=True)
class ObjectPreview:
    """What a pass would change on one object, as a unified diff (Secrets redacted)."""

    key: ResourceKey
    diff_text: str


@dataclass(frozen=True)
class PassResult:
    """Everything one pass did or would do."""

    target: str
    outcome: PassOutcome
    revision: Revision | None
    changes: ChangeSet
    plan: Plan | None
    error: GitopsdError | None
    started_at: float
    duration_seconds: float
    previews: tuple[ObjectPreview, ...] = ()
    requests: dict[str, int] = field(default_factory=dict)
