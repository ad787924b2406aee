"""Carry out a Plan through an adapter, stage by stage: apply_plan returns what happened.

Every write is first validated with a server-side dry-run, so one invalid object
refuses the whole revision before anything is written; a write whose dry-run
result equals the live object is not made (UNCHANGED). Then the stages of
gitopsd.waves run in order: Namespaces and CRDs first (waited for until
Established), each wave's writes by tier, deletions in reverse; writes within a
stage run concurrently on a bounded pool. Waits go through the injected clock.
Once the API server stops answering at all, nothing more is tried: the pass
ends with one retryable error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

from gitopsd.adapters.base import ApplyResult, ClusterAdapter, KindInfo
from gitopsd.clock import SYSTEM_CLOCK, Clock
from gitopsd.errors import (
    ClusterError,
    ClusterUnreachableError,
    GitopsdError,
    ImmutableFieldError,
    ReconcileError,
)
from gitopsd.livestate import kind_of
from gitopsd.model import (
    ADOPT_REASON,
    CRD_KIND,
    NAMESPACE_KIND,
    Action,
    ChangeSet,
    ChangeSetEntry,
    LiveObject,
    Manifest,
    Plan,
    PlanStep,
    ResourceKey,
    StepKind,
)
from gitopsd.normalize import SERVER_METADATA
from gitopsd.waves import stages as wave_stages
from gitopsd.waves import waves_of

_T = TypeVar("_T")
_R = TypeVar("_R")

_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class ApplyOptions:
    """How writes are made for one target."""

    target: str
    force: bool
    recreate: bool
    concurrency: int
    dry_run: bool = False  # validate only: the confirmed plan, nothing written
    crd_timeout: float = 60.0
    delete_timeout: float = 60.0


@dataclass(frozen=True)
class Applied:
    """What apply_plan did: an entry per object, the plan as the dry-run confirmed it (what
    was, or would be, written), and the error that fails the pass when not all was done."""

    changes: ChangeSet
    plan: Plan
    error: GitopsdError | None = None
    # Each object as the server returned it from its write: its health, without a get.
    written: Mapping[ResourceKey, Manifest] = field(default_factory=dict)


def apply_plan(
    plan: Plan,
    live: Mapping[ResourceKey, LiveObject],
    adapter: ClusterAdapter,
    options: ApplyOptions,
    stop: threading.Event,
    *,
    clock: Clock = SYSTEM_CLOCK,
    before_writes: Callable[[Plan], None] | None = None,
    gate: Callable[[int], bool] | None = None,
) -> Applied:
    """Validate every write, then make them stage by stage (gitopsd.waves); raise
    ReconcileError, nothing written, when the server refuses the revision. Setting `stop`
    skips writes not started.

    `before_writes` gets the confirmed plan once it is valid, before the first write (the
    pass stores its claim there); what it raises ends the pass with nothing written.
    `gate(wave)` runs between two waves; False leaves every later write SKIPPED."""
    stages = _Stages(adapter, options, stop, clock)
    deferred = stages.deferred(plan.steps)
    steps, unchanged = stages.confirm(plan.steps, deferred, live)
    entries = [ChangeSetEntry(key, Action.KEPT) for key in plan.kept] + unchanged
    confirmed = replace(plan, steps=tuple(steps))
    if options.dry_run:
        return Applied(ChangeSet(tuple(entries)), confirmed)
    if before_writes is not None:
        before_writes(confirmed)
    written, refused = stages.write(steps, deferred, waves_of(plan.desired), gate)
    changes = ChangeSet((*entries, *written))
    error = refused or stages.lost(changes) or _incomplete(options.target, changes, stop)
    return Applied(changes, confirmed, error, dict(stages.returned))


def _no_change(step: PlanStep, dry_run: ApplyResult | None, live: LiveObject | None) -> bool:
    """Whether the dry-run of an apply returned the live object, server bookkeeping aside."""
    # An adoption is written even so: gitopsd takes the object's fields over.
    if step.kind is not StepKind.APPLY or step.reason == ADOPT_REASON:
        return False
    if dry_run is None or live is None:
        return False
    return _without_server_metadata(dry_run.manifest) == _without_server_metadata(live.manifest)


def _without_server_metadata(manifest: Manifest) -> Manifest:
    metadata = manifest.get("metadata") or {}
    return {**manifest, "metadata": {k: v for k, v in metadata.items() if k not in SERVER_METADATA}}


def _incomplete(target: str, changes: ChangeSet, stop: threading.Event) -> ReconcileError | None:
    """Why a pass that wrote what it could still failed, if it did."""
    if stop.is_set():
        return ReconcileError(
            f"target {target}: pass interrupted by shutdown; "
            "writes not yet started were left for the next pass",
            retryable=True,
        )
    failed = changes.failed
    if failed:
        return ReconcileError(
            f"target {target}: {len(failed)} object(s) failed; first: {failed[0].error}",
            retryable=True,
        )
    return None


class _Stages:
    """The writes of one apply_plan call, with the adapter, options, stop and clock it uses."""

    def __init__(
        self, adapter: ClusterAdapter, options: ApplyOptions, stop: threading.Event, clock: Clock
    ) -> None:
        self._adapter = adapter
        self._options = options
        self._stop = stop
        self._clock = clock
        # The first "no answer at all": every later request would fail alike.
        self._unreachable: ClusterUnreachableError | None = None
        self.returned: dict[ResourceKey, Manifest] = {}  # written by the pool's threads

    def lost(self, changes: ChangeSet) -> ClusterUnreachableError | None:
        """The pass's error when the API server stopped answering, or None if it did not."""
        if self._unreachable is None:
            return None
        left = sum(1 for e in changes.entries if e.action is Action.SKIPPED)
        error = ClusterUnreachableError(
            f"target {self._options.target}: the API server stopped answering after "
            f"{changes.writes} write(s); {left} left for the next pass: {self._unreachable}"
        )
        error.__cause__ = self._unreachable
        return error

    def _note(self, error: GitopsdError) -> None:
        if isinstance(error, ClusterUnreachableError) and self._unreachable is None:
            self._unreachable = error

    # -- validation -------------------------------------------------------

    def confirm(
        self,
        steps: Sequence[PlanStep],
        deferred: frozenset[ResourceKey],
        live: Mapping[ResourceKey, LiveObject],
    ) -> tuple[list[PlanStep], list[ChangeSetEntry]]:
        """The steps to write after a server-side dry-run of all but `deferred`, and UNCHANGED
        entries for those it shows would change nothing (a value the server normalises)."""
        writes = [s for s in steps if not s.kind.removes and s.key not in deferred]
        recreate, problems, results = self._validate(writes)
        if self._unreachable is not None:
            raise ClusterUnreachableError(
                f"target {self._options.target}: the API server stopped answering while the "
                f"revision was validated; nothing written: {self._unreachable}"
            ) from self._unreachable
        if problems:
            raise _refusal(self._options.target, problems)
        kept: list[PlanStep] = []
        unchanged: list[ChangeSetEntry] = []
        for step in steps:
            if step.key in recreate:
                step = replace(step, kind=StepKind.RECREATE)
            elif _no_change(step, results.get(step.key), live.get(step.key)):
                unchanged.append(ChangeSetEntry(step.key, Action.UNCHANGED))
                continue
            kept.append(step)
        return kept, unchanged

    def deferred(self, steps: Sequence[PlanStep]) -> frozenset[ResourceKey]:
        """Writes a dry-run cannot check yet: in a Namespace, or of a CRD, this pass creates."""
        new_namespaces = {
            s.key.name
            for s in steps
            if (s.key.group, s.key.kind) == NAMESPACE_KIND and s.kind is StepKind.CREATE
        }
        return frozenset(
            s.key
            for s in steps
            if s.desired is not None
            and (s.key.namespace in new_namespaces or self._info(s) is None)
        )

    def _validate(
        self, steps: Sequence[PlanStep]
    ) -> tuple[frozenset[ResourceKey], list[GitopsdError], dict[ResourceKey, ApplyResult]]:
        """Dry-run every step: those that need recreating, every refusal, and the results."""
        recreate: set[ResourceKey] = set()
        problems: list[GitopsdError] = []
        results: dict[ResourceKey, ApplyResult] = {}
        for step, outcome in zip(steps, self._map(self._try_dry_run, steps), strict=True):
            if isinstance(outcome, ApplyResult):
                results[step.key] = outcome
            elif isinstance(outcome, ClusterUnreachableError):
                continue  # not the object's fault: the caller reports it once, from _note
            elif isinstance(outcome, ImmutableFieldError) and self._options.recreate:
                recreate.add(step.key)
            else:
                if not outcome.retryable:  # the object's fault: name the file it came from
                    assert step.desired is not None
                    outcome.args = (f"{step.desired.origin}: {outcome}", *outcome.args[1:])
                problems.append(outcome)
        return frozenset(recreate), problems, results

    def _try_dry_run(self, step: PlanStep) -> ApplyResult | GitopsdError:
        assert step.desired is not None
        if self._unreachable is not None:
            return self._unreachable
        try:
            return self._adapter.apply(
                step.desired.manifest, dry_run=True, force=self._options.force
            )
        except GitopsdError as error:
            self._note(error)
            return error

    # -- writes -----------------------------------------------------------

    def write(
        self,
        steps: Sequence[PlanStep],
        deferred: frozenset[ResourceKey],
        waves: Mapping[ResourceKey, int],
        gate: Callable[[int], bool] | None,
    ) -> tuple[list[ChangeSetEntry], ReconcileError | None]:
        """Write stage by stage: an entry per step, and the refusal of a `deferred` write,
        checked once Namespaces and CRDs exist, which ends the pass there (the rest SKIPPED).
        A wave with a failed write, or refused by `gate`, leaves every later stage SKIPPED."""
        entries: list[ChangeSetEntry] = []
        stages = wave_stages(steps, waves)
        for number, stage in enumerate(stages):
            if number == 1:  # the first stage after Namespaces and CRDs, which now exist
                refused = self._validate_late([s for s in steps if s.key in deferred])
                if refused is not None:
                    why = "not written: the revision was refused"
                    entries += [_skipped(s, why) for later in stages[1:] for s in later.steps]
                    return entries, refused
            entries += self._map(self._write_one, stage.steps)
            if stage.definitions:
                entries += self._wait_for_crds(stage.steps)
            wave = stage.gate_after
            if wave is None:
                continue
            why = _held_back(wave, entries, gate)
            if why:
                entries += [_skipped(s, why) for later in stages[number + 1 :] for s in later.steps]
                break
        return entries, None

    def _validate_late(self, steps: Sequence[PlanStep]) -> ReconcileError | None:
        """Dry-run what could not be checked before this pass's Namespaces and CRDs existed."""
        _, problems, _ = self._validate(steps)
        if not problems:
            return None
        return ReconcileError(
            f"target {self._options.target}: refused after creating namespaces and CRDs, "
            "nothing else written: " + "; ".join(map(str, problems))
        )

    def _write_one(self, step: PlanStep) -> ChangeSetEntry:
        if self._stop.is_set():
            return _skipped(step, "interrupted by shutdown")
        if self._unreachable is not None:
            return _skipped(step, "not written: the API server stopped answering")
        try:
            if step.kind is StepKind.DELETE:
                info = self._info(step)
                if info is not None:
                    self._adapter.delete(info, step.key, step.uid)
                return ChangeSetEntry(step.key, Action.PRUNED, step.drift)
            if step.kind is StepKind.RELEASE:
                info = self._info(step)
                if info is not None:
                    self._adapter.release(info, step.key)
                return ChangeSetEntry(step.key, Action.RELEASED, step.drift)
            assert step.desired is not None
            if step.kind is StepKind.RECREATE:
                self._delete_for_recreate(step)
            result = self._adapter.apply(
                step.desired.manifest, dry_run=False, force=self._options.force
            )
            self.returned[step.key] = result.manifest  # one key per thread: no lock needed
            return ChangeSetEntry(step.key, _action_of(step), step.drift, "", _losers(step))
        except GitopsdError as error:
            self._note(error)
            return ChangeSetEntry(step.key, Action.FAILED, step.drift, str(error))

    def _delete_for_recreate(self, step: PlanStep) -> None:
        """Delete, then wait until the object is gone: finalizers can hold it in Terminating."""
        info = self._info(step)
        if info is None:
            raise ReconcileError(f"{step.key}: kind no longer served; cannot recreate")
        self._adapter.delete(info, step.key)
        deadline = self._clock.monotonic() + self._options.delete_timeout
        while (current := self._adapter.get(info, step.key)) is not None:
            if self._clock.monotonic() > deadline or self._stop.is_set():
                finalizers = (current.manifest.get("metadata") or {}).get("finalizers") or []
                raise ReconcileError(
                    f"{step.key}: deleted for recreation but still present (finalizers: "
                    f"{', '.join(finalizers) or 'none'}); it is created again by the next pass",
                    retryable=True,
                )
            self._clock.wait(self._stop, _POLL_SECONDS)

    def _wait_for_crds(self, steps: Sequence[PlanStep]) -> list[ChangeSetEntry]:
        """Wait until every CRD just written is Established; a timeout fails that CRD."""
        failures = []
        for step in steps:
            if (step.key.group, step.key.kind) != CRD_KIND or step.kind.removes:
                continue
            try:
                self._wait_established(step.key)
            except GitopsdError as error:
                self._note(error)
                failures.append(ChangeSetEntry(step.key, Action.FAILED, step.drift, str(error)))
        return failures

    def _wait_established(self, key: ResourceKey) -> None:
        """Poll the CRD's conditions; a shutdown is not held up by a slow one."""
        started = self._clock.monotonic()
        while not self._adapter.crd_established(key.name):
            waited = self._clock.monotonic() - started
            if waited >= self._options.crd_timeout or self._stop.is_set():
                raise ClusterError(f"{key}: not Established after {waited:.0f}s", retryable=True)
            self._clock.wait(self._stop, _POLL_SECONDS)

    def _info(self, step: PlanStep) -> KindInfo | None:
        version = step.desired.api_version if step.desired is not None else ""
        return kind_of(self._adapter, step.key, version)

    def _map(self, function: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        if len(items) <= 1:
            return [function(item) for item in items]
        workers = max(1, min(self._options.concurrency, len(items)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gitopsd-write") as pool:
            return list(pool.map(function, items))


def _held_back(
    wave: int, entries: Sequence[ChangeSetEntry], gate: Callable[[int], bool] | None
) -> str:
    """Why the waves after `wave` are not written ('' to go on): a write failed, or `gate`."""
    if any(e.action is Action.FAILED for e in entries):
        return f"not written: a write of wave {wave} or before failed"
    if any(e.action is Action.SKIPPED for e in entries):
        return f"not written: wave {wave} was not written in full"
    if gate is not None and not gate(wave):
        return f"not written: wave {wave} did not become healthy"
    return ""


def _refusal(target: str, problems: Sequence[GitopsdError]) -> ReconcileError:
    """The dry-runs' verdict: refused; or, when every failure was the server's own (429 or
    5xx after all retries), not checked at all, which is retryable."""
    text = "; ".join(map(str, problems))
    if all(problem.retryable for problem in problems):
        return ReconcileError(
            f"target {target}: the API server could not validate the revision (overloaded "
            f"or failing), nothing written: {text}",
            retryable=True,
        )
    return ReconcileError(f"target {target}: revision refused, nothing written: {text}")


def _skipped(step: PlanStep, why: str) -> ChangeSetEntry:
    return ChangeSetEntry(step.key, Action.SKIPPED, step.drift, why)


def _action_of(step: PlanStep) -> Action:
    if step.kind is StepKind.CREATE:
        return Action.CREATED
    if step.kind is StepKind.RECREATE:
        return Action.RECREATED
    if step.reason == ADOPT_REASON:
        return Action.ADOPTED
    return Action.CORRECTED if step.reason == "drift" else Action.UPDATED


def _losers(step: PlanStep) -> tuple[str, ...]:
    """Managers that owned a drifted field before gitopsd forced it back."""
    if step.drift is None:
        return ()
    return tuple(sorted({owner.manager for owner in step.drift.owners}))
