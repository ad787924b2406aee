"""One reconcile pass for one target: the pipeline, wired to its collaborators.

fetch -> render -> inventories (ownership) -> live read -> plan -> apply_plan
(validate, claim, write) -> next inventory -> save -> report. The pure stages do the
thinking; this module only sequences them and receives source, adapter, journal and
clock, so tests hand it real ones. Nothing is written unless the whole revision
rendered and validated, and nothing is pruned on an error or an empty render.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import structlog

from gitopsd.adapters.base import ClusterAdapter
from gitopsd.apply import ApplyOptions, apply_plan
from gitopsd.clock import SYSTEM_CLOCK, Clock
from gitopsd.config import ConflictPolicy, TargetSettings
from gitopsd.diff import object_diff_text
from gitopsd.errors import GitopsdError, InventoryError, OwnershipError, RenderError
from gitopsd.fenced import FencedAdapter
from gitopsd.health import Health, ObjectHealth
from gitopsd.inventory import (
    Inventory,
    StoredInventory,
    claim,
    contested,
    find_clash,
    holds,
    next_inventory,
    pinned,
    upper_bound,
    withdrawn,
)
from gitopsd.journal import Journal
from gitopsd.livestate import read_live
from gitopsd.model import (
    ChangeSet,
    DesiredObject,
    LiveObject,
    Plan,
    PlanStep,
    ResourceKey,
    Revision,
    SourceFile,
)
from gitopsd.passresult import ObjectPreview, ObjectStatus, PassOutcome, PassResult
from gitopsd.plan import Adoption, make_plan
from gitopsd.rendercache import RenderCache, cache_key
from gitopsd.renderers import (
    Rendered,
    capabilities_digest,
    capabilities_of,
    job_for,
    render_recording,
    resolved_chart,
)
from gitopsd.report import PassReporter
from gitopsd.waiting import POLL_SECONDS, WaveWaits, await_health, last_known
from gitopsd.waves import waves_of

log = structlog.get_logger("gitopsd.reconcile")


class Source(Protocol):
    """Where declared state comes from (gitopsd.source.GitSource, or a test double)."""

    def fetch(self) -> Revision: ...
    def read_tree(self, revision: Revision) -> tuple[SourceFile, ...]: ...
    def mark_applied(self, revision: Revision) -> None: ...


@dataclass
class _Pass:
    """What the pass in progress got to, kept for its result when a later stage fails."""

    revision: Revision | None = None
    plan: Plan | None = None
    changes: ChangeSet = field(default_factory=ChangeSet)
    previews: tuple[ObjectPreview, ...] = ()
    health: tuple[ObjectStatus, ...] = ()


class Reconciler:
    """Runs passes for one target."""

    def __init__(
        self,
        target: TargetSettings,
        source: Source,
        adapter: ClusterAdapter,
        journal: Journal | None = None,
        clock: Clock = SYSTEM_CLOCK,
        render_cache: RenderCache | None = None,
        fence: Callable[[], None] | None = None,
    ) -> None:
        self.target = target
        self._source = source
        # With `ha:`, `fence` raises NotOwnerError unless this replica may write the target:
        # asked before the write phase, and by the adapter before every single write.
        self._adapter = adapter if fence is None else FencedAdapter(adapter, fence)
        self._fence = fence
        self._journal = journal
        self._clock = clock
        self._options = ApplyOptions(
            target=target.name,
            force=target.conflicts is ConflictPolicy.FORCE,
            recreate=target.recreate,
            concurrency=target.cluster.concurrency,
        )
        self._journaled_rewrite: tuple[str, str] | None = None
        self._rendered: tuple[str, Rendered] | None = None
        self._render_cache = render_cache
        self._reporter = PassReporter(journal)

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
        started = self._clock.time()
        before = dict(self._adapter.request_counts())
        state = _Pass()
        error: GitopsdError | None = None
        try:
            outcome = self._pass(state, stop or threading.Event(), dry_run, previews)
        except GitopsdError as failure:
            error, outcome = failure, PassOutcome.FAILED
        after = self._adapter.request_counts()
        result = PassResult(
            target=self.target.name,
            outcome=outcome,
            revision=state.revision,
            changes=state.changes,
            plan=state.plan,
            error=error,
            started_at=started,
            duration_seconds=self._clock.time() - started,
            previews=state.previews,
            requests={verb: n - before.get(verb, 0) for verb, n in after.items()},
            health=state.health,
        )
        self._reporter.report(result, dry_run=dry_run)
        return result

    def wait_for_health(self, *, timeout: float, stop: threading.Event) -> PassResult:
        """`gitopsd wait`: once the revision Git declares is applied (by a daemon), wait for
        its objects' health; writes nothing. Never raises a GitopsdError (outcome FAILED)."""
        started, deadline = self._clock.time(), self._clock.monotonic() + timeout
        revision: Revision | None = None
        health: tuple[ObjectStatus, ...] = ()
        try:
            revision = self._source.fetch()
            declared = self._declared(revision)
            health = self._await_applied(revision, declared, deadline, stop)
            if health:
                outcome = PassOutcome.PROGRESSING
            else:
                remaining = max(deadline - self._clock.monotonic(), 0.0)
                outcome, health = await_health(
                    self._adapter, declared, timeout=remaining, clock=self._clock, stop=stop
                )
            error = None
        except GitopsdError as failure:
            outcome, error = PassOutcome.FAILED, failure
        duration = self._clock.time() - started
        return PassResult(
            self.target.name,
            outcome,
            revision,
            ChangeSet(),
            None,
            error,
            started,
            duration,
            health=health,
        )

    def _await_applied(
        self,
        revision: Revision,
        declared: Sequence[DesiredObject],
        deadline: float,
        stop: threading.Event,
    ) -> tuple[ObjectStatus, ...]:
        """Empty once the target's inventory records `revision` (or exactly what it
        declares); else, at the deadline or on `stop`, the pseudo-object saying which
        revision the cluster holds."""
        while True:
            pending = self._not_applied(revision, declared)
            remaining = deadline - self._clock.monotonic()
            if (
                not pending
                or remaining <= 0
                or self._clock.wait(stop, min(POLL_SECONDS, remaining))
            ):
                return pending

    def _not_applied(
        self, revision: Revision, declared: Sequence[DesiredObject]
    ) -> tuple[ObjectStatus, ...]:
        """One pseudo-object while the cluster holds an older revision of the target."""
        stored, _ = self._adapter.load_inventories(self.target.name)
        applied = stored.inventory.revision
        if applied == revision.commit or holds(stored.inventory, declared):
            return ()
        where = self._adapter.describe_inventory(self.target.name)
        reason = f"not yet applied ({where} records {applied[:12] or 'no revision'})"
        key = ResourceKey("gitopsd.io", "Revision", "", revision.short)
        return (ObjectStatus(key, ObjectHealth(Health.IN_PROGRESS, reason)),)

    def _pass(
        self, state: _Pass, stop: threading.Event, dry_run: bool, previews: bool
    ) -> PassOutcome:
        state.revision = revision = self._fetch(dry_run)
        desired = self._declared(revision)
        if chart := resolved_chart(self.target):  # a chart repository's version, with the commit
            state.revision = revision = replace(revision, chart=chart)
            self._journal_chart(revision, dry_run)
        stored = self._load_inventory(desired, dry_run)
        live = read_live(self._adapter, self.target.name, desired, stored.inventory.tracked)
        state.plan = self._plan(desired, live, stored.inventory)
        options = replace(self._options, dry_run=dry_run)
        claimed = stored
        waits = WaveWaits(
            self._adapter,
            desired,
            timeout=self.target.health_timeout_seconds,
            clock=self._clock,
            stop=stop,
        )

        def claim_first(plan: Plan) -> None:
            nonlocal claimed
            if self._fence is not None:
                self._fence()
            claimed = self._claim(stored, desired, plan)

        applied = apply_plan(
            state.plan,
            live,
            self._adapter,
            options,
            stop,
            clock=self._clock,
            before_writes=claim_first,
            gate=waits.gate if self.target.wait else None,
        )
        state.plan, state.changes = applied.plan, applied.changes
        state.previews = _previews(applied.plan.steps, live) if previews else ()
        if dry_run:
            return PassOutcome.WOULD_CHANGE if applied.plan.steps else PassOutcome.IN_SYNC
        # Whatever was written is tracked, even when the pass failed part way.
        updated = next_inventory(
            claimed.inventory, applied.plan.desired, applied.changes, revision.commit
        )
        if updated is not claimed.inventory:
            self._store(claimed, updated)
        if applied.error is not None:
            raise applied.error
        if waits.held is None:  # a wave held back: the revision is not applied in full
            self._source.mark_applied(revision)
        if not self.target.wait:
            state.health = last_known(
                self._adapter, applied.plan.desired, live, applied.changes, applied.written
            )
            return PassOutcome.CONVERGED if applied.plan.steps else PassOutcome.IN_SYNC
        outcome, state.health = waits.final()
        return outcome

    def _fetch(self, dry_run: bool) -> Revision:
        revision = self._source.fetch()
        if not dry_run:
            self._journal_history_rewrite(revision)
        return revision

    def _journal_chart(self, revision: Revision, dry_run: bool) -> None:
        if self._journal is not None and not dry_run:
            name, version = revision.chart.split(" ", 1)
            self._journal.record_event_once(
                target=self.target.name,
                at=self._clock.time(),
                event="chart_resolved",
                detail={"revision": revision.commit, "chart": name, "version": version},
            )

    def _journal_history_rewrite(self, revision: Revision) -> None:
        rewrite = getattr(self._source, "history_rewrite", None)
        if self._journal is None or not rewrite or rewrite[1] != revision.commit:
            return
        if rewrite != self._journaled_rewrite:
            self._journal.record_event_once(
                target=self.target.name,
                at=self._clock.time(),
                event="history_rewritten",
                detail={"previous": rewrite[0], "revision": rewrite[1]},
            )
            self._journaled_rewrite = rewrite

    def _declared(self, revision: Revision) -> tuple[DesiredObject, ...]:
        """The objects the revision declares, rendered once per commit."""
        declared = self._cached_render(revision)
        if declared is None:
            declared = self._render(revision)
        # Checked on every path, the caches included: allow_empty is not part of a render.
        if not declared and not self.target.allow_empty:
            raise RenderError(
                f"target {self.target.name}: revision {revision.short} declares no objects; "
                "refusing to prune everything (set `allow_empty: true` if that is intended)"
            )
        waves_of(declared)  # a bad wave annotation refuses the revision before any write
        return declared

    def _cached_render(self, revision: Revision) -> tuple[DesiredObject, ...] | None:
        # Keyed by commit and render inputs (tools, variables), in memory as on disk.
        # A Helm render also by the capabilities it read (a CRD served since renders again).
        key = cache_key(self.target, revision.commit)
        current = self._capabilities_digest
        if self._rendered is not None and self._rendered[0] == key:
            read = self._rendered[1].capabilities
            if read is None or read == current():
                return self._rendered[1].objects
        if self._render_cache is None:
            return None
        cached = self._render_cache.lookup(key, current)
        if cached is not None:
            self._rendered = (key, cached)
        return None if cached is None else cached.objects

    def _capabilities_digest(self) -> str:
        discover = capabilities_of(self._adapter)
        return "" if discover is None else capabilities_digest(discover())

    def _render(self, revision: Revision) -> tuple[DesiredObject, ...]:
        files = self._source.read_tree(revision)
        unknown: set[tuple[str, str]] = set()

        def namespaced(api_version: str, kind: str) -> bool | None:
            info = self._adapter.kind_info(api_version, kind)
            if info is None:
                unknown.add((api_version, kind))
            return None if info is None else info.namespaced

        key = cache_key(self.target, revision.commit)
        rendered = render_recording(
            job_for(self.target, files, namespaced, self._source, self._adapter, revision)
        )
        declared = rendered.objects
        # A commit renders the same again, unless a kind was unknown (a CRD not yet applied).
        if not unknown:
            self._rendered = (key, rendered)
            # A target that decrypts is never cached on disk: a decrypted file can reach an
            # object in forms no marking recognises (a whole file base64'd by kustomize).
            if self._render_cache is not None and self.target.decryption is None:
                self._render_cache.put(key, declared, rendered.capabilities)
        return declared

    def _load_inventory(self, desired: Sequence[DesiredObject], dry_run: bool) -> StoredInventory:
        """This target's inventory, once no other target owns or first claimed what it
        declares, and the inventory this pass leaves is known to fit."""
        stored, others = self._adapter.load_inventories(self.target.name)
        keys = frozenset(obj.key for obj in desired)
        self._contest(keys, stored, others, withdraw=not dry_run)
        inventory = stored.inventory
        if not keys <= inventory.keys:  # what is already stored fits: only growth can fail
            self._adapter.check_inventory_fits(self.target.name, upper_bound(inventory, keys))
        return stored

    def _claim(
        self, stored: StoredInventory, desired: Sequence[DesiredObject], plan: Plan
    ) -> StoredInventory:
        """Store what this pass declares and adopts before its first write, then check
        ownership again against every inventory as stored after that (see find_clash)."""
        keys = frozenset(obj.key for obj in desired)
        claimed = claim(stored.inventory, keys, plan.adoptions)
        if claimed is stored.inventory:
            return stored  # nothing new: the claims already stored were contested
        stored = self._store(stored, claimed)
        current, others = self._adapter.load_inventories(self.target.name)
        if current.version != stored.version:
            raise InventoryError(
                f"target {self.target.name}: {self._adapter.describe_inventory(self.target.name)}"
                " was changed by another writer during the pass (another gitopsd reconciling "
                "this target?); nothing written",
                retryable=True,
            )
        self._contest(keys, current, others, withdraw=True)
        return stored

    def _contest(
        self,
        keys: frozenset[ResourceKey],
        stored: StoredInventory,
        others: Mapping[str, StoredInventory],
        *,
        withdraw: bool,
    ) -> None:
        """OwnershipError naming the other target if it wins one of `keys`; this target's
        pending claims on every contested key are withdrawn first, so they block no one."""
        clash = find_clash(self.target.name, keys, stored, others)
        if clash is None:
            return
        if withdraw:
            self._withdraw(stored, contested(self.target.name, keys, others))
        raise OwnershipError(
            f"{clash.message()} (if target {clash.other!r} no longer exists, delete "
            f"{self._adapter.describe_inventory(clash.other)})"
        )

    def _withdraw(self, stored: StoredInventory, keys: frozenset[ResourceKey]) -> None:
        remaining = withdrawn(stored.inventory, keys)
        if remaining is stored.inventory:
            return
        # Best effort: the ownership error is the news; a claim left behind is withdrawn
        # by this target's next pass, and loses to the winner's once it owns the object.
        try:
            self._store(stored, remaining)
        except GitopsdError as error:
            log.warning("claim_withdrawal_failed", target=self.target.name, error=str(error))

    def _store(self, stored: StoredInventory, inventory: Inventory) -> StoredInventory:
        """Save `inventory` over `stored` (compare-and-swap), old claims keeping their time."""
        inventory = pinned(stored, inventory)
        version = self._adapter.save_inventory(self.target.name, inventory, stored.version)
        return StoredInventory(inventory, version)

    def _plan(
        self,
        desired: Sequence[DesiredObject],
        live: Mapping[ResourceKey, LiveObject],
        inventory: Inventory,
    ) -> Plan:
        return make_plan(
            desired,
            live,
            inventory.tracked,
            rules=self.target.ignore,
            prune=self.target.prune,
            last_applied=inventory.applied_hashes,
            target=self.target.name,
            allow_empty=self.target.allow_empty,
            adoption=Adoption(inventory.adopted, self.target.adopt, self.target.prune_adopted),
        )


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
