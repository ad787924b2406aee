"""Wire one target's real collaborators: the Git source, the Kubernetes adapter, the journal.

The CLI and the daemon talk to this; tests of the engine build a Reconciler
directly with whatever source and adapter they need.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from gitopsd.adapters.base import ClusterAdapter
from gitopsd.adapters.kubernetes import KubernetesAdapter
from gitopsd.clock import SYSTEM_CLOCK, Clock
from gitopsd.config import Config, TargetSettings
from gitopsd.errors import GitopsdError
from gitopsd.journal import Journal
from gitopsd.model import ResourceKey
from gitopsd.passresult import PassResult
from gitopsd.readonly import ReadOnlyAdapter
from gitopsd.reconcile import Reconciler
from gitopsd.rendercache import RenderCache
from gitopsd.renderers import RenderJob, choose, render_target, with_chart_cache
from gitopsd.source.git import GitSource
from gitopsd.source.snapshot import Snapshot
from gitopsd.watching import WatchHub
from gitopsd.waves import waves_of


class TargetRunner:
    """Runs passes for one configured target; the cluster is reached only when needed."""

    def __init__(
        self,
        config: Config,
        target: TargetSettings,
        journal: Journal,
        clock: Clock = SYSTEM_CLOCK,
        watches: WatchHub | None = None,
        fence: Callable[[], None] | None = None,
    ) -> None:
        # Chart archives from chart repositories are kept next to the Git mirrors.
        self.target = with_chart_cache(target, config.state_dir / "charts")
        # The daemon's watches (None for --once, diff and validate, which list as before).
        self._watches = watches if target.watch.enabled else None
        self._interval = target.interval_seconds or config.interval_seconds
        self._clock = clock
        self._journal = journal
        self._source = GitSource(target.name, target.source, config.state_dir)
        self._state_dir = config.state_dir
        self._fence = fence  # with `ha:`: NotOwnerError unless this replica holds the target
        self._adapter: KubernetesAdapter | None = None
        self._reconciler: Reconciler | None = None

    def run_pass(
        self,
        *,
        dry_run: bool = False,
        previews: bool = False,
        stop: threading.Event | None = None,
    ) -> PassResult:
        """One pass; never raises a GitopsdError: a failure is outcome FAILED with `.error`.

        Setting `stop` ends the pass after the writes in flight, with the inventory saved.
        """
        try:
            adapter = self._cluster()
        except GitopsdError as error:
            return PassResult.failed(self.target.name, error, self._clock.time())
        if self._reconciler is None:
            # Kept across passes: a commit already rendered is not rendered again.
            cache = RenderCache(self._state_dir / "render", self.target.name)
            reads: ClusterAdapter = adapter
            if self._watches is not None:
                reads = self._watches.adapter(self.target, adapter, self._interval)
            self._reconciler = Reconciler(
                self.target,
                self._source,
                reads,
                self._journal,
                self._clock,
                render_cache=cache,
                fence=self._fence,
            )
        try:
            if self._watches is None:
                return self._reconciler.run(dry_run=dry_run, previews=previews, stop=stop)
            with self._watches.pass_of(self.target.name) as done:
                result = self._reconciler.run(dry_run=dry_run, previews=previews, stop=stop)
                done(result)
            return result
        finally:
            adapter.drop_idle_connections()

    def wait_health(self, *, timeout: float, stop: threading.Event | None = None) -> PassResult:
        """`gitopsd wait`: the health of what Git declares, once applied; writes nothing."""
        try:
            adapter = self._cluster()
        except GitopsdError as error:
            return PassResult.failed(self.target.name, error, self._clock.time())
        reconciler = Reconciler(self.target, self._source, adapter, None, self._clock)
        return reconciler.wait_for_health(timeout=timeout, stop=stop or threading.Event())

    def validate(self) -> tuple[int, str]:
        """Fetch and render only, no cluster (Helm gets its default capabilities); the
        number of declared objects and the renderer used."""
        revision = self._source.fetch()
        files = self._source.read_tree(revision)
        job = RenderJob(
            self.target,
            files,
            lambda _v, _k: None,
            checkout=lambda directory: self._source.checkout(revision, directory),
        )
        declared = render_target(job)
        waves_of(declared)  # a wave that is no integer refuses the revision, as a pass would
        return len(declared), choose(self.target.render, files).value

    def close(self) -> None:
        if self._watches is not None:
            self._watches.release(self.target.name)
        if self._adapter is not None:
            self._adapter.close()
            self._adapter = None
        self._reconciler = None  # bound to the closed adapter

    def _cluster(self) -> KubernetesAdapter:
        if self._adapter is None:
            self._adapter = KubernetesAdapter(self.target.cluster, self.target.inventory_namespace)
        return self._adapter


def preview_pass(
    target: TargetSettings, snapshot: Snapshot, clock: Clock = SYSTEM_CLOCK
) -> tuple[PassResult, Mapping[ResourceKey, str]]:
    """A dry-run pass with previews of `snapshot` against the live cluster, through an
    adapter that only reads and dry-runs; nothing journaled, cached or marked applied.

    Also the objects the server could not validate, with why (see readonly.py).
    """
    try:
        adapter = KubernetesAdapter(target.cluster, target.inventory_namespace)
    except GitopsdError as error:
        return PassResult.failed(target.name, error, clock.time()), {}
    guard = ReadOnlyAdapter(adapter, target.name)
    try:
        reconciler = Reconciler(target, snapshot, guard, None, clock)
        result = reconciler.run(dry_run=True, previews=True)
    finally:
        adapter.close()
    return result, guard.unvalidated()
