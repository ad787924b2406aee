"""What one pass did: outcome, changes and timing, shared by reconcile, status and CLI."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gitopsd.errors import GitopsdError
from gitopsd.health import Health, ObjectHealth
from gitopsd.model import ChangeSet, Plan, ResourceKey, Revision


class PassOutcome(enum.Enum):
    IN_SYNC = "in_sync"
    CONVERGED = "converged"
    WOULD_CHANGE = "would_change"
    FAILED = "failed"
    # With `wait: true`, what the writes led to once the objects were watched.
    HEALTHY = "healthy"
    PROGRESSING = "progressing"  # health_timeout ran out with an object still InProgress
    DEGRADED = "degraded"  # an object Failed
    # `depends_on`: a dependency is not ready, so the pass did not run (no failure).
    WAITING = "waiting"

    @property
    def in_sync(self) -> bool:
        """The cluster matches Git after the pass (nothing was left to change)."""
        return self in _APPLIED

    @property
    def applied(self) -> bool:
        """The pass applied its revision (converged, or waited on afterwards)."""
        return self in _APPLIED and self is not PassOutcome.IN_SYNC

    @property
    def waited(self) -> bool:
        """A pass that waited for its objects' health (`wait: true`) and ended with it."""
        return self in (PassOutcome.HEALTHY, PassOutcome.PROGRESSING, PassOutcome.DEGRADED)

    @property
    def unhealthy(self) -> bool:
        """A waiting pass whose objects did not all become healthy (`--once` exits 5)."""
        return self in (PassOutcome.PROGRESSING, PassOutcome.DEGRADED)


_APPLIED = frozenset(
    {
        PassOutcome.IN_SYNC,
        PassOutcome.CONVERGED,
        PassOutcome.HEALTHY,
        PassOutcome.PROGRESSING,
        PassOutcome.DEGRADED,
    }
)


@dataclass(frozen=True)
class ObjectStatus:
    """One declared object's health at the end of a waiting pass."""

    key: ResourceKey
    health: ObjectHealth

    def as_dict(self) -> dict[str, str]:
        return {
            **self.key.as_dict(),
            "status": self.health.status.value,
            "reason": self.health.reason,
        }


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
    # Every declared object: waited for (`wait: true`), else as read once after the writes.
    health: tuple[ObjectStatus, ...] = ()
    waiting_for: str = ""  # outcome WAITING: which dependency is not ready, and why

    @classmethod
    def failed(
        cls, target: str, error: GitopsdError, at: float, duration: float = 0.0
    ) -> PassResult:
        """A pass that failed before it read anything (no revision, no changes)."""
        return cls(target, PassOutcome.FAILED, None, ChangeSet(), None, error, at, duration)

    @classmethod
    def waiting(cls, target: str, reason: str, at: float) -> PassResult:
        """A pass not run because a dependency is not ready (`reason` says which, and why)."""
        return cls(
            target, PassOutcome.WAITING, None, ChangeSet(), None, None, at, 0.0, waiting_for=reason
        )

    @property
    def workload_health(self) -> PassOutcome | None:
        """HEALTHY, PROGRESSING or DEGRADED from the objects' health; None when none was read.

        A waiting pass's outcome; for a target that does not wait, its objects' last known
        health (InProgress right after a write is usual: nothing waited for it)."""
        if self.outcome.waited:
            return self.outcome
        if not self.health:
            return None
        statuses = {o.health.status for o in self.health}
        if Health.FAILED in statuses:
            return PassOutcome.DEGRADED
        return PassOutcome.HEALTHY if statuses == {Health.CURRENT} else PassOutcome.PROGRESSING

    @property
    def throttled(self) -> int:
        """How many of the pass's requests the API server answered 429 (each was retried)."""
        return self.requests.get("throttled", 0)

    @property
    def unhealthy(self) -> tuple[ObjectStatus, ...]:
        """The declared objects that are not Current, worst first."""
        rank = {Health.FAILED: 0, Health.UNKNOWN: 1}
        bad = [o for o in self.health if o.health.status is not Health.CURRENT]
        return tuple(sorted(bad, key=lambda o: rank.get(o.health.status, 2)))

    @property
    def health_reason(self) -> str:
        """The worst object and why, in one line ('' when all are Current)."""
        worst = self.unhealthy
        if not worst:
            return ""
        first = worst[0]
        more = f" (and {len(worst) - 1} more)" if len(worst) > 1 else ""
        return f"{first.key}: {first.health.status.value}, {first.health.reason}{more}"

    @property
    def commit(self) -> str | None:
        """The commit the pass reconciled, when it got that far."""
        return self.revision.commit if self.revision is not None else None


def one_line(error: BaseException | str) -> str:
    """An error as one line: its message with newlines and runs of blanks folded."""
    text = error if isinstance(error, str) else str(error) or type(error).__name__
    return " ".join(text.split())


def failure_line(target: str, error: BaseException | str) -> str:
    """`target NAME: error` on one line (stderr, /readyz); the target is not named twice."""
    text = one_line(error)
    # Source errors start `target NAME, remote URL:`, reconcile errors `target NAME:`.
    if text.startswith((f"target {target}:", f"target {target},")):
        return text
    return f"target {target}: {text}"
