"""`gitopsd validate --check-access`: ask the API server, before any pass, whether the
credentials may do everything a target's revision needs (SelfSubjectAccessReview), so a
missing grant shows up as a list of rules to add, not as the first pass that fails on it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gitopsd.adapters.base import KindInfo
from gitopsd.adapters.kubernetes import KubernetesAdapter
from gitopsd.adapters.rbac import Permission, Scope, needed
from gitopsd.config import Config, TargetSettings
from gitopsd.model import DesiredObject
from gitopsd.renderers import job_for, render_target, with_chart_cache
from gitopsd.source.git import GitSource


def scopes_of(
    objects: Sequence[DesiredObject], kind_info: Callable[[str, str], KindInfo | None]
) -> list[Scope]:
    """The resources `objects` are of, each with the namespaces it is used in; kinds the
    server does not serve (a CRD the revision brings) are skipped."""
    found: dict[tuple[str, str], set[str]] = {}
    for obj in objects:
        info = kind_info(obj.api_version, obj.key.kind)
        if info is not None:
            namespace = obj.key.namespace if info.namespaced else ""
            found.setdefault((info.group, info.plural), set()).add(namespace)
    return [Scope(g, r, frozenset(spaces)) for (g, r), spaces in sorted(found.items())]


def missing_permissions(
    target: TargetSettings,
    objects: Sequence[DesiredObject],
    kind_info: Callable[[str, str], KindInfo | None],
    allowed: Callable[[Permission], bool],
) -> list[Permission]:
    """Every permission a pass of `target` over `objects` needs and `allowed` denies."""
    scopes = scopes_of(objects, kind_info)
    wanted = needed(scopes, target.inventory_namespace, prune=target.prune, adopt=target.adopt)
    return [permission for permission in wanted if not allowed(permission)]


def check_target(config: Config, target: TargetSettings) -> list[Permission]:
    """Fetch and render `target` with the cluster's discovery, then ask the API server about
    every permission a pass needs; the ones the credentials lack. Writes nothing."""
    source = GitSource(target.name, target.source, config.state_dir)
    adapter = KubernetesAdapter(target.cluster, target.inventory_namespace)
    try:

        def namespaced(api_version: str, kind: str) -> bool | None:
            info = adapter.kind_info(api_version, kind)
            return None if info is None else info.namespaced

        revision = source.fetch()
        # As a pass renders it: kustomize, Helm with the cluster's capabilities, decryption.
        charted = with_chart_cache(target, config.state_dir / "charts")
        job = job_for(charted, source.read_tree(revision), namespaced, source, adapter, revision)
        objects = render_target(job)
        return missing_permissions(target, objects, adapter.kind_info, adapter.allowed)
    finally:
        adapter.close()
