"""Resource limits end to end: a refused commit writes nothing and prunes nothing."""

from __future__ import annotations

from tests.e2e.conftest import Gitopsd, configmap
from tests.e2e.test_once import live_data


def test_commit_above_max_revision_size_applies_and_prunes_nothing(
    gitopsd: Gitopsd, api_client: object
) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit(
        {
            "manifests/a.yaml": configmap("a", ns, color="blue"),
            "manifests/b.yaml": configmap("b", ns, color="blue"),
        }
    )
    gitopsd.write_config(gitopsd.target(max_revision_size="4KiB"))
    assert gitopsd.run("--once").returncode == 0

    big = configmap("c", ns, color="red", blob="x" * 5000)
    commit = gitopsd.remote.commit(
        {
            "manifests/a.yaml": configmap("a", ns, color="red"),
            "manifests/b.yaml": None,
            "manifests/c.yaml": big,
        }
    )
    result = gitopsd.run("--once")

    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("gitopsd: target app")]
    assert len(lines) == 1, result.stderr
    assert f"at {commit[:12]}: " in lines[0]
    assert "above max_revision_size (4096 bytes): raise max_revision_size" in lines[0]
    assert live_data(api_client, ns, "a") == {"color": "blue"}  # not applied
    assert live_data(api_client, ns, "b") == {"color": "blue"}  # not pruned
    assert live_data(api_client, ns, "c") is None
