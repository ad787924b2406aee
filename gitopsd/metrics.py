"""Prometheus metrics of the passes, in a registry of gitopsd's own.

A private CollectorRegistry keeps the output to what gitopsd means (no process
or platform collectors registered twice when tests build several daemons).
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gitopsd import __version__
from gitopsd.errors import SourceError
from gitopsd.model import Action
from gitopsd.passresult import PassOutcome, PassResult

_APPLIED = {Action.CREATED, Action.CORRECTED, Action.UPDATED, Action.RECREATED}
_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    """The counters and gauges /metrics serves; `observe_pass` feeds them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.passes = Counter(
            "gitopsd_passes",
            "Reconcile passes, by target and outcome",
            ["target", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "gitopsd_pass_duration_seconds",
            "Duration of reconcile passes",
            ["target", "outcome"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.drift = Counter(
            "gitopsd_drift_events",
            "Objects found drifted or missing, by action taken",
            ["target", "kind", "action"],
            registry=r,
        )
        self.applied = Counter(
            "gitopsd_objects_applied",
            "Objects created, corrected, updated or recreated",
            ["target"],
            registry=r,
        )
        self.pruned = Counter("gitopsd_objects_pruned", "Objects pruned", ["target"], registry=r)
        self.last_success = Gauge(
            "gitopsd_last_success_timestamp_seconds",
            "End of the last pass that did not fail",
            ["target"],
            registry=r,
        )
        self.revision = Gauge(
            "gitopsd_revision",
            "The commit last reconciled, as a label (value always 1)",
            ["target", "revision"],
            registry=r,
        )
        self.fetch_errors = Counter(
            "gitopsd_source_fetch_errors",
            "Passes that failed fetching or reading Git",
            ["target"],
            registry=r,
        )
        self.failing = Gauge(
            "gitopsd_target_failing", "1 when the target's last pass failed", ["target"], registry=r
        )
        self.throttled = Counter(
            "gitopsd_api_throttled",
            "Requests the API server answered 429 (each retried after its Retry-After)",
            ["target"],
            registry=r,
        )
        self.target_health = Gauge(
            "gitopsd_target_health",
            "1 for the health of a waiting target's last pass: healthy, progressing or degraded",
            ["target", "status"],
            registry=r,
        )
        # Only objects that are not Current, so the series stay as few as the problems.
        self.object_health = Gauge(
            "gitopsd_object_health",
            "1 for each declared object of a waiting target that is not Current, by status",
            ["target", "kind", "namespace", "name", "status"],
            registry=r,
        )
        self._unhealthy: dict[str, set[tuple[str, str, str, str]]] = {}
        self.notify_sent = Counter(
            "gitopsd_notifications_sent", "Notifications delivered, by sink", ["sink"], registry=r
        )
        self.notify_failed = Counter(
            "gitopsd_notifications_failed",
            "Delivery attempts that failed (each retry counts), by sink",
            ["sink"],
            registry=r,
        )
        self.notify_dropped = Counter(
            "gitopsd_notifications_dropped",
            "Notifications not delivered, by sink and reason",
            ["sink", "reason"],
            registry=r,
        )
        info = Gauge("gitopsd_build_info", "gitopsd's version", ["version"], registry=r)
        info.labels(__version__).set(1)
        self._revisions: dict[str, str] = {}

    def observe_pass(self, result: PassResult) -> None:
        """Record one finished pass."""
        target, outcome = result.target, result.outcome.value
        self.passes.labels(target, outcome).inc()
        self.duration.labels(target, outcome).observe(result.duration_seconds)
        if result.throttled:
            self.throttled.labels(target).inc(result.throttled)
        failed = result.outcome is PassOutcome.FAILED
        self.failing.labels(target).set(1 if failed else 0)
        if not failed and result.outcome is not PassOutcome.WAITING:  # waiting: did not run
            self.last_success.labels(target).set(result.started_at + result.duration_seconds)
        if isinstance(result.error, SourceError):
            self.fetch_errors.labels(target).inc()
        for entry in result.changes.entries:
            if entry.drift is not None or entry.action is Action.PRUNED:
                self.drift.labels(target, entry.key.kind, entry.action.value).inc()
            if entry.action in _APPLIED:
                self.applied.labels(target).inc()
            elif entry.action is Action.PRUNED:
                self.pruned.labels(target).inc()
        if result.commit:
            self._set_revision(target, result.commit)
        if result.health:
            self._set_health(result)

    def _set_health(self, result: PassResult) -> None:
        health = result.workload_health  # waited for, or the last known (no `wait`)
        for outcome in (PassOutcome.HEALTHY, PassOutcome.PROGRESSING, PassOutcome.DEGRADED):
            value = 1 if health is outcome else 0
            self.target_health.labels(result.target, outcome.value).set(value)
        now = {
            (o.key.kind, o.key.namespace, o.key.name, o.health.status.value)
            for o in result.unhealthy
        }
        for gone in self._unhealthy.get(result.target, set()) - now:
            self.object_health.remove(result.target, *gone)
        for labels in now:
            self.object_health.labels(result.target, *labels).set(1)
        self._unhealthy[result.target] = now

    def _set_revision(self, target: str, revision: str) -> None:
        old = self._revisions.get(target)
        if old == revision:
            return
        if old is not None:
            self.revision.remove(target, old)  # one series per target, not one per commit ever seen
        self.revision.labels(target, revision).set(1)
        self._revisions[target] = revision

    def forget(self, target: str) -> None:
        """Drop a target removed from the configuration from the per-target gauges."""
        old = self._revisions.pop(target, None)
        if old is not None:
            self.revision.remove(target, old)
        for gauge in (self.failing, self.last_success):
            with contextlib.suppress(KeyError):
                gauge.remove(target)
        for outcome in (PassOutcome.HEALTHY, PassOutcome.PROGRESSING, PassOutcome.DEGRADED):
            with contextlib.suppress(KeyError):
                self.target_health.remove(target, outcome.value)
        for labels in self._unhealthy.pop(target, set()):
            self.object_health.remove(target, *labels)

    def render(self) -> bytes:
        return generate_latest(self.registry)
