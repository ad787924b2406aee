"""One reconcile pass for one target: the pipeline, wired to its collaborators.

source -> render -> live read -> plan -> validate (dry-run) -> write -> inventory
-> journal. The pure stages do the thinking; this module only sequences them
and receives source, adapter, journal and clock, so tests hand it real ones.
Nothing is written unless the whole revision rendered and validated, and
nothing is pruned on an error or an empty render.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import structlog

from gitopsd import inventory as inventory_rules
from gitopsd.adapters.base import ClusterAdapter, Inventory, KindInfo
from gitopsd.adapters.inventory_store import check_size, inventory_name
from gitopsd.apply import Applier, ApplyOptions, phase_of, same_object
from gitopsd.config import ConflictPolicy, TargetSettings
from gitopsd.diff import object_diff_text
from gitopsd.errors import GitopsdError, OwnershipError, ReconcileError, RenderError
from gitopsd.handoff import keep_sole_owned
from gitopsd.journal import Journal
from gitopsd.livestate import LiveReader
from gitopsd.model import (
    Action,
    ChangeSet,
    ChangeSetEntry,
    DesiredObject,
    LiveObject,
    Plan,
    PlanStep,
    ResourceKey,
    Revision,
    SourceFile,
    StepKind,
)
from gitopsd.normalize import strip_ignored
from gitopsd.passresult import ObjectPreview, PassOutcome, PassResult
from gitopsd.plan import make_plan, manifest_hash
from gitopsd.render import render
from gitopsd.rendercache import RenderCache, cache_key

log = structlog.get_logger("gitopsd.reconcile")

_WRITTEN = frozenset(
    {Action.CREATED, Action.CORRECTED, Action.UPDATED, Action.RECREATED, Action.PRUNED}
)


class Source(Protocol):
    """Where declared state comes from (gitopsd.source.GitSource, or a test double)."""

    def fetch(self) -> Revision: ...
    def read_tree(self, revision: Revision) -> tuple[SourceFile, ...]: ...
    def mark_applied(self, revision: Revision) -> None: ...


@dataclass
class _Pass:
    """Mutable state of the pass in progress."""

    revision: Revision | None = None
    plan: Plan | None = None
    entries: list[ChangeSetEntry] = field(default_factory=list)
    previews: tuple[ObjectPreview, ...] = ()


class Reconciler:
    """Runs passes for one target."""

    def __init__(
        self,
        target: TargetSettings,
        source: Source,
        adapter: ClusterAdapter,
        journal: Journal | None = None,
        clock: Callable[[], float] = time.time,
        render_cache: RenderCache | None = None,
    ) -> None:
        self.target = target
        self._source = source
        self._adapter = adapter
        self._journal = journal
        self._clock = clock
        options = ApplyOptions(
            force=target.conflicts is ConflictPolicy.FORCE,
            recreate=target.recreate,
            concurrency=target.cluster.concurrency,
        )
        self._applier = Applier(adapter, options)
        self._journaled_rewrite: tuple[str, str] | None = None
        self._rendered: tuple[str, tuple[DesiredObject, ...]] | None = None
        self._render_cache = render_cache

    def run(
        self,
        *,
        dry_run: bool = False,
        previews: bool = False,
        stop: threading.Event | None = None,
    ) -> PassResult:
        """One pass; never raises a GitopsdError: a failure is outcome FAILED with `.error`.

        Setting `stop` ends the pass after the writes in flight, inventory saved.
        """
        started = self._clock()
        self._applier.stop = stop or threading.Event()
        before = dict(self._adapter.request_counts())
        state = _Pass()
        error: GitopsdError | None = None
        try:
            outcome = self._pass(state, dry_run=dry_run, previews=previews)
        except GitopsdError as failure:
            error, outcome = failure, PassOutcome.FAILED
        after = self._adapter.request_counts()
        result = PassResult(
            target=self.target.name,
            outcome=outcome,
            revision=state.revision,
            changes=ChangeSet(tuple(state.entries)),
            plan=state.plan,
            error=error,
            started_at=started,
            duration_seconds=self._clock() - started,
            previews=state.previews,
            requests={verb: n - before.get(verb, 0) for verb, n in after.items()},
        )
        self._report(result, dry_run=dry_run)
        return result

    def _pass(self, state: _Pass, *, dry_run: bool, previews: bool) -> PassOutcome:
        state.revision = self._source.fetch()
        if not dry_run:
            self._journal_history_rewrite(state.revision)
        desired = self._declared(state.revision)
        inventory, others = self._adapter.load_inventories(self.target.name)
        self._check_ownership(desired, inventory, others, dry_run=dry_run)
        reader = LiveReader(self._adapter, self.target.name)
        live = reader.read(desired, inventory.keys)
        rules = self.target.ignore
        desired = tuple(keep_sole_owned(obj, live.get(obj.key), rules) for obj in desired)
        self._check_inventory_size(inventory, desired)
        # Ignored fields are already out of `desired` (see _declared and handoff).
        state.plan = make_plan(
            desired, live, inventory.keys, rules=(),
            prune=self.target.prune, last_applied=inventory.applied_hashes,
            target=self.target.name, allow_empty=self.target.allow_empty,
        )  # fmt: skip
        steps = self._confirmed(state.plan.steps, live, reader)
        state.plan = replace(state.plan, steps=tuple(steps))
        state.entries += [ChangeSetEntry(key, Action.IGNORED) for key in state.plan.kept]
        if previews:
            state.previews = _previews(steps, live)
        if dry_run:
            return PassOutcome.WOULD_CHANGE if steps else PassOutcome.IN_SYNC
        try:
            self._write(steps, reader, state.entries)
        finally:
            # Whatever was written is tracked, even when a later phase was refused.
            self._save_inventory(inventory, desired, steps, state)
        if self._applier.stop.is_set():
            raise ReconcileError(
                f"target {self.target.name}: pass interrupted by shutdown; "
                "writes not yet started were left for the next pass",
                retryable=True,
            )
        if any(entry.action is Action.FAILED for entry in state.entries):
            failed = [e for e in state.entries if e.action is Action.FAILED]
            raise ReconcileError(f"target {self.target.name}: {len(failed)} object(s) failed; "
                                 f"first: {failed[0].error}", retryable=True)  # fmt: skip
        self._source.mark_applied(state.revision)
        return PassOutcome.CONVERGED if steps else PassOutcome.IN_SYNC

    def _check_inventory_size(self, inventory: Inventory, desired: Sequence[DesiredObject]) -> None:
        """Refuse before writing anything when the inventory could not be stored afterwards."""
        keys = inventory.keys | {obj.key for obj in desired}
        if keys != inventory.keys:  # what is already stored fits, so only growth can fail
            check_size(self.target.name, keys)

    def _journal_history_rewrite(self, revision: Revision) -> None:
        rewrite = getattr(self._source, "history_rewrite", None)
        if self._journal is None or not rewrite or rewrite[1] != revision.commit:
            return
        if rewrite != self._journaled_rewrite:
            self._journal.record_event_once(
                target=self.target.name, at=self._clock(), event="history_rewritten",
                detail={"previous": rewrite[0], "revision": rewrite[1]},
            )  # fmt: skip
            self._journaled_rewrite = rewrite

    def _declared(self, revision: Revision) -> tuple[DesiredObject, ...]:
        """Render the revision, without the fields ignore rules hand to other controllers."""
        declared = self._cached_render(revision)
        if declared is None:
            declared = self._render(revision)
        # Checked on every path, the caches included: allow_empty is not part of a render.
        if not declared and not self.target.allow_empty:
            raise RenderError(
                f"target {self.target.name}: revision {revision.short} declares no objects; "
                "refusing to prune everything (set `allow_empty: true` if that is intended)"
            )
        return declared

    def _cached_render(self, revision: Revision) -> tuple[DesiredObject, ...] | None:
        if self._rendered is not None and self._rendered[0] == revision.commit:
            return self._rendered[1]
        if self._render_cache is None:
            return None
        cached = self._render_cache.get(cache_key(self.target, revision.commit))
        if cached is not None:
            self._rendered = (revision.commit, cached)
        return cached

    def _render(self, revision: Revision) -> tuple[DesiredObject, ...]:
        files = self._source.read_tree(revision)
        answers: dict[tuple[str, str], KindInfo | None] = {}
        namespaced = _memo_namespaced(self._adapter, answers)
        objects = render(files, default_namespace=self.target.namespace,
                         target=self.target.name, namespaced=namespaced)  # fmt: skip
        rules = self.target.ignore
        declared = tuple(
            replace(obj, manifest=strip_ignored(obj.manifest, obj.key, rules)) if rules else obj
            for obj in objects
        )
        # A commit renders the same again, unless a kind was unknown (a CRD not yet applied).
        if all(info is not None for info in answers.values()):
            self._rendered = (revision.commit, declared)
            if self._render_cache is not None:
                self._render_cache.put(cache_key(self.target, revision.commit), declared)
        return declared

    def _check_ownership(
        self,
        desired: Sequence[DesiredObject],
        inventory: Inventory,
        others: Mapping[str, frozenset[ResourceKey]],
        *,
        dry_run: bool,
    ) -> None:
        keys = frozenset(obj.key for obj in desired)
        try:
            inventory_rules.check_ownership(self.target.name, keys, others)
        except OwnershipError as error:
            # Record the claim, so the other target sees the clash too.
            if not dry_run and inventory.claims != keys:
                self._adapter.save_inventory(self.target.name, replace(inventory, claims=keys))
            namespace = self.target.inventory_namespace
            stale = "; ".join(
                f"if target {other!r} no longer exists, delete ConfigMap "
                f"{namespace}/{inventory_name(other)}"
                for other in sorted(others)
                if others[other] & keys
            )
            raise OwnershipError(f"{error} ({stale})") from error

    def _confirmed(
        self, steps: Sequence[PlanStep], live: Mapping[ResourceKey, LiveObject], reader: LiveReader
    ) -> list[PlanStep]:
        """Validate every write with a server-side dry-run and drop those that change nothing.

        A local comparison can flag a difference the server would normalise away
        (a defaulted or reformatted value); the dry-run's result settles it.
        """
        deferred = _deferred(steps, reader)
        writes = [s for s in steps if s.kind is not StepKind.DELETE and s.key not in deferred]
        recreate, problems = self._applier.validate(writes)
        if problems:
            raise ReconcileError(
                f"target {self.target.name}: revision refused, nothing written: "
                + "; ".join(problems)
            )
        results = self._applier.last_dry_runs
        kept: list[PlanStep] = []
        for step in steps:
            current = live.get(step.key)
            result = results.get(step.key)
            if step in recreate:
                step = replace(step, kind=StepKind.RECREATE)
            elif (
                step.kind is StepKind.APPLY
                and current is not None
                and result is not None
                and same_object(result.manifest, current.manifest)
            ):
                continue  # fmt: skip
            kept.append(step)
        return kept

    def _write(
        self, steps: Sequence[PlanStep], reader: LiveReader, entries: list[ChangeSetEntry]
    ) -> None:
        """Write phase by phase: Namespaces and CRDs, cluster-scoped, namespaced, deletions."""
        deferred = _deferred(steps, reader)
        writes = [s for s in steps if s.kind is not StepKind.DELETE]
        deletions = [s for s in steps if s.kind is StepKind.DELETE]
        for phase in (0, 1, 2):
            batch = [s for s in writes if phase_of(s.key, bool(s.key.namespace)) == phase]
            if phase == 1:
                self._validate_late([s for s in writes if s.key in deferred], reader)
            entries += self._applier.write(batch, reader.info_of)
            if phase == 0:
                entries += self._applier.wait_for_crds(batch)
        for phase in (2, 1, 0):
            batch = [s for s in deletions if phase_of(s.key, bool(s.key.namespace)) == phase]
            entries += self._applier.write(batch, reader.info_of)

    def _validate_late(self, steps: Sequence[PlanStep], reader: LiveReader) -> None:
        """Dry-run what could not be checked before Namespaces and CRDs of this pass existed."""
        if not steps:
            return
        reader.forget_unknown()
        _, problems = self._applier.validate(steps)
        if problems:
            raise ReconcileError(
                f"target {self.target.name}: refused after creating namespaces and CRDs, "
                "nothing else written: " + "; ".join(problems)
            )

    def _save_inventory(
        self,
        previous: Inventory,
        desired: Sequence[DesiredObject],
        steps: Sequence[PlanStep],
        state: _Pass,
    ) -> None:
        """Store what the target owns now; objects not written keep their previous hash."""
        done = {e.key for e in state.entries if e.action in _WRITTEN}
        unreached = {step.key for step in steps} - done
        declared = {obj.key for obj in desired}
        failed_deletions = {key for key in unreached if key not in declared}
        keys = inventory_rules.next_inventory(previous.keys, declared, failed_deletions)
        hashes = {
            obj.key: previous.applied_hashes.get(obj.key, "") if obj.key in unreached
            else manifest_hash(obj.manifest)
            for obj in desired
        }  # fmt: skip
        hashes = {key: digest for key, digest in hashes.items() if digest}
        claims = frozenset(declared)
        if (keys, hashes, claims) == (
            previous.keys,
            dict(previous.applied_hashes),
            previous.claims,
        ):
            return
        assert state.revision is not None
        updated = Inventory(keys, hashes, state.revision.commit, claims)
        self._adapter.save_inventory(self.target.name, updated)

    def _report(self, result: PassResult, *, dry_run: bool) -> None:
        """Log one event per drift and per pass; journal both."""
        revision = result.revision.commit if result.revision else None
        bound = log.bind(target=result.target, revision=revision)
        drifts = [e for e in result.changes.entries if e.action is not Action.UNCHANGED]
        for entry in drifts:
            drift = entry.drift
            bound.warning(
                "drift_detected", **entry.key.as_dict(), action=entry.action.value,
                fields=[{"path": c.path, "desired": c.desired, "live": c.live}
                        for c in (drift.changes if drift else ())],
                missing=bool(drift and drift.missing), error=entry.error or None,
                managers=[{"manager": o.manager, "time": o.time}
                          for o in (drift.owners if drift else ())],
            )  # fmt: skip
        error = str(result.error) if result.error else None
        # Failures are logged as a state change by the daemon (target_failing), once;
        # this is the per-pass record, so it stays at info whatever the outcome.
        bound.info(
            "pass_completed", outcome=result.outcome.value, writes=result.changes.writes,
            duration_seconds=round(result.duration_seconds, 3), error=error, dry_run=dry_run,
        )  # fmt: skip
        # A dry run writes nothing, the journal included: `history` shows what happened.
        if self._journal is not None and not dry_run:
            self._journal.record_pass(
                target=result.target, revision=revision, outcome=result.outcome.value,
                started_at=result.started_at, duration_seconds=result.duration_seconds,
                writes=result.changes.writes, error=error,
                drifts=[(result.started_at, e) for e in drifts],
            )  # fmt: skip


def _memo_namespaced(
    adapter: ClusterAdapter, answers: dict[tuple[str, str], KindInfo | None]
) -> Callable[[str, str], bool | None]:
    """Discovery lookups for render, asked once per kind per pass, recorded in `answers`."""

    def namespaced(api_version: str, kind: str) -> bool | None:
        if (api_version, kind) not in answers:
            answers[(api_version, kind)] = adapter.kind_info(api_version, kind)
        info = answers[(api_version, kind)]
        return None if info is None else info.namespaced

    return namespaced


def _deferred(steps: Sequence[PlanStep], reader: LiveReader) -> frozenset[ResourceKey]:
    """Writes a dry-run cannot check yet: in a Namespace, or of a CRD, this pass creates."""
    new_namespaces = {
        s.key.name for s in steps if (s.key.group, s.key.kind) == ("", "Namespace")
        and s.kind is StepKind.CREATE
    }  # fmt: skip
    return frozenset(
        s.key for s in steps if s.kind is not StepKind.DELETE
        and (s.key.namespace in new_namespaces or not reader.known(s.key))
    )  # fmt: skip


def _previews(
    steps: Sequence[PlanStep], live: Mapping[ResourceKey, LiveObject]
) -> tuple[ObjectPreview, ...]:
    previews = []
    for step in steps:
        current = live.get(step.key)
        before = current.manifest if current is not None else None
        after = step.desired.manifest if step.desired is not None else None
        previews.append(ObjectPreview(step.key, object_diff_text(after, before, str(step.key))))
    return tuple(previews)
