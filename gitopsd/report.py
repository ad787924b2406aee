"""What a pass tells the log and the journal: one event per object, one per pass, health changes.

Kept apart from the pipeline so reconcile.py reads as its stages; the reporter holds the
only state reporting needs (the last health journaled).
"""

from __future__ import annotations

import structlog

from gitopsd.journal import Journal
from gitopsd.model import Action, ChangeSetEntry
from gitopsd.passresult import PassResult

log = structlog.get_logger("gitopsd.reconcile")

# A drift (the cluster differed from Git, and gitopsd wrote Git's state) is logged as
# `drift_detected`; every other outcome for an object under its own name.
_EVENTS = {
    Action.PRUNED: "object_pruned",
    Action.ADOPTED: "object_adopted",
    Action.RELEASED: "object_released",
    Action.FAILED: "object_failed",
    Action.SKIPPED: "object_skipped",
    Action.KEPT: "object_kept",
    Action.UNCHANGED: "object_unchanged",
}


class PassReporter:
    """Logs and journals the results of one target's passes."""

    def __init__(self, journal: Journal | None) -> None:
        self._journal = journal
        self._health: str | None = None  # the last waiting outcome journaled (health_changed)

    def report(self, result: PassResult, *, dry_run: bool) -> None:
        """Log one event per object and per pass; journal both."""
        revision = result.revision.commit if result.revision else None
        bound = log.bind(target=result.target, revision=revision)
        for entry in result.changes.entries:
            _log_entry(bound, entry)
        error = str(result.error) if result.error else None
        if result.throttled:
            bound.warning(
                "api_throttled",
                count=result.throttled,
                hint="the API server answered 429 and each request was retried after its "
                "Retry-After; if this persists, lower the target's `concurrency` or `qps`",
            )
        # Failures are logged as a state change by the daemon (target_failing), once;
        # this is the per-pass record, so it stays at info whatever the outcome.
        bound.info(
            "pass_completed",
            outcome=result.outcome.value,
            writes=result.changes.writes,
            duration_seconds=round(result.duration_seconds, 3),
            error=error,
            dry_run=dry_run,
            throttled=result.throttled,
        )
        # A dry run writes nothing, the journal included: `history` shows what happened.
        if self._journal is not None and not dry_run:
            self._journal.record_pass(
                target=result.target,
                revision=revision,
                outcome=result.outcome.value,
                started_at=result.started_at,
                duration_seconds=result.duration_seconds,
                writes=result.changes.writes,
                error=error,
                drifts=[
                    (result.started_at, e)
                    for e in result.changes.entries
                    if e.action is not Action.UNCHANGED
                ],
            )
            self._journal_health(result)

    def _journal_health(self, result: PassResult) -> None:
        """`health_changed` once per change of a waiting pass's outcome (from, to, reason)."""
        if self._journal is None or not result.outcome.waited:
            return  # a target without `wait` reports its last known health, not journaled
        if self._health is None:  # after a restart: the last change journaled, if any
            changes = [
                e for e in self._journal.events(result.target) if e["event"] == "health_changed"
            ]
            self._health = changes[-1]["detail"]["to"] if changes else "unknown"
        if result.outcome.value == self._health:
            return
        self._journal.record_event(
            target=result.target,
            at=result.started_at + result.duration_seconds,
            event="health_changed",
            detail={
                "from": self._health,
                "to": result.outcome.value,
                "reason": result.health_reason,
                "revision": result.commit,
            },
        )
        log.info(
            "health_changed",
            target=result.target,
            revision=result.commit,
            previous=self._health,
            health=result.outcome.value,
            reason=result.health_reason,
        )
        self._health = result.outcome.value


def _log_entry(bound: structlog.stdlib.BoundLogger, entry: ChangeSetEntry) -> None:
    if entry.action is Action.UNCHANGED:
        bound.info(
            "object_unchanged",
            **entry.key.as_dict(),
            action=entry.action.value,
            reason="the server's dry-run of the apply equals the live object",
        )
        return
    drift = entry.drift
    bound.warning(
        _EVENTS.get(entry.action, "drift_detected"),
        **entry.key.as_dict(),
        action=entry.action.value,
        fields=[
            {"path": c.path, "desired": c.desired, "live": c.live}
            for c in (drift.changes if drift else ())
        ],
        missing=bool(drift and drift.missing),
        error=entry.error or None,
        managers=[{"manager": o.manager, "time": o.time} for o in (drift.owners if drift else ())],
    )
