"""Carry out a Plan through an adapter: validate everything first, then write in order.

Validation is a server-side dry-run of every write, so one invalid object
refuses the whole revision before anything is written. Writes within a phase
run concurrently on a bounded pool; phases run in the plan's order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from gitopsd.adapters.base import ApplyResult, ClusterAdapter, KindInfo
from gitopsd.errors import GitopsdError, ImmutableFieldError, ReconcileError
from gitopsd.model import Action, ChangeSetEntry, Manifest, PlanStep, ResourceKey, StepKind

_T = TypeVar("_T")
_R = TypeVar("_R")

CRD_KIND = ("apiextensions.k8s.io", "CustomResourceDefinition")
_VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation")


@dataclass(frozen=True)
class ApplyOptions:
    """How writes are made for one target."""

    force: bool
    recreate: bool
    concurrency: int
    crd_timeout: float = 60.0
    delete_timeout: float = 60.0


def phase_of(key: ResourceKey, namespaced: bool) -> int:
    """0: Namespaces and CRDs; 1: other cluster-scoped kinds; 2: namespaced objects."""
    if (key.group, key.kind) == CRD_KIND or (key.group, key.kind) == ("", "Namespace"):
        return 0
    return 2 if namespaced else 1


def same_object(dry_run: Manifest, live: Manifest) -> bool:
    """Whether a dry-run result equals the live object, ignoring bookkeeping metadata."""
    return _without_volatile(dry_run) == _without_volatile(live)


def _without_volatile(manifest: Manifest) -> Manifest:
    metadata = {k: v for k, v in (manifest.get("metadata") or {}).items()
                if k not in _VOLATILE_METADATA}  # fmt: skip
    return {**manifest, "metadata": metadata}


class Applier:
    """Writes steps through one adapter, recording one ChangeSetEntry per step."""

    def __init__(self, adapter: ClusterAdapter, options: ApplyOptions) -> None:
        self._adapter = adapter
        self._options = options
        self.last_dry_runs: dict[ResourceKey, ApplyResult] = {}
        # Set by a shutdown: writes not yet started are skipped, those in flight finish.
        self.stop = threading.Event()

    def dry_run(self, step: PlanStep) -> ApplyResult:
        """Server-side dry-run of one create or apply step."""
        assert step.desired is not None
        return self._adapter.apply(step.desired.manifest, dry_run=True, force=self._options.force)

    def validate(self, steps: Sequence[PlanStep]) -> tuple[list[PlanStep], list[str]]:
        """Dry-run every step; return the steps that need recreating and every refusal."""
        recreate: list[PlanStep] = []
        problems: list[str] = []
        for step, outcome in zip(steps, self._map(self._try_dry_run, steps), strict=True):
            if isinstance(outcome, ApplyResult):
                self.last_dry_runs[step.key] = outcome
            elif isinstance(outcome, ImmutableFieldError) and self._options.recreate:
                recreate.append(step)
            elif isinstance(outcome, GitopsdError):
                problems.append(str(outcome))
        return recreate, problems

    def _try_dry_run(self, step: PlanStep) -> ApplyResult | GitopsdError:
        try:
            return self.dry_run(step)
        except GitopsdError as error:
            return error

    def write(
        self, steps: Sequence[PlanStep], info_of: Callable[[ResourceKey], KindInfo | None]
    ) -> list[ChangeSetEntry]:
        """Carry out steps concurrently; a failure is an entry, never an exception."""
        return self._map(lambda step: self._write_one(step, info_of), steps)

    def _write_one(
        self, step: PlanStep, info_of: Callable[[ResourceKey], KindInfo | None]
    ) -> ChangeSetEntry:
        if self.stop.is_set():
            return ChangeSetEntry(step.key, Action.SKIPPED, step.drift, "interrupted by shutdown")
        try:
            if step.kind is StepKind.DELETE:
                info = info_of(step.key)
                if info is not None:
                    self._adapter.delete(info, step.key)
                return ChangeSetEntry(step.key, Action.PRUNED, step.drift)
            assert step.desired is not None
            if step.kind is StepKind.RECREATE:
                info = info_of(step.key)
                if info is None:
                    raise ReconcileError(f"{step.key}: kind no longer served; cannot recreate")
                self._adapter.delete(info, step.key)
                self._wait_gone(info, step.key)
            self._adapter.apply(step.desired.manifest, dry_run=False, force=self._options.force)
            return ChangeSetEntry(step.key, _action_of(step), step.drift, "", _losers(step))
        except GitopsdError as error:
            return ChangeSetEntry(step.key, Action.FAILED, step.drift, str(error))

    def _wait_gone(self, info: KindInfo, key: ResourceKey) -> None:
        """Wait until a deleted object is gone: finalizers can hold it in Terminating."""
        deadline = time.monotonic() + self._options.delete_timeout
        while (current := self._adapter.get(info, key)) is not None:
            if time.monotonic() > deadline or self.stop.is_set():
                finalizers = (current.manifest.get("metadata") or {}).get("finalizers") or []
                raise ReconcileError(
                    f"{key}: deleted for recreation but still present (finalizers: "
                    f"{', '.join(finalizers) or 'none'}); it is created again by the next pass",
                    retryable=True,
                )
            time.sleep(0.2)

    def wait_for_crds(self, steps: Sequence[PlanStep]) -> list[ChangeSetEntry]:
        """Wait until every CRD just written is Established; a timeout fails that CRD."""
        failures = []
        for step in steps:
            if (step.key.group, step.key.kind) != CRD_KIND or step.kind is StepKind.DELETE:
                continue
            try:
                self._wait_established(step.key.name)
            except GitopsdError as error:
                failures.append(ChangeSetEntry(step.key, Action.FAILED, step.drift, str(error)))
        return failures

    def _wait_established(self, name: str) -> None:
        """Wait in short slices, so that a shutdown is not held up by a slow CRD."""
        deadline = time.monotonic() + self._options.crd_timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                self._adapter.wait_established(name, max(min(remaining, 2.0), 0.1))
                return
            except GitopsdError:
                if self.stop.is_set() or time.monotonic() >= deadline:
                    raise

    def _map(self, function: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        if len(items) <= 1:
            return [function(item) for item in items]
        workers = max(1, min(self._options.concurrency, len(items)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gitopsd-write") as pool:
            return list(pool.map(function, items))


def _action_of(step: PlanStep) -> Action:
    if step.kind is StepKind.CREATE:
        return Action.CREATED
    if step.kind is StepKind.RECREATE:
        return Action.RECREATED
    return Action.CORRECTED if step.reason == "drift" else Action.UPDATED


def _losers(step: PlanStep) -> tuple[str, ...]:
    """Managers that owned a drifted field before gitopsd forced it back."""
    if step.drift is None:
        return ()
    return tuple(sorted({owner.manager for owner in step.drift.owners}))
