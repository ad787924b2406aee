"""ReadOnlyAdapter over an in-memory adapter: reads and dry-runs pass, writes never do."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd.adapters.base import ApplyResult, KindInfo
from gitopsd.errors import ForbiddenError, ReconcileError
from gitopsd.inventory import Inventory
from gitopsd.model import LiveObject, ResourceKey
from gitopsd.readonly import ReadOnlyAdapter

CM = KindInfo("", "v1", "ConfigMap", "configmaps", True)
NEW = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new", "namespace": "ns"}}
OLD = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old", "namespace": "ns"}}
OLD_KEY = ResourceKey("", "ConfigMap", "ns", "old")


class Memory:
    """An adapter holding one live ConfigMap; dry-runs refused when `forbid` is set."""

    def __init__(self, *, forbid: bool = False) -> None:
        self.forbid = forbid
        self.calls: list[str] = []

    def kind_info(self, api_version: str, kind: str) -> KindInfo | None:
        return CM if kind == "ConfigMap" else None

    def capabilities(self) -> tuple[str, tuple[str, ...]]:
        return "v1.37.2", ("v1", "apps/v1", "apps/v1/Deployment")

    def get(self, info: KindInfo, key: ResourceKey) -> LiveObject | None:
        return LiveObject(key, OLD) if key == OLD_KEY else None

    def apply(self, manifest: Any, *, dry_run: bool, force: bool) -> ApplyResult:
        self.calls.append(f"apply dry_run={dry_run}")
        if self.forbid:
            raise ForbiddenError(
                'configmaps is forbidden: User "reviewer" cannot create', status=403
            )
        return ApplyResult({**manifest, "status": "dry-run"})

    def describe_inventory(self, target: str) -> str:
        return f"ConfigMap ns/gitopsd-inventory-{target}"

    def delete(self, info: KindInfo, key: ResourceKey, uid: str = "") -> None:
        self.calls.append("delete")


def test_dry_runs_and_reads_pass_through() -> None:
    inner = Memory()
    guard = ReadOnlyAdapter(inner, "app")  # type: ignore[arg-type]
    assert guard.apply(NEW, dry_run=True, force=True).manifest["status"] == "dry-run"
    assert guard.get(CM, OLD_KEY) is not None
    assert inner.calls == ["apply dry_run=True"]
    assert guard.unvalidated() == {}


@pytest.mark.parametrize(
    "write",
    [
        lambda g: g.apply(NEW, dry_run=False, force=True),
        lambda g: g.delete(CM, OLD_KEY),
        lambda g: g.release(CM, OLD_KEY),
        lambda g: g.save_inventory("app", Inventory(), "12"),
    ],
    ids=["apply", "delete", "release", "save_inventory"],
)
def test_every_write_is_refused_before_reaching_the_cluster(write: Any) -> None:
    inner = Memory()
    guard = ReadOnlyAdapter(inner, "app")  # type: ignore[arg-type]
    with pytest.raises(ReconcileError, match="target app: a preview writes nothing; refused to"):
        write(guard)
    assert inner.calls == []


def test_what_the_adapter_may_grow_is_refused_until_listed() -> None:
    guard = ReadOnlyAdapter(Memory(), "app")  # type: ignore[arg-type]
    with pytest.raises(AttributeError, match="does not offer 'patch_everything'"):
        guard.patch_everything  # noqa: B018


def test_a_create_the_credentials_may_not_dry_run_is_shown_unvalidated() -> None:
    guard = ReadOnlyAdapter(Memory(forbid=True), "app")  # type: ignore[arg-type]
    assert guard.apply(NEW, dry_run=True, force=True).manifest == NEW
    (why,) = guard.unvalidated().values()
    assert why.startswith("not validated by the API server, which refuses these credentials")
    assert "cannot create" in why


def test_a_refused_dry_run_of_an_existing_object_still_fails() -> None:
    guard = ReadOnlyAdapter(Memory(forbid=True), "app")  # type: ignore[arg-type]
    with pytest.raises(ForbiddenError):
        guard.apply(OLD, dry_run=True, force=True)
    assert guard.unvalidated() == {}


def test_helm_sees_the_clusters_capabilities_through_the_read_only_and_fenced_adapters() -> None:
    # A chart branching on .Capabilities rendered as if on an empty cluster in previews
    # and with ha: (the wrappers hid capabilities, so renders got none), pruning objects.
    from gitopsd.fenced import FencedAdapter
    from gitopsd.renderers import job_for

    for wrapped in (ReadOnlyAdapter(Memory(), "web"), FencedAdapter(Memory(), lambda: None)):  # type: ignore[arg-type]
        job = job_for(None, (), None, object(), wrapped, None)  # type: ignore[arg-type]
        assert job.capabilities is not None
        assert job.capabilities().api_versions == ("v1", "apps/v1", "apps/v1/Deployment")
