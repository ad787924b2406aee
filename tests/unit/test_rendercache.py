"""The render cache returns exactly what was stored under the same key, and nothing else."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from gitopsd.config import ClusterSettings, RefKind, SourceSettings, TargetSettings
from gitopsd.model import DesiredObject, IgnoreRule, ResourceKey
from gitopsd.rendercache import RenderCache, cache_key

TARGET = TargetSettings(
    name="web",
    source=SourceSettings(repo="/srv/infra.git", ref_kind=RefKind.BRANCH, ref="main", path="web"),
    cluster=ClusterSettings(),
)
OBJECTS = (
    DesiredObject(
        ResourceKey("apps", "Deployment", "shop", "web"),
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}},
        "web.yaml#1",
    ),
    DesiredObject(
        ResourceKey("", "Namespace", "", "shop"),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
        "ns.yaml#1",
    ),
)
COMMIT = "a" * 40


def test_round_trip(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path, "web")
    key = cache_key(TARGET, COMMIT)
    cache.put(key, OBJECTS)
    assert RenderCache(tmp_path, "web").get(key) == OBJECTS


def test_another_key_or_target_misses(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path, "web")
    cache.put(cache_key(TARGET, COMMIT), OBJECTS)
    assert cache.get(cache_key(TARGET, "b" * 40)) is None
    assert RenderCache(tmp_path, "api").get(cache_key(TARGET, COMMIT)) is None


def test_key_covers_every_render_setting() -> None:
    base = cache_key(TARGET, COMMIT)
    variants = [
        replace(TARGET, name="api"),
        replace(TARGET, namespace="other"),
        replace(TARGET, source=replace(TARGET.source, path="api")),
        replace(TARGET, source=replace(TARGET.source, max_file_bytes=10)),
        replace(TARGET, cluster=replace(TARGET.cluster, context="other")),
    ]
    keys = {cache_key(variant, COMMIT) for variant in variants}
    assert base not in keys and len(keys) == len(variants)


def test_ignore_rules_are_not_part_of_a_render() -> None:
    rule = IgnoreRule(kind="Deployment", pointers=("/spec/replicas",))
    assert cache_key(replace(TARGET, ignore=(rule,)), COMMIT) == cache_key(TARGET, COMMIT)


def test_damaged_file_is_a_miss(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path, "web")
    key = cache_key(TARGET, COMMIT)
    cache.put(key, OBJECTS)
    (tmp_path / "web.json").write_text('{"key": "' + key + '", "objects": [{"key": 1}]}')
    assert cache.get(key) is None
    (tmp_path / "web.json").write_text("not json")
    assert cache.get(key) is None


def test_a_helm_render_is_reused_only_with_the_capabilities_it_read(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path, "web")
    key = cache_key(TARGET, COMMIT)
    cache.put(key, OBJECTS, capabilities="before")
    assert cache.get(key, lambda: "before") == OBJECTS
    assert cache.get(key, lambda: "after") is None  # a CRD came: render again
    assert cache.get(key) is None  # no cluster to compare with
    cache.put(key, OBJECTS)  # kustomize and plain renders read no capabilities
    assert cache.get(key, lambda: "after") == OBJECTS
