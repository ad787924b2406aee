"""Ownership across targets against the real kube-apiserver: racing first passes, and
objects a target may never declare (issue 10, items 1 and 3)."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gitopsd.adapters.kubernetes import KubernetesAdapter
from gitopsd.config import ClusterSettings, RefKind, SourceSettings, TargetSettings
from gitopsd.errors import OwnershipError, RenderError
from gitopsd.model import ResourceKey
from gitopsd.passresult import PassOutcome, PassResult
from gitopsd.reconcile import Reconciler
from tests.cluster.conftest import Rig
from tests.support.sources import FilesSource

ROUNDS = 20


def _configmap(name: str, **data: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {data}\n"


def _racer(kubeconfig: Path, namespace: str, name: str, files: dict[str, str]) -> Reconciler:
    settings = TargetSettings(
        name=name,
        source=SourceSettings(repo="memory", ref_kind=RefKind.BRANCH, ref="main"),
        cluster=ClusterSettings(kubeconfig=kubeconfig),
        namespace=namespace,
    )
    adapter = KubernetesAdapter(settings.cluster, settings.inventory_namespace)
    adapter.kind_info("v1", "ConfigMap")  # discovery before the start line, not in the race
    return Reconciler(settings, FilesSource(files), adapter)


def _race(racers: list[Reconciler]) -> list[PassResult]:
    """Run every racer's pass from one start line, each in its own thread."""
    barrier = threading.Barrier(len(racers))
    results: list[PassResult | None] = [None] * len(racers)

    def run(index: int) -> None:
        barrier.wait()
        results[index] = racers[index].run()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(racers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(result is not None for result in results), "a racer did not finish"
    return [result for result in results if result is not None]


def test_two_targets_racing_for_one_object_exactly_one_wins(
    kubeconfig: Path, namespace: str, api_client: Any
) -> None:
    core = client.CoreV1Api(api_client)
    for number in range(ROUNDS):
        unique = uuid.uuid4().hex[:8]
        shared = f"shared-{unique}"
        racers = [
            _racer(
                kubeconfig,
                namespace,
                f"race-{unique}-{side}",
                {"s.yaml": _configmap(shared, side=side)},
            )
            for side in ("a", "b")
        ]
        try:
            results = _race(racers)
            outcomes = sorted((r.outcome.value, r.target, str(r.error)) for r in results)
            winners = [r for r in results if r.outcome is PassOutcome.CONVERGED]
            losers = [r for r in results if r.outcome is PassOutcome.FAILED]
            assert (len(winners), len(losers)) == (1, 1), f"round {number}: {outcomes}"
            (winner,), (loser,) = winners, losers
            assert isinstance(loser.error, OwnershipError), f"round {number}: {outcomes}"
            assert winner.target in str(loser.error) and loser.target in str(loser.error)
            assert loser.changes.writes == 0
            live = core.read_namespaced_config_map(shared, namespace)
            assert live.data == {"side": winner.target[-1]}
            assert live.metadata.labels["gitopsd.io/target"] == winner.target
            key = ResourceKey("", "ConfigMap", namespace, shared)
            # The loser holds no claim that would block the winner's next passes.
            mine, _ = racers[results.index(loser)]._adapter.load_inventories(loser.target)
            assert key not in mine.inventory.tracked
            assert racers[results.index(winner)].run().outcome is PassOutcome.IN_SYNC
        finally:
            for racer in racers:
                racer._adapter.close()


def test_the_owner_keeps_reconciling_while_another_target_declares_its_object(
    rig: Rig,
) -> None:
    rig.source.files["shared.yaml"] = _configmap("shared", a="b")
    assert rig.run().outcome is PassOutcome.CONVERGED
    other_settings = replace(rig.settings, name=f"{rig.settings.name}-other")
    source = FilesSource({"s.yaml": _configmap("shared", a="c")})
    other = Reconciler(other_settings, source, rig.adapter, rig.journal)

    refused = other.run()
    owner_again = rig.run()
    refused_again = other.run()

    for result in (refused, refused_again):
        assert result.outcome is PassOutcome.FAILED
        assert isinstance(result.error, OwnershipError)
        message = str(result.error)
        assert rig.settings.name in message and other_settings.name in message
        # The way out when the owner was removed from the configuration:
        inventory = f"gitopsd-inventory-{rig.settings.name}"
        assert f"delete ConfigMap gitopsd-system/{inventory}" in message
    # A target declaring another's object cannot stop the owner.
    assert owner_again.outcome is PassOutcome.IN_SYNC, owner_again.error


def _forgeries(victim: str) -> dict[str, str]:
    inventory = f"gitopsd-inventory-{victim}"
    label = f"{{gitopsd.io/inventory-of: {victim}}}"
    empty = "data: {version: '1', entries: ''}\n"
    return {
        "inventory": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        f"  name: {inventory}\n  namespace: gitopsd-system\n  labels: {label}\n{empty}",
        "inventory-name": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        f"  name: {inventory}\n  namespace: gitopsd-system\n{empty}",
        "inventory-label": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        f"  name: innocent\n  labels: {label}\n{empty}",
        "target-label": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        f"  name: loose\n  labels: {{gitopsd.io/target: {victim}}}\ndata: {{a: b}}\n",
    }


@pytest.mark.parametrize(
    "forgery", ["inventory", "inventory-name", "inventory-label", "target-label"]
)
def test_a_target_cannot_declare_another_targets_inventory_or_objects(
    rig: Rig, forgery: str
) -> None:
    rig.source.files["mine.yaml"] = _configmap("mine", a="b")
    assert rig.run().outcome is PassOutcome.CONVERGED
    attacker = replace(rig.settings, name=f"{rig.settings.name}-x")
    files = {
        "ok.yaml": _configmap("fine", a="b"),
        "forged.yaml": _forgeries(rig.settings.name)[forgery],
    }
    result = Reconciler(attacker, FilesSource(files), rig.adapter, rig.journal).run()

    assert result.outcome is PassOutcome.FAILED
    assert isinstance(result.error, RenderError), result.error
    message = str(result.error)
    assert message.startswith("forged.yaml document 1: ") and "\n" not in message
    assert result.changes.writes == 0
    stored, _ = rig.adapter.load_inventories(rig.settings.name)
    assert {key.name for key in stored.inventory.keys} == {"mine"}
    assert rig.run().outcome is PassOutcome.IN_SYNC
