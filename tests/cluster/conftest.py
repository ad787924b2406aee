"""Fixtures for engine tests: a target per test, reconciled from in-memory files."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from gitopsd.adapters.kubernetes import KubernetesAdapter
from gitopsd.config import ClusterSettings, RefKind, SourceSettings, TargetSettings
from gitopsd.journal import Journal
from gitopsd.passresult import PassResult
from gitopsd.reconcile import Reconciler

# kustomize/Helm targets from a real Git remote (issue 12): fixtures for every module.
from tests.cluster.render_rig import helm_tool, kustomize_tool, render_rig  # noqa: F401
from tests.support.sources import FilesSource

TESTDATA = Path(__file__).parent / "testdata"


def read_testdata(name: str, **replacements: str) -> str:
    """A file under testdata/ with placeholders (NS, ID) replaced."""
    text = (TESTDATA / name).read_text()
    for placeholder, value in replacements.items():
        text = text.replace(placeholder, value)
    return text


@dataclass
class Rig:
    """One target wired to the real cluster: change `files`, run passes, inspect the journal."""

    settings: TargetSettings
    source: FilesSource
    adapter: KubernetesAdapter
    journal: Journal
    namespace: str
    unique: str

    def run(self, **kwargs: Any) -> PassResult:
        return Reconciler(self.settings, self.source, self.adapter, self.journal).run(**kwargs)

    def configure(self, **changes: Any) -> None:
        self.settings = replace(self.settings, **changes)


@pytest.fixture
def rig(kubeconfig: Path, namespace: str, tmp_path: Path) -> Iterator[Rig]:
    unique = uuid.uuid4().hex[:8]
    settings = TargetSettings(
        name=f"target-{unique}",
        source=SourceSettings(repo="memory", ref_kind=RefKind.BRANCH, ref="main"),
        cluster=ClusterSettings(kubeconfig=kubeconfig),
        namespace=namespace,
    )
    adapter = KubernetesAdapter(settings.cluster, settings.inventory_namespace)
    journal = Journal.open(tmp_path / "state")
    try:
        yield Rig(settings, FilesSource(), adapter, journal, namespace, unique)
    finally:
        journal.close()
        adapter.close()
