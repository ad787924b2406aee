"""Inventories sharded over ConfigMaps against the real API server: 50,000 objects, shards
that come and go with the target's size, damaged shards refused before any write, format 1
migrated without a prune, and a save cut short between shards finished by the next one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gitopsd.adapters.inventory_io import InventoryStore, RestConfigMaps
from gitopsd.adapters.inventory_store import inventory_name
from gitopsd.adapters.kubernetes import KubernetesAdapter
from gitopsd.config import ClusterSettings
from gitopsd.errors import ClusterError, InventoryError
from gitopsd.inventory import Inventory
from gitopsd.model import Manifest, ResourceKey
from gitopsd.passresult import PassOutcome
from tests.cluster.conftest import Rig
from tests.support.waiting import wait_until

LABEL = "gitopsd.io/inventory-of"


def big(count: int, revision: str = "d" * 40, name: str = "config") -> Inventory:
    """`count` owned ConfigMaps, each with its own hash (random-looking, as real ones)."""
    keys = [ResourceKey("", "ConfigMap", f"ns-{n % 10}", f"{name}-{n:06}") for n in range(count)]
    hashes = {key: hashlib.sha256(key.name.encode()).hexdigest() for key in keys}
    return Inventory(frozenset(keys), hashes, revision, frozenset(keys))


@pytest.fixture
def adapter(kubeconfig: Path, namespace: str) -> Iterator[KubernetesAdapter]:
    """An adapter keeping inventories in the test's own namespace."""
    made = KubernetesAdapter(ClusterSettings(kubeconfig=kubeconfig), namespace)
    try:
        yield made
    finally:
        made.close()


def _stored(api_client: Any, namespace: str, target: str) -> dict[str, Any]:
    """The target's inventory ConfigMaps by name, as the server holds them."""
    core = client.CoreV1Api(api_client)
    found = core.list_namespaced_config_map(namespace, label_selector=f"{LABEL}={target}")
    return {item.metadata.name: item for item in found.items}


def _size(item: Any) -> int:
    data = item.data or {}
    binary = item.binary_data or {}
    return sum(len(k) + len(v) for k, v in data.items()) + sum(
        len(k) + len(v) * 3 // 4 for k, v in binary.items()
    )


def test_50000_objects_are_saved_and_loaded(
    adapter: KubernetesAdapter, api_client: Any, namespace: str
) -> None:
    inventory = big(50_000)
    adapter.check_inventory_fits("shop", inventory)

    version = adapter.save_inventory("shop", inventory, "")
    own, others = KubernetesAdapter.load_inventories(adapter, "shop")

    assert (own.inventory, own.version, dict(others)) == (inventory, version, {})
    stored = _stored(api_client, namespace, "shop")
    assert sorted(stored) == [
        "gitopsd-inventory-shop",
        *(f"gitopsd-inventory-shop.1.{index}" for index in range(3)),
    ]
    # A ConfigMap holds 1 MiB of data: every piece keeps a margin for its metadata.
    assert all(_size(item) < 800 * 1024 for item in stored.values())


def test_the_shard_count_follows_the_target_and_stale_shards_go(
    adapter: KubernetesAdapter, api_client: Any, namespace: str
) -> None:
    version = adapter.save_inventory("shop", big(30_000), "")
    assert len(_stored(api_client, namespace, "shop")) == 3  # head + 2 shards

    version = adapter.save_inventory("shop", big(50_000), version)
    assert sorted(_stored(api_client, namespace, "shop")) == [
        "gitopsd-inventory-shop",
        *(f"gitopsd-inventory-shop.2.{index}" for index in range(3)),
    ]

    adapter.save_inventory("shop", big(300), version)
    assert list(_stored(api_client, namespace, "shop")) == ["gitopsd-inventory-shop"]
    fresh = KubernetesAdapter.load_inventories(adapter, "shop")[0]
    assert fresh.inventory == big(300)


def test_the_first_save_creates_a_missing_inventory_namespace(
    kubeconfig: Path, api_client: Any, namespace: str
) -> None:
    missing = f"{namespace}-inventory"
    adapter = KubernetesAdapter(ClusterSettings(kubeconfig=kubeconfig), missing)
    core = client.CoreV1Api(api_client)
    try:
        version = adapter.save_inventory("shop", big(20_000), "")
        assert adapter.load_inventories("shop")[0].version == version
        assert len(_stored(api_client, missing, "shop")) == 3
    finally:
        adapter.close()
        core.delete_namespace(missing)


@pytest.mark.parametrize("count", [300, 30_000], ids=["one-configmap", "sharded"])
def test_of_two_writers_over_one_version_the_second_is_refused(
    adapter: KubernetesAdapter, kubeconfig: Path, namespace: str, count: int
) -> None:
    version = adapter.save_inventory("shop", big(count), "")
    rival = KubernetesAdapter(ClusterSettings(kubeconfig=kubeconfig), namespace)
    try:
        assert rival.load_inventories("shop")[0].version == version
        adapter.save_inventory("shop", big(count, revision="e" * 40), version)

        with pytest.raises(InventoryError, match="changed by another writer") as refused:
            rival.save_inventory("shop", big(count, revision="f" * 40), version)
        assert refused.value.retryable
        assert rival.load_inventories("shop")[0].inventory.revision == "e" * 40
    finally:
        rival.close()


class _FailingAfter:
    """The real ConfigMap requests, but every create after the first `creates` fails, as a
    process killed (or an API server lost) between two shard writes."""

    def __init__(self, inner: RestConfigMaps, creates: int) -> None:
        self._inner, self._left = inner, creates
        self.created: list[str] = []

    def allow(self) -> None:
        self._left = -1  # never reaches 0 again

    def list(self, selector: str) -> list[Manifest]:
        return self._inner.list(selector)

    def create(self, body: Manifest) -> Manifest:
        if self._left == 0:
            raise ClusterError("cut short by the test")
        self._left -= 1
        self.created.append(body["metadata"]["name"])
        return self._inner.create(body)

    def merge_patch(self, name: str, patch: Manifest) -> Manifest:
        if self._left == 0:
            raise ClusterError("cut short by the test")
        return self._inner.merge_patch(name, patch)

    def delete(self, name: str) -> None:
        self._inner.delete(name)


@pytest.mark.parametrize("next_pass", ["same-process", "restarted"])
def test_a_save_cut_short_between_shards_loses_nothing_and_the_next_finishes_it(
    adapter: KubernetesAdapter, api_client: Any, namespace: str, next_pass: str
) -> None:
    before, after = big(30_000), big(30_000, revision="e" * 40, name="other")
    version = adapter.save_inventory("shop", before, "")
    requests = RestConfigMaps(adapter._request, namespace)
    cut = _FailingAfter(requests, creates=1)
    crashing = InventoryStore(cut, namespace)
    crashing.load("shop")

    with pytest.raises(ClusterError, match="cut short"):
        crashing.save("shop", after, version)

    assert cut.created == ["gitopsd-inventory-shop.2.0"]  # one shard of the new generation
    assert len(_stored(api_client, namespace, "shop")) == 4
    # Whoever reads now finds the old inventory whole: no object it tracked is forgotten.
    own = InventoryStore(requests, namespace).load("shop")[0]
    assert (own.inventory, own.version) == (before, version)

    # The next pass finishes the job, past the orphan: in the same process (which knows
    # what it wrote) or after a restart (which lists it).
    if next_pass == "same-process":
        cut.allow()
        crashing.save("shop", after, version)
    else:
        restarted = InventoryStore(requests, namespace)
        restarted.save("shop", after, restarted.load("shop")[0].version)
    assert sorted(_stored(api_client, namespace, "shop")) == [
        "gitopsd-inventory-shop",
        *(f"gitopsd-inventory-shop.3.{index}" for index in range(2)),
    ]
    assert InventoryStore(requests, namespace).load("shop")[0].inventory == after


def _deny_second_shards(api_client: Any, target: str, namespace: str, unique: str) -> None:
    """A ValidatingAdmissionPolicy refusing to create the target's shard number 1 of any
    generation: a save that stops between its shards, as a process killed there would."""
    admission = client.AdmissionregistrationV1Api(api_client)
    match = {
        "resourceRules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["configmaps"],
            }
        ],
        "objectSelector": {"matchLabels": {LABEL: target}},
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
    }
    rule = {"expression": "!object.metadata.name.endsWith('.1')", "message": "cut by test"}
    admission.create_validating_admission_policy(
        {
            "metadata": {"name": f"cut-{unique}"},
            "spec": {"failurePolicy": "Fail", "matchConstraints": match, "validations": [rule]},
        }
    )
    admission.create_validating_admission_policy_binding(
        {
            "metadata": {"name": f"cut-{unique}"},
            "spec": {"policyName": f"cut-{unique}", "validationActions": ["Deny"]},
        }
    )


def _second_shard_refused(api_client: Any, target: str, namespace: str) -> bool:
    """Whether the policy is in force now, probed with a throwaway shard-like name."""
    core = client.CoreV1Api(api_client)
    probe = {"metadata": {"name": f"probe-{target}.0.1", "labels": {LABEL: target}}}
    try:
        core.create_namespaced_config_map(namespace, probe)
    except client.ApiException as error:
        if error.status in (400, 403, 422):
            return True
        raise
    core.delete_namespaced_config_map(probe["metadata"]["name"], namespace)
    return False


def test_a_pass_cut_between_shard_writes_is_finished_by_the_next_pass(
    rig: Rig, api_client: Any
) -> None:
    core = client.CoreV1Api(api_client)
    for name in ("keep", "drop"):
        rig.source.files[f"{name}.yaml"] = _configmap(name, rig.namespace, "1")
    assert rig.run().outcome is PassOutcome.CONVERGED
    target, where = rig.settings.name, rig.settings.inventory_namespace
    own = rig.adapter.load_inventories(target)[0]
    padded = big(30_000, revision=own.inventory.revision, name=f"pad-{rig.unique}")
    merged = Inventory(
        own.inventory.keys | padded.keys,
        {**own.inventory.applied_hashes, **padded.applied_hashes},
        own.inventory.revision,
        own.inventory.claims | padded.claims,
    )
    rig.adapter.save_inventory(target, merged, own.version)
    _deny_second_shards(api_client, target, where, rig.unique)
    admission = client.AdmissionregistrationV1Api(api_client)
    try:
        wait_until(
            lambda: _second_shard_refused(api_client, target, where),
            "the admission policy took effect",
            timeout=30,
            every=0.3,
        )
        del rig.source.files["drop.yaml"]
        rig.source.files["new.yaml"] = _configmap("new", rig.namespace, "1")

        cut = rig.run()  # its claim of `new`, saved before any write, stops at shard 1

        assert cut.outcome is PassOutcome.FAILED and "cut by test" in str(cut.error)
        names = {c.metadata.name for c in core.list_namespaced_config_map(rig.namespace).items}
        assert {"keep", "drop"} <= names and "new" not in names
        assert rig.adapter.load_inventories(target)[0].inventory == merged
    finally:
        admission.delete_validating_admission_policy_binding(f"cut-{rig.unique}")
        admission.delete_validating_admission_policy(f"cut-{rig.unique}")
    wait_until(
        lambda: not _second_shard_refused(api_client, target, where),
        "the admission policy was lifted",
        timeout=30,
        every=0.3,
    )

    finished = rig.run()

    assert finished.outcome is PassOutcome.CONVERGED, finished.error
    names = {c.metadata.name for c in core.list_namespaced_config_map(rig.namespace).items}
    assert {"keep", "new"} <= names and "drop" not in names
    tracked = rig.adapter.load_inventories(target)[0].inventory.tracked
    assert {key.name for key in tracked} >= {"keep", "new"}
    head = core.read_namespaced_config_map(inventory_name(target), where)
    named = {line.split()[0] for line in head.data["shards"].splitlines()}
    assert set(_stored(api_client, where, target)) == {inventory_name(target), *named}


def test_damaged_shards_are_refused_before_any_write_and_nothing_is_pruned(
    rig: Rig, api_client: Any
) -> None:
    core = client.CoreV1Api(api_client)
    for name in ("keep", "drop"):
        rig.source.files[f"{name}.yaml"] = _configmap(name, rig.namespace, "1")
    assert rig.run().outcome is PassOutcome.CONVERGED
    target, where = rig.settings.name, rig.settings.inventory_namespace
    # Padded with objects that do not exist, the inventory needs shards.
    own = rig.adapter.load_inventories(target)[0]
    padded = big(30_000, revision=own.inventory.revision, name=f"pad-{rig.unique}")
    merged = Inventory(
        own.inventory.keys | padded.keys,
        {**own.inventory.applied_hashes, **padded.applied_hashes},
        own.inventory.revision,
        own.inventory.claims | padded.claims,
    )
    rig.adapter.save_inventory(target, merged, own.version)
    del rig.source.files["drop.yaml"]
    rig.source.files["keep.yaml"] = _configmap("keep", rig.namespace, "2")
    head = inventory_name(target)
    shards = sorted(n for n in _stored(api_client, where, target) if n != head)
    assert len(shards) == 2

    for damage, message in (
        ("missing", f"shard {shards[0]}, named by the head, is missing"),
        ("generation", f"shard {shards[0]} is of generation '99'"),
        ("digest", f"shard {shards[0]} does not match the SHA-256 the head records"),
        ("gzip", "not a gzip stream"),
    ):
        # Each kind of damage on the first shard, then everything put back as it was.
        originals = [core.read_namespaced_config_map(n, where) for n in (shards[0], head)]
        _damage(core, where, shards[0], damage)
        failed = rig.run()

        assert failed.outcome is PassOutcome.FAILED
        assert isinstance(failed.error, InventoryError)
        assert message in str(failed.error) and "cannot be read" in str(failed.error)
        assert core.read_namespaced_config_map("drop", rig.namespace).data == {"v": "1"}
        assert core.read_namespaced_config_map("keep", rig.namespace).data == {"v": "1"}
        for original in originals:
            _restore(core, where, original)

    assert rig.run().outcome is PassOutcome.CONVERGED
    assert core.read_namespaced_config_map("keep", rig.namespace).data == {"v": "2"}
    assert "drop" not in {
        c.metadata.name for c in core.list_namespaced_config_map(rig.namespace).items
    }


def _damage(core: client.CoreV1Api, namespace: str, name: str, how: str) -> None:
    if how == "missing":
        core.delete_namespaced_config_map(name, namespace)
    elif how == "generation":
        core.patch_namespaced_config_map(name, namespace, {"data": {"generation": "99"}})
    elif how == "digest":
        core.patch_namespaced_config_map(name, namespace, {"binaryData": {"part": "bm90IGd6aXA="}})
    else:  # not gzip, with the head's digest made to match: only the decoder can tell
        core.patch_namespaced_config_map(name, namespace, {"binaryData": {"part": "bm90IGd6aXA="}})
        head = core.read_namespaced_config_map(name.rsplit(".", 2)[0], namespace)
        digest = hashlib.sha256(b"not gzip").hexdigest()
        lines = [
            f"{name} {digest}" if line.startswith(f"{name} ") else line
            for line in head.data["shards"].splitlines()
        ]
        body = {"data": {"shards": "\n".join(lines)}}
        core.patch_namespaced_config_map(head.metadata.name, namespace, body)


def _restore(core: client.CoreV1Api, namespace: str, original: Any) -> None:
    body = {
        "metadata": {"name": original.metadata.name, "labels": original.metadata.labels},
        "data": original.data,
        "binaryData": original.binary_data,
    }
    try:
        core.read_namespaced_config_map(original.metadata.name, namespace)
        core.replace_namespaced_config_map(original.metadata.name, namespace, body)
    except client.ApiException as error:
        if error.status != 404:
            raise
        core.create_namespaced_config_map(namespace, body)


def test_a_format_1_inventory_is_read_and_migrated_without_a_prune(
    rig: Rig, api_client: Any
) -> None:
    core = client.CoreV1Api(api_client)
    for name in ("one", "two"):
        rig.source.files[f"{name}.yaml"] = _configmap(name, rig.namespace, "1")
    assert rig.run().outcome is PassOutcome.CONVERGED
    target, where = rig.settings.name, rig.settings.inventory_namespace
    inventory = rig.adapter.load_inventories(target)[0].inventory
    # Put back the inventory as gitopsd stored it before sharding (format 1).
    core.delete_namespaced_config_map(inventory_name(target), where)
    legacy = {
        "metadata": {"name": inventory_name(target), "labels": {LABEL: target}},
        "data": _format_1(inventory),
    }
    core.create_namespaced_config_map(where, legacy)
    assert rig.adapter.load_inventories(target)[0].inventory == inventory

    rig.source.files["one.yaml"] = _configmap("one", rig.namespace, "2")
    migrated = rig.run()

    assert migrated.outcome is PassOutcome.CONVERGED, migrated.error
    assert [
        c.metadata.name
        for c in core.list_namespaced_config_map(rig.namespace).items
        if c.metadata.name in ("one", "two")
    ] == ["one", "two"]
    head = core.read_namespaced_config_map(inventory_name(target), where)
    assert set(head.data) == {"format", "generation", "shards"}
    # Still tracked after the migration: removed from Git, it is pruned.
    del rig.source.files["two.yaml"]
    assert rig.run().outcome is PassOutcome.CONVERGED
    names = {c.metadata.name for c in core.list_namespaced_config_map(rig.namespace).items}
    assert "one" in names and "two" not in names


def _format_1(inventory: Inventory) -> dict[str, str]:
    """ConfigMap data as gitopsd wrote it before sharding."""

    def rows(keys: Any) -> list[list[str]]:
        return [[k.group, k.kind, k.namespace, k.name] for k in sorted(keys)]

    hashes = [
        [*row, inventory.applied_hashes[ResourceKey(*row)]]
        for row in rows(inventory.applied_hashes)
    ]
    return {
        "version": "1",
        "entries": "\n".join("|".join(row) for row in rows(inventory.keys)),
        "applied-hashes.json": json.dumps(hashes),
        "revision": inventory.revision,
        "claims.json": json.dumps(rows(inventory.claims)),
        "adopted.json": json.dumps(rows(inventory.adopted)),
        "claimed-at.json": "[]",
    }


def _configmap(name: str, namespace: str, value: str) -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"
        f"  namespace: {namespace}\ndata: {{v: '{value}'}}\n"
    )
