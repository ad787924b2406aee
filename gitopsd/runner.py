"""Wire one target's real collaborators: the Git source, the Kubernetes adapter, the journal.

The CLI and the daemon talk to this; tests of the engine build a Reconciler
directly with whatever source and adapter they need.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from gitopsd.adapters.kubernetes import KubernetesAdapter
from gitopsd.clock import SYSTEM_CLOCK, Clock
from gitopsd.config import Config, TargetSettings
from gitopsd.errors import GitopsdError
from gitopsd.journal import Journal
from gitopsd.model import ResourceKey
from gitopsd.passresult import PassResult
from gitopsd.readonly import ReadOnlyAdapter
from gitopsd.reconcile import Reconciler
from gitopsd.render import render
from gitopsd.rendercache import RenderCache
from gitopsd.source.git import GitSource
from gitopsd.source.snapshot import Snapshot


class TargetRunner:
    """Runs passes for one configured target; the cluster is reached only when needed."""

    def __init__(
        self, config: Config, target: TargetSettings, journal: Journal, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.target = target
        self._clock = clock
        self._journal = journal
        self._source = GitSource(target.name, target.source, config.state_dir)
        self._state_dir = config.state_dir
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
            self._reconciler = Reconciler(
                self.target, self._source, adapter, self._journal, self._clock, render_cache=cache
            )
        return self._reconciler.run(dry_run=dry_run, previews=previews, stop=stop)

    def wait_health(self, *, timeout: float, stop: threading.Event | None = None) -> PassResult:
        """`gitopsd wait`: the health of what Git declares, once applied; writes nothing."""
        try:
            adapter = self._cluster()
        except GitopsdError as error:
            return PassResult.failed(self.target.name, error, self._clock.time())
        reconciler = Reconciler(self.target, self._source, adapter, None, self._clock)
        return reconciler.wait_for_health(timeout=timeout, stop=stop or threading.Event())

    def validate(self) -> int:
        """Fetch and render only, no cluster; the number of declared objects."""
        revision = self._source.fetch()
        files = self._source.read_tree(revision)
        objects = render(
            files,
            default_namespace=self.target.namespace,
            target=self.target.name,
            namespaced=lambda _v, _k: None,
        )
        return len(objects)

    def close(self) -> None:
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
