"""`ha:` wired into the daemon and `--once`: the coordinator, and runners that carry its fence.

Kept apart from daemon.py and cli.py so they each gain a few lines only; the rules
are in leases.py, the Lease round in coordinator.py.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from gitopsd.clock import SYSTEM_CLOCK, Clock
from gitopsd.config import Config, TargetSettings
from gitopsd.coordinator import Coordinator
from gitopsd.errors import ClusterError
from gitopsd.haconfig import HaSettings

if TYPE_CHECKING:
    from gitopsd.journal import Journal
    from gitopsd.schedule import PassRunner, RunnerFactory


def open_coordinator(
    settings: HaSettings,
    targets: Iterable[str],
    journal: Journal | None,
    *,
    registry: CollectorRegistry | None = None,
    on_acquired: Callable[[str], None] = lambda _name: None,
    busy: Callable[[str], bool] = lambda _name: False,
    on_lost: Callable[[str, str], None] = lambda _name, _reason: None,
    once: bool = False,
    clock: Clock = SYSTEM_CLOCK,
) -> Coordinator:
    """A Coordinator over the Leases of the `ha:` cluster (ClusterError if unreachable config)."""
    from gitopsd.adapters.lease_store import KubernetesLeaseStore

    return Coordinator(
        settings,
        KubernetesLeaseStore(settings),
        targets,
        clock=clock,
        journal=journal,
        registry=registry,
        on_acquired=on_acquired,
        busy=busy,
        on_lost=on_lost,
        once=once,
    )


def fenced_factory(factory: Callable[..., PassRunner], coordinator: Coordinator) -> RunnerFactory:
    """Runners whose every write first asks `coordinator` whether this replica holds the target."""

    def build(config: Config, target: TargetSettings, journal: Journal) -> PassRunner:
        fence = functools.partial(coordinator.fence, target.name)
        runner: PassRunner = factory(config, target, journal, fence=fence)
        return runner

    return build


@contextlib.contextmanager
def once_claimed(
    config: Config, journal: Journal, factory: Callable[..., PassRunner]
) -> Iterator[tuple[tuple[TargetSettings, ...], dict[str, str], RunnerFactory]]:
    """For `--once` with `ha:`: the targets whose Lease this run took, the others with their
    holder, and fenced runners; the Leases are released when the block ends."""
    assert config.ha is not None
    coordinator = open_coordinator(config.ha, (t.name for t in config.targets), journal, once=True)
    coordinator.tick(targets=False)  # the heartbeat, and the Leases as they stand
    if not coordinator.owns_heartbeat():
        raise ClusterError(
            f"ha: cannot write a Lease in namespace {config.ha.namespace} of the coordination "
            "cluster (see the warning above); nothing reconciled"
        )
    mine: list[TargetSettings] = []
    try:
        for target in config.targets:
            if not coordinator.owns_heartbeat():  # a slow server: renew before taking more
                coordinator.tick(targets=False)
            if coordinator.acquire(target.name):
                mine.append(target)
        coordinator.tick(targets=False)  # the Leases again: who won what this run did not
        coordinator.start(targets=False)  # keeps the heartbeat fresh during long passes
        skipped = {
            t.name: coordinator.holder(t.name) or "another replica"
            for t in config.targets
            if t not in mine
        }
        yield tuple(mine), skipped, fenced_factory(factory, coordinator)
    finally:
        coordinator.stop()
        coordinator.release_all()
