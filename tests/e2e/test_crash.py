"""A `gitopsd --once` killed mid-pass leaves no orphans: the keys a pass is about to
create are in its inventory before the first write (issue 10, item 4)."""

from __future__ import annotations

import signal

from kubernetes import client

from tests.e2e.conftest import Gitopsd, configmap, wait_for
from tests.support.git_remotes import run as git

NEW_OBJECTS = 300
KILL_AT = 100


def _created(api_client: object, namespace: str) -> int:
    """ConfigMaps gitopsd labelled for target `app`, the one it kept from the first commit aside."""
    listed = client.CoreV1Api(api_client).list_namespaced_config_map(
        namespace, label_selector="gitopsd.io/target=app"
    )
    return sum(1 for item in listed.items if item.metadata.name.startswith("bulk-"))


def test_objects_created_by_a_killed_pass_are_pruned_after_a_revert(
    gitopsd: Gitopsd, api_client: object
) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit({"manifests/keep.yaml": configmap("keep", ns, a="b")}, "keep")
    # One write at a time, at most 100 requests a second: the pass takes seconds, so the
    # kill lands in the middle of it.
    gitopsd.write_config(gitopsd.target(concurrency=1, qps=100, burst=1))
    assert gitopsd.run("--once").returncode == 0
    bulk = "---\n".join(configmap(f"bulk-{n:03}", ns, n=str(n)) for n in range(NEW_OBJECTS))
    gitopsd.remote.commit({"manifests/bulk.yaml": bulk}, "300 new objects")

    process = gitopsd.start("--once")
    wait_for(lambda: process.poll() is not None or _created(api_client, ns) >= KILL_AT, 120, 0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    orphans = _created(api_client, ns)
    assert KILL_AT <= orphans < NEW_OBJECTS, f"the kill landed after {orphans} objects"

    git("git", "-C", gitopsd.remote.work, "revert", "--no-edit", "HEAD")
    gitopsd.remote.push()
    again = gitopsd.run("--once")

    assert again.returncode == 0, again.stderr
    assert _created(api_client, ns) == 0
    assert client.CoreV1Api(api_client).read_namespaced_config_map("keep", ns).data == {"a": "b"}
