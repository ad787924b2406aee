"""A target rendered by kustomize or Helm from a real Git remote, against the real cluster."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from gitopsd.adapters.kubernetes import KubernetesAdapter
from gitopsd.config import ClusterSettings, RefKind, SourceSettings, TargetSettings
from gitopsd.journal import Journal
from gitopsd.passresult import PassResult
from gitopsd.reconcile import Reconciler
from gitopsd.rendercache import RenderCache
from gitopsd.renderconfig import RenderKind, RenderSettings
from gitopsd.source.git import GitSource
from tests.support.git_remotes import BareRemote, FileValue
from tests.support.tools import HELM, KUSTOMIZE, build_tool


@pytest.fixture(scope="session")
def kustomize_tool() -> Path:
    return build_tool(KUSTOMIZE)


@pytest.fixture(scope="session")
def helm_tool() -> Path:
    return build_tool(HELM)


@dataclass
class RenderRig:
    """Targets reading one Git remote, each pass a fresh Reconciler like `--once`."""

    remote: BareRemote
    kubeconfig: Path
    namespace: str
    state: Path
    journal: Journal
    adapter: KubernetesAdapter
    tools: dict[str, str]
    unique: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def commit(self, files: Mapping[str, FileValue]) -> str:
        return self.remote.commit(dict(files))

    def target(self, name: str, path: str, **render: Any) -> TargetSettings:
        settings = RenderSettings(
            kustomize_tool=self.tools.get("kustomize"), helm_tool=self.tools.get("helm")
        )
        return TargetSettings(
            name=f"{name}-{self.unique}",
            source=SourceSettings(
                repo=str(self.remote.bare), ref_kind=RefKind.BRANCH, ref="main", path=path
            ),
            cluster=ClusterSettings(kubeconfig=self.kubeconfig),
            namespace=self.namespace,
            render=replace(settings, **render),
        )

    def run(self, target: TargetSettings, **kwargs: Any) -> PassResult:
        source = GitSource(target.name, target.source, self.state)
        cache = RenderCache(self.state / "render", target.name)
        reconciler = Reconciler(target, source, self.adapter, self.journal, render_cache=cache)
        return reconciler.run(**kwargs)


@pytest.fixture
def render_rig(
    bare_remote: BareRemote,
    kubeconfig: Path,
    namespace: str,
    tmp_path: Path,
    kustomize_tool: Path,
) -> Iterator[RenderRig]:
    """A rig with kustomize; a Helm test sets `tools["helm"]` from the helm_tool fixture."""
    state = tmp_path / "state"
    journal = Journal.open(state)
    adapter = KubernetesAdapter(ClusterSettings(kubeconfig=kubeconfig), "gitopsd-system")
    tools = {"kustomize": str(kustomize_tool)}
    try:
        yield RenderRig(bare_remote, kubeconfig, namespace, state, journal, adapter, tools)
    finally:
        journal.close()
        adapter.close()


__all__ = ["RenderKind", "RenderRig"]
