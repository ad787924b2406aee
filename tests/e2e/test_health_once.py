"""`gitopsd --once` with `wait: true`: exit 5 while the workload is not up, 0 once it is."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from tests.cluster.test_health_wait import DEPLOYMENT, available, write_deployment_status
from tests.e2e.conftest import Gitopsd


def test_once_with_wait_exits_5_until_the_deployment_is_available(
    gitopsd: Gitopsd, api_client: Any
) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit({"manifests/web.yaml": DEPLOYMENT})
    gitopsd.write_config(gitopsd.target(wait=True, health_timeout="2s"))

    timed_out = gitopsd.run("--once")

    assert timed_out.returncode == 5, timed_out.stderr
    assert f"target app: progressing: Deployment.apps {ns}/web: InProgress" in timed_out.stderr

    write_deployment_status(api_client, ns, {"observedGeneration": 1, "replicas": 2})
    write_deployment_status(api_client, ns, available(2))
    healthy = gitopsd.run("--once")

    assert healthy.returncode == 0, healthy.stderr
    history = gitopsd.run("history")
    assert history.returncode == 0, history.stderr
    assert "health_changed" in history.stdout
    assert "unknown -> progressing" in history.stdout
    assert "progressing -> healthy" in history.stdout


def test_once_without_wait_exits_0_though_nothing_is_available(gitopsd: Gitopsd) -> None:
    gitopsd.remote.commit({"manifests/web.yaml": DEPLOYMENT})
    gitopsd.write_config(gitopsd.target())

    result = gitopsd.run("--once")

    assert result.returncode == 0, result.stderr


def test_wait_command_exits_5_until_applied_and_available_then_0(
    gitopsd: Gitopsd, api_client: Any
) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit({"manifests/web.yaml": DEPLOYMENT})
    gitopsd.write_config(gitopsd.target())
    short = gitopsd.remote.head()[:12]

    not_applied = gitopsd.run("wait", "--timeout", "1s")

    assert not_applied.returncode == 5, not_applied.stderr
    assert f"app: progressing: Revision.gitopsd.io {short}: InProgress, not yet applied" in (
        not_applied.stdout
    )
    assert gitopsd.run("--once").returncode == 0
    unavailable = gitopsd.run("wait", "--target", "app", "--timeout", "1s")
    assert unavailable.returncode == 5, unavailable.stderr
    assert f"app: progressing: Deployment.apps {ns}/web: InProgress" in unavailable.stdout

    write_deployment_status(api_client, ns, {"observedGeneration": 1, "replicas": 2})
    write_deployment_status(api_client, ns, available(2))
    healthy = gitopsd.run("wait", "--timeout", "30s")

    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout == "app: healthy\n"
    # Nothing was applied by `wait`: the journal has only the --once pass.
    history = gitopsd.run("history", "--json")
    assert history.stdout.count('"outcome"') == 1, history.stdout


def test_wait_after_a_commit_that_changes_nothing_of_the_target_exits_0(
    gitopsd: Gitopsd, api_client: Any
) -> None:
    # An in-sync pass does not rewrite the inventory for a new revision alone, so `wait`
    # said "not yet applied" forever after a push elsewhere in a monorepo.
    ns = gitopsd.namespace
    gitopsd.remote.commit({"manifests/web.yaml": DEPLOYMENT})
    gitopsd.write_config(gitopsd.target())
    assert gitopsd.run("--once").returncode == 0
    write_deployment_status(api_client, ns, {"observedGeneration": 1, "replicas": 2})
    write_deployment_status(api_client, ns, available(2))
    gitopsd.remote.commit({"README.md": "elsewhere\n"})
    assert gitopsd.run("--once").returncode == 0

    result = gitopsd.run("wait", "--timeout", "5s")

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "app: healthy\n"
    # A change of the target's own objects that no pass applied yet is still waited for.
    gitopsd.remote.commit({"manifests/web.yaml": DEPLOYMENT.replace("replicas: 2", "replicas: 3")})
    pending = gitopsd.run("wait", "--timeout", "1s")
    assert pending.returncode == 5 and "not yet applied" in pending.stdout, pending.stdout


def test_wait_command_exits_1_when_the_cluster_cannot_be_read(gitopsd: Gitopsd) -> None:
    gitopsd.remote.commit({"manifests/web.yaml": DEPLOYMENT})
    missing = gitopsd.folder / "no-such-kubeconfig"
    gitopsd.write_config(gitopsd.target(kubeconfig=str(missing)))

    result = gitopsd.run("wait", "--timeout", "5s")

    assert result.returncode == 1
    assert "target app" in result.stderr and str(missing) in result.stderr


APP_SETTINGS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: app-settings}
data: {database: db}
"""


def test_once_runs_app_only_after_db_is_healthy(gitopsd: Gitopsd, api_client: Any) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit({"db/web.yaml": DEPLOYMENT, "app/settings.yaml": APP_SETTINGS})
    gitopsd.write_config(
        gitopsd.target("app", path="app", depends_on=["db"]),
        gitopsd.target("db", path="db", wait=True, health_timeout="2s"),
    )

    held = gitopsd.run("--once")

    assert held.returncode == 5, held.stderr
    assert (
        "target app: waiting for target db: progressing, 0/2 replicas created "
        f"(Deployment.apps {ns}/web)"
    ) in held.stderr
    settings = client.CoreV1Api(api_client).list_namespaced_config_map(ns).items
    assert "app-settings" not in {c.metadata.name for c in settings}

    write_deployment_status(api_client, ns, {"observedGeneration": 1, "replicas": 2})
    write_deployment_status(api_client, ns, available(2))
    healthy = gitopsd.run("--once")

    assert healthy.returncode == 0, healthy.stderr
    client.CoreV1Api(api_client).read_namespaced_config_map("app-settings", ns)


def test_validate_refuses_a_wave_that_is_no_integer(gitopsd: Gitopsd) -> None:
    job = DEPLOYMENT.replace("name: web", 'name: web\n  annotations: {gitopsd.io/wave: "1st"}', 1)
    gitopsd.remote.commit({"manifests/web.yaml": job})
    gitopsd.write_config(gitopsd.target())

    result = gitopsd.run("validate")

    assert result.returncode == 1, result.stdout
    assert "app: web.yaml#1: annotation gitopsd.io/wave: '1st' is not an integer" in result.stderr
