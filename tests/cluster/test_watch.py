"""Watches and their cache against the real kube-apiserver (issue 13, slices 1-2).

A pass reads through the shared watches once they are synced: a pass with nothing to do
makes no request at all; someone else's change asks for a pass, gitopsd's own writes don't.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from kubernetes import client

from gitopsd.adapters.watchcache import WatchState
from gitopsd.passresult import PassOutcome, PassResult
from gitopsd.reconcile import Reconciler
from gitopsd.watching import WatchHub
from gitopsd.watchread import Watched
from tests.cluster.conftest import Rig, read_testdata
from tests.support.sources import FilesSource
from tests.support.waiting import wait_until


@dataclass
class Watching:
    """A rig's target read through a WatchHub; `triggers` lists the passes it asked for."""

    rig: Rig
    hub: WatchHub
    adapter: Watched
    triggers: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> PassResult:
        reconciler = Reconciler(self.rig.settings, self.rig.source, self.adapter, self.rig.journal)
        with self.hub.pass_of(self.rig.settings.name) as done:
            result = reconciler.run()
            done(result)
        return result

    def trigger(self, name: str) -> None:
        with self._lock:
            self.triggers.append(name)

    def asked(self) -> list[str]:
        with self._lock:
            return list(self.triggers)


@pytest.fixture
def watching(rig: Rig) -> Iterator[Watching]:
    hub = WatchHub(journal=rig.journal)
    rig.source.files["app/mixed.yaml"] = read_testdata("mixed.yaml", ID=rig.unique)
    w = Watching(rig, hub, hub.adapter(rig.settings, rig.adapter, 3600.0))
    hub.attach(w.trigger)
    try:
        yield w
    finally:
        hub.close()


def _settled(w: Watching) -> PassResult:
    """Passes until one reads everything from synced caches and writes nothing."""

    def quiet() -> PassResult | None:
        result = w.run()
        assert result.outcome is not PassOutcome.FAILED, result.error
        status = w.hub.status(w.rig.settings.name) or {}
        return result if status["last_pass_from_cache"] and not result.plan.steps else None

    return wait_until(quiet, "a pass served from synced caches", timeout=20, every=0.1)


def test_no_change_pass_with_synced_caches_makes_zero_requests(watching: Watching) -> None:
    first = watching.run()
    assert first.outcome is PassOutcome.CONVERGED, first.error
    _settled(watching)
    for _ in range(3):
        result = watching.run()
        assert result.outcome is PassOutcome.IN_SYNC, result.error
        assert sum(result.requests.values()) == 0, result.requests
    assert watching.asked() == []  # the first pass's own writes asked for no pass


def test_targets_of_one_cluster_share_the_inventories_they_read(watching: Watching) -> None:
    """Each pass reads every inventory of the namespace (ownership): one decoded copy serves
    the targets of a cluster, so a pass after another target's reads makes no request."""
    rig = watching.rig
    other = replace(rig.settings, name=f"other-{rig.unique}")
    source = FilesSource()
    source.files["app/cm.yaml"] = (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: other-{rig.unique}}}\n"
        "data: {v: '1'}\n"
    )
    reads = watching.hub.adapter(other, rig.adapter, 3600.0)

    def other_pass() -> PassResult:
        reconciler = Reconciler(other, source, reads, rig.journal)
        with watching.hub.pass_of(other.name) as done:
            result = reconciler.run()
            done(result)
        return result

    assert watching.run().outcome is PassOutcome.CONVERGED
    _settled(watching)
    assert other_pass().outcome is PassOutcome.CONVERGED  # writes its inventory: new versions

    def quiet() -> PassResult | None:
        result = other_pass()
        return result if sum(result.requests.values()) == 0 else None

    wait_until(quiet, "a pass of the other target without a request", timeout=20, every=0.1)
    # The inventories changed since this target last read them; the other target's read of
    # them is current, and serves this pass too.
    result = watching.run()
    assert result.outcome is PassOutcome.IN_SYNC, result.error
    assert sum(result.requests.values()) == 0, result.requests


def test_a_change_by_someone_else_asks_for_a_pass_that_corrects_it(
    watching: Watching, api_client: Any
) -> None:
    rig = watching.rig
    assert watching.run().outcome is PassOutcome.CONVERGED
    _settled(watching)
    core = client.CoreV1Api(api_client)
    core.patch_namespaced_config_map(
        "settings", rig.namespace, {"data": {"color": "red"}}, field_manager="intruder"
    )
    wait_until(lambda: watching.asked(), "a pass asked for by the watch", timeout=10)
    assert watching.asked() == [rig.settings.name]
    result = watching.run()
    assert [(e.key.name, e.action.value) for e in result.changes.entries] == [
        ("settings", "corrected")
    ]
    assert core.read_namespaced_config_map("settings", rig.namespace).data["color"] == "blue"
    corrected = [d for d in rig.journal.drifts(rig.settings.name) if d["action"] == "corrected"]
    assert "intruder" in str(corrected[-1]["managers"])


def test_deleted_and_unlabelled_objects_ask_for_a_pass(watching: Watching, api_client: Any) -> None:
    rig = watching.rig
    assert watching.run().outcome is PassOutcome.CONVERGED
    _settled(watching)
    core = client.CoreV1Api(api_client)
    core.delete_namespaced_service("web", rig.namespace)
    wait_until(lambda: len(watching.asked()) == 1, "a pass for the deleted Service", timeout=10)
    assert watching.run().outcome is PassOutcome.CONVERGED
    _settled(watching)
    patch = {"metadata": {"labels": {"gitopsd.io/target": None}}}
    core.patch_namespaced_config_map("settings", rig.namespace, patch)
    wait_until(lambda: len(watching.asked()) == 2, "a pass for the unlabelled object", timeout=10)
    result = watching.run()
    assert result.outcome is PassOutcome.CONVERGED, result.error
    labels = core.read_namespaced_config_map("settings", rig.namespace).metadata.labels
    assert labels["gitopsd.io/target"] == rig.settings.name


def test_watches_are_shared_and_kinds_no_longer_needed_are_stopped(watching: Watching) -> None:
    rig = watching.rig
    assert watching.run().outcome is PassOutcome.CONVERGED
    _settled(watching)
    cluster = next(iter(watching.hub._clusters.values()))
    kinds = {w.info.kind for w in cluster.watches.all()}
    assert {"ConfigMap", "Secret", "Service", "Deployment"} <= kinds
    assert all(w.state is WatchState.SYNCED for w in cluster.watches.all())
    # Git drops the Deployment: once pruned and out of the inventory, its watch goes.
    text = rig.source.files["app/mixed.yaml"]
    rig.source.files["app/mixed.yaml"] = text.split("---\napiVersion: apps/v1")[0]
    assert watching.run().outcome is PassOutcome.CONVERGED
    watching.run()
    assert "Deployment" not in {w.info.kind for w in cluster.watches.all()}
