"""`gitopsd --once`, `--dry-run`, `diff`, `validate` and `history`: exit codes and cluster state."""

from __future__ import annotations

import base64
import json
import os
import subprocess

from kubernetes import client

from gitopsd.lock import LOCK_NAME, StateLock
from tests.e2e.conftest import Gitopsd, configmap, secret, wait_for
from tests.support.standins import shown_as


def live_data(api_client: object, namespace: str, name: str) -> dict[str, str] | None:
    core = client.CoreV1Api(api_client)
    try:
        return core.read_namespaced_config_map(name, namespace).data
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_once_applies_the_repository_then_reports_in_sync(
    gitopsd: Gitopsd, api_client: object
) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", ns, color="blue")})
    gitopsd.write_config()
    first = gitopsd.run("--once")
    assert first.returncode == 0, first.stderr
    assert live_data(api_client, ns, "app") == {"color": "blue"}
    second = gitopsd.run("--once")
    assert second.returncode == 0, second.stderr
    history = gitopsd.run("history", "--json")
    outcomes = [p["outcome"] for p in json.loads(history.stdout)["passes"]]
    assert outcomes == ["converged", "in_sync"]


def test_dry_run_exits_3_and_leaves_the_cluster_unchanged(
    gitopsd: Gitopsd, api_client: object
) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", ns, color="blue")})
    gitopsd.write_config()
    result = gitopsd.run("--once", "--dry-run")
    assert result.returncode == 3, result.stderr
    assert "would create ConfigMap" in result.stdout
    assert live_data(api_client, ns, "app") is None
    assert gitopsd.run("--once").returncode == 0
    assert gitopsd.run("--once", "--dry-run").returncode == 0


def test_failing_target_exits_1(gitopsd: Gitopsd) -> None:
    gitopsd.remote.commit({"manifests/app.yaml": "apiVersion: v1\nkind: ConfigMap\n"})
    gitopsd.write_config()
    result = gitopsd.run("--once")
    assert result.returncode == 1
    assert "gitopsd: target app: app.yaml document 1: metadata is missing" in result.stderr


def test_config_typo_exits_2_with_suggestion(gitopsd: Gitopsd) -> None:
    gitopsd.write_config(gitopsd.target(prnue=False))
    result = gitopsd.run("--once")
    assert result.returncode == 2
    assert "targets[0].prnue: unknown key; did you mean 'prune'?" in result.stderr


def test_diff_shows_the_changed_line_and_never_a_secret_value(
    gitopsd: Gitopsd, api_client: object
) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit(
        {
            "manifests/app.yaml": configmap("app", ns, color="blue", size="large"),
            "manifests/creds.yaml": secret("creds", ns, token="old-token-value"),
        }
    )
    gitopsd.write_config()
    assert gitopsd.run("--once").returncode == 0
    assert gitopsd.run("diff").returncode == 0
    gitopsd.remote.commit(
        {
            "manifests/app.yaml": configmap("app", ns, color="green", size="large"),
            "manifests/creds.yaml": secret("creds", ns, token="new-token-value"),
        }
    )
    result = gitopsd.run("diff")
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("-") and "blue" in line for line in lines), result.stdout
    assert any(line.startswith("+") and "green" in line for line in lines), result.stdout
    assert not any("large" in line and line[:1] in "+-" for line in lines)
    # The Secret's change shows as a changed short hash of each value, never the value.
    old = shown_as("old-token-value", gitopsd.state_dir)
    new = shown_as("new-token-value", gitopsd.state_dir)
    assert any(line.startswith("-") and old in line for line in lines), result.stdout
    assert any(line.startswith("+") and new in line for line in lines), result.stdout
    everything = result.stdout + result.stderr
    for value in ("old-token-value", "new-token-value"):
        assert value not in everything
        assert base64.b64encode(value.encode()).decode() not in everything
    assert live_data(api_client, ns, "app") == {"color": "blue", "size": "large"}


def test_validate_needs_no_cluster(gitopsd: Gitopsd) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", ns, a="1")})
    gitopsd.write_config(gitopsd.target(kubeconfig="/nonexistent/kubeconfig"))
    result = gitopsd.run("validate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "app: ok, 1 objects (plain)"


def test_once_beside_a_lock_holder_exits_4_or_waits_for_it(
    gitopsd: Gitopsd, api_client: object
) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", ns, a="1")})
    gitopsd.write_config()
    # This process takes the very flock a running gitopsd holds for its whole pass.
    with StateLock(gitopsd.state_dir) as held:
        held.acquire()
        refused = gitopsd.run("--once")
        assert refused.returncode == 4, refused.stderr
        assert f"another gitopsd (pid {os.getpid()}) is using the state directory" in (
            refused.stderr
        )
        waiting = gitopsd.start("--once", "--wait-lock")
        assert live_data(api_client, ns, "app") is None  # nothing applied while locked
    assert waiting.wait(120) == 0, gitopsd.log(0)
    # It took the lock once it was free: its pid is the one written in the lock file.
    assert (gitopsd.state_dir / LOCK_NAME).read_text() == f"{waiting.pid}\n"
    assert live_data(api_client, ns, "app") == {"a": "1"}


def test_two_once_runs_at_the_same_time_exactly_one_runs(
    gitopsd: Gitopsd, api_client: object
) -> None:
    ns = gitopsd.namespace
    files = {f"manifests/cm-{i:02}.yaml": configmap(f"cm-{i:02}", ns, i=str(i)) for i in range(40)}
    gitopsd.remote.commit(files)
    # A slow request rate keeps the first run inside its pass for several seconds.
    gitopsd.write_config(gitopsd.target(qps=10, burst=1, concurrency=1))
    first = gitopsd.start("--once")
    lock_file = gitopsd.state_dir / LOCK_NAME
    wait_for(lambda: lock_file.read_text() == f"{first.pid}\n", timeout=60, every=0.05)

    second = gitopsd.run("--once")

    assert second.returncode == 4, second.stderr
    assert f"another gitopsd (pid {first.pid})" in second.stderr
    assert first.wait(120) == 0, gitopsd.log(0)
    passes = json.loads(gitopsd.run("history", "--json").stdout)["passes"]
    assert [p["outcome"] for p in passes] == ["converged"]  # one pass: the first run's


def test_gitopsd_help_on_every_command(gitopsd: Gitopsd) -> None:
    for args in ([], ["diff"], ["history"], ["validate"]):
        result = subprocess.run(
            [gitopsd.executable, *args, "--help"], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0 and "--config" in result.stdout


def test_force_push_is_followed_and_shown_in_history(gitopsd: Gitopsd, api_client: object) -> None:
    ns = gitopsd.namespace
    base = gitopsd.remote.commit({"manifests/app.yaml": configmap("app", ns, v="1")})
    applied = gitopsd.remote.commit({"manifests/app.yaml": configmap("app", ns, v="2")})
    gitopsd.write_config()
    assert gitopsd.run("--once").returncode == 0
    rewritten = gitopsd.remote.force_push({"manifests/app.yaml": configmap("app", ns, v="3")}, base)

    result = gitopsd.run("--once")

    assert result.returncode == 0, result.stderr
    assert live_data(api_client, ns, "app") == {"v": "3"}
    history = gitopsd.run("history")
    line = next(line for line in history.stdout.splitlines() if "history_rewritten" in line)
    assert line.endswith(f"{applied[:12]} -> {rewritten[:12]}")
    events = json.loads(gitopsd.run("history", "--json").stdout)["events"]
    assert [e["detail"] for e in events] == [{"previous": applied, "revision": rewritten}]
