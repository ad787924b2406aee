"""The API server lost mid-pass: the pass ends at once with one retryable error.

Before, every object left was tried five times (150 objects: 65 s of `--once` to give
up). Each test kills the kube-apiserver of a control plane of this module's own, then
starts it again, so the session's shared cluster is not disturbed.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping

import pytest

from gitopsd.adapters.kubernetes import KubernetesAdapter
from gitopsd.config import ClusterSettings, RefKind, SourceSettings, TargetSettings
from gitopsd.errors import UnavailableError
from gitopsd.model import Action
from gitopsd.passresult import PassOutcome, PassResult
from gitopsd.reconcile import Reconciler
from tests.support.cluster import ControlPlane, separate_control_plane
from tests.support.sources import FilesSource
from tests.support.waiting import wait_until

OBJECTS = 150
CONCURRENCY = 2
# What the failure may still cost: the requests in flight, each with its own retries
# (5 attempts), plus the attempt to save the inventory.
MOST_REQUESTS_AFTER = CONCURRENCY * 5 + 5
# Before the fix each object left took 5 attempts (about 700 requests, minutes):
# the test stops such a pass once it has clearly lost.
GIVE_UP_AFTER = 60


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with separate_control_plane(tmp_path_factory.mktemp("lost") / "cluster") as plane:
        yield plane


def _configmaps(count: int) -> str:
    return "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i:03}}}\ndata: {{i: '{i}'}}\n"
        for i in range(count)
    )


def _total(counts: Mapping[str, int]) -> int:
    return sum(n for verb, n in counts.items() if verb != "throttled")


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    wait_until(condition, what, timeout)


class _Pass:
    """A pass of 150 new ConfigMaps, run in a thread so the test can kill the server under it."""

    def __init__(self, plane: ControlPlane) -> None:
        unique = uuid.uuid4().hex[:8]
        self.settings = TargetSettings(
            name=f"lost-{unique}",
            source=SourceSettings(repo="memory", ref_kind=RefKind.BRANCH, ref="main"),
            # Rate-limited so that the pass is still writing when the server is killed.
            cluster=ClusterSettings(
                kubeconfig=plane.kubeconfig, concurrency=CONCURRENCY, qps=100, burst=1
            ),
            namespace=f"lost-{unique}",
        )
        self.source = FilesSource({"objects.yaml": _configmaps(OBJECTS)})
        self.adapter = KubernetesAdapter(self.settings.cluster, self.settings.inventory_namespace)
        self.watcher = KubernetesAdapter(ClusterSettings(kubeconfig=plane.kubeconfig), "unused")
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
        self.watcher.apply(namespace, dry_run=False, force=True)
        self.stop = threading.Event()
        self.results: list[PassResult] = []
        self.thread = threading.Thread(target=self._run, name="pass")

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    def _run(self) -> None:
        self.results.append(
            Reconciler(self.settings, self.source, self.adapter).run(stop=self.stop)
        )

    def existing(self) -> int:
        info = self.watcher.kind_info("v1", "ConfigMap")
        assert info is not None
        return len(self.watcher.list_owned(info, self.settings.name))

    def finish(self, since: int) -> PassResult:
        """Wait for the pass; stop it once it made GIVE_UP_AFTER requests after `since`."""
        while self.thread.is_alive():
            if _total(self.adapter.request_counts()) - since > GIVE_UP_AFTER:
                self.stop.set()
            self.thread.join(0.05)
        return self.results[0]

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.adapter.close()
        self.watcher.close()


@pytest.mark.parametrize("stage", ["validating", "writing"])
def test_lost_apiserver_ends_the_pass_with_one_error(plane: ControlPlane, stage: str) -> None:
    run = _Pass(plane)
    try:
        run.thread.start()
        if stage == "validating":
            counts = run.adapter.request_counts
            _wait_until(lambda: counts().get("dry-run-apply", 0) >= 5, "5 dry-runs made")
        else:
            _wait_until(lambda: run.existing() >= 5, "5 objects written")
        plane.kill_apiserver()
        at_kill = _total(run.adapter.request_counts())

        result = run.finish(at_kill)

        after = _total(run.adapter.request_counts()) - at_kill
        print(f"{stage}: {after} requests after the API server was killed")
        assert result.outcome is PassOutcome.FAILED
        assert isinstance(result.error, UnavailableError), result.error
        assert result.error.retryable, "the daemon must back off and retry, not wait for Git"
        assert "cannot reach the API server" in str(result.error), result.error
        assert after <= MOST_REQUESTS_AFTER, f"{after} requests after the API server died"
        actions = [e.action for e in result.changes.entries]
        assert Action.PRUNED not in actions
        if stage == "writing":
            assert actions.count(Action.SKIPPED) > 0, "the server was killed after the pass"
        else:
            assert actions == [], "nothing may be written when validation did not finish"

        # The next pass, through the same adapter once the server is back, writes the
        # rest; every object is tracked: dropping all but one from Git prunes the others.
        plane.start_apiserver()
        again = Reconciler(run.settings, run.source, run.adapter).run()
        assert again.outcome is PassOutcome.CONVERGED, again.error
        assert run.existing() == OBJECTS
        run.source.files["objects.yaml"] = _configmaps(1)
        pruned = Reconciler(run.settings, run.source, run.adapter).run()
        assert pruned.outcome is PassOutcome.CONVERGED, pruned.error
        assert [e.action for e in pruned.changes.entries].count(Action.PRUNED) == OBJECTS - 1
        assert run.existing() == 1
    finally:
        plane.start_apiserver()
        run.close()
