"""Event-triggered passes in the daemon (issue 13): watch events -> debounce -> one pass.

The daemon, its scheduler and workers are real; passes are fakes (tests/support/fake_runner),
the watches a fake that hands the test their event sink, and the debounce is waited on a
ManualClock, so no test depends on how fast the machine is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gitopsd.adapters.watchcache import WatchEvent, WatchStats
from gitopsd.clock import ManualClock
from gitopsd.config import ClusterSettings, load_config
from gitopsd.daemon import Daemon
from gitopsd.journal import Journal
from gitopsd.model import MANAGED_BY_LABEL, MANAGED_BY_VALUE, TARGET_LABEL, ResourceKey
from gitopsd.watching import WatchHub
from tests.daemon.test_daemon import config_text
from tests.support.fake_runner import Script
from tests.support.git_remotes import free_port

KEY = ResourceKey("", "ConfigMap", "default", "app")


class FakeWatches:
    """Stands in for ClusterWatches: keeps the sink, starts nothing."""

    sinks: ClassVar[list[Callable[[WatchEvent], None]]] = []

    def __init__(self, settings: ClusterSettings, sink: Callable[[WatchEvent], None]) -> None:
        FakeWatches.sinks.append(sink)
        self.stats = WatchStats()

    def retain(self, kinds: object) -> list[str]:
        return []

    lost: ClassVar[list[Any]] = []  # watches a test says are reconnecting

    def all(self) -> list[Any]:
        return list(FakeWatches.lost)

    def get(self, group: str, kind: str) -> None:
        return None

    def close(self) -> None:
        pass


def _event(version: int, kind: str = "MODIFIED") -> WatchEvent:
    labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, TARGET_LABEL: "web"}
    metadata = {"name": KEY.name, "namespace": KEY.namespace, "labels": labels}
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {**metadata}}
    obj["metadata"]["resourceVersion"] = str(version)
    return WatchEvent(None, kind, KEY, obj, obj, 0.0)  # type: ignore[arg-type]


class Rig:
    def __init__(self, daemon: Daemon, hub: WatchHub, script: Script) -> None:
        self.daemon, self.hub, self.script = daemon, hub, script
        self.exit_code: int | None = None
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        self.exit_code = self.daemon.run()

    def drift(self, version: int) -> None:
        FakeWatches.sinks[-1](_event(version))


class LostWatch:
    """A watch that cannot reach its API server."""

    info = type("Info", (), {"kind": "Service"})()
    state = None

    def lost_since(self) -> float:
        return 1.0


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    FakeWatches.sinks, FakeWatches.lost = [], []
    # From the wall time: APScheduler fires by the real clock, and would otherwise count
    # every interval since 1970 when it schedules the next pass.
    clock = ManualClock(time.time())
    script = Script(clock=clock)
    (tmp_path / "hook-secret").write_text("secret\n")
    path = tmp_path / "gitopsd.yaml"
    path.write_text(config_text(free_port(), "web"))
    config = load_config(path)
    journal = Journal.open(config.state_dir)
    hub = WatchHub(clock, journal, watches=FakeWatches)  # type: ignore[arg-type]
    daemon = Daemon(
        config, runner_factory=script.factory, journal=journal, clock=clock, watches=hub
    )
    hub.adapter(config.targets[0], object(), 3600.0)  # type: ignore[arg-type]
    running = Rig(daemon, hub, script)
    running.thread.start()
    assert script.wait_calls("web", 1), "no first pass"
    try:
        yield running
    finally:
        script.release_all()
        daemon.request_stop()
        running.thread.join(10)
        journal.close()
    assert running.exit_code == 0


def test_a_drift_event_runs_the_targets_pass_without_waiting_for_the_interval(rig: Rig) -> None:
    rig.drift(10)
    assert rig.script.wait_calls("web", 2)


def test_a_burst_during_a_pass_makes_exactly_one_more_pass_after_it(rig: Rig) -> None:
    gate = rig.script.hold("web")
    rig.drift(10)
    assert rig.script.wait_started("web", 2)
    for version in range(11, 16):  # while the pass is held: coalesced into one request
        rig.drift(version)
    assert _eventually(lambda: rig.hub._due.next_due() is None)  # all fired at the daemon
    gate.set()
    assert rig.script.wait_calls("web", 3)
    rig.drift(20)  # a marker: the next pass is this one's, so no other pass was queued
    assert rig.script.wait_calls("web", 4)
    starts = [n for event, name, n in rig.script.events if event == "start"]
    assert starts == [1, 2, 3, 4]
    # Never two passes of the target at once: every start follows the previous end.
    order = [(event, n) for event, _, n in rig.script.events]
    assert order == [(e, n) for n in range(1, 5) for e in ("start", "end")]


def test_an_echo_of_our_own_write_asks_for_no_pass(rig: Rig) -> None:
    cluster = next(iter(rig.hub._clusters.values()))
    cluster.own.wrote(KEY, 30)
    rig.drift(30)
    assert rig.hub._due.next_due() is None  # decided on the spot: nothing scheduled
    metrics = rig.daemon.backend.metrics().decode()
    assert 'gitopsd_watch_object_events_total{origin="own",target="web"} 1.0' in metrics
    rig.drift(31)  # someone else's write after ours: a pass
    assert rig.script.wait_calls("web", 2)


def test_readyz_reports_watches_reconnecting_while_it_lasts(rig: Rig) -> None:
    assert rig.daemon.backend.readiness() == []
    FakeWatches.lost = [LostWatch()]
    [line] = rig.daemon.backend.readiness()
    assert "reconnecting: Service" in line
    FakeWatches.lost = []
    assert rig.daemon.backend.readiness() == []


def _eventually(condition: Callable[[], object], timeout: float = 5.0) -> bool:
    from tests.support.waiting import eventually

    return eventually(condition, timeout)
