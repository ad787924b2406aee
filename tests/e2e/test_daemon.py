"""The daemon as a subprocess: new commits, webhook, signals, systemd notify, probes, metrics."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from gitopsd.adapters.inventory_store import inventories_of
from gitopsd.model import ResourceKey
from tests.e2e.conftest import Gitopsd, configmap, wait_for
from tests.e2e.test_once import live_data

SECRET = "e2e-webhook-secret"


def http_extra(gitopsd: Gitopsd, webhook: bool = False) -> str:
    http = f"http: {{address: 127.0.0.1, port: {gitopsd.port}}}"
    if not webhook:
        return http
    (gitopsd.folder / "hook-secret").write_text(SECRET + "\n")
    return http + "\nwebhook: {secret_file: hook-secret}"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_daemon_applies_a_pushed_commit_within_an_interval(
    gitopsd: Gitopsd, api_client: object
) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", ns, v="1")})
    gitopsd.write_config(interval="2s")
    daemon = gitopsd.start()
    wait_for(lambda: live_data(api_client, ns, "app") == {"v": "1"})
    pushed = time.monotonic()
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", ns, v="2")})
    wait_for(lambda: live_data(api_client, ns, "app") == {"v": "2"}, timeout=15)
    assert time.monotonic() - pushed < 2 * 2 + 5  # an interval, its jitter, and the pass
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0


def test_webhook_applies_a_push_at_once(gitopsd: Gitopsd, api_client: object) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", ns, v="1")})
    gitopsd.write_config(extra=http_extra(gitopsd, webhook=True), interval="1h")
    gitopsd.start()
    wait_for(lambda: live_data(api_client, ns, "app") == {"v": "1"})
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", ns, v="2")})
    assert post(gitopsd.url("/hooks/sync?target=app"), "wrong") == 401
    assert post(gitopsd.url("/hooks/sync?target=app"), SECRET) == 202
    wait_for(lambda: live_data(api_client, ns, "app") == {"v": "2"}, timeout=10)


def post(url: str, secret: str) -> int:
    headers = {"X-Gitopsd-Secret": secret}
    request = urllib.request.Request(url, data=b"", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_sigterm_during_a_pass_stops_at_a_write_boundary_and_exits_0(
    gitopsd: Gitopsd, api_client: object
) -> None:
    ns = gitopsd.namespace
    files = {
        f"manifests/cm-{i:03}.yaml": configmap(f"cm-{i:03}", ns, index=str(i), pad="x" * 64)
        for i in range(120)
    }
    gitopsd.remote.commit(files)
    # A low request rate stretches the pass over several seconds.
    gitopsd.write_config(gitopsd.target(qps=20, burst=1, concurrency=1))
    daemon = gitopsd.start()
    core = client.CoreV1Api(api_client)

    def created() -> list[client.V1ConfigMap]:
        return core.list_namespaced_config_map(ns, label_selector="gitopsd.io/target").items

    wait_for(lambda: len(created()) > 0, timeout=60, every=0.05)
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0, gitopsd.log()
    present = created()
    # Stopped after the writes in flight, not at the end of the pass...
    assert 0 < len(present) < len(files)
    # ...and no object is half written.
    for item in present:
        index = item.metadata.name.removeprefix("cm-")
        assert item.data == {"index": str(int(index)), "pad": "x" * 64}
    # What was written is in the inventory, so it stays tracked for prune.
    listed = core.list_namespaced_config_map(ns, label_selector="gitopsd.io/inventory-of=app")
    stored = [core.api_client.sanitize_for_serialization(item) for item in listed.items]
    tracked = inventories_of(stored, "app")[0].inventory.tracked
    assert all(ResourceKey("", "ConfigMap", ns, item.metadata.name) in tracked for item in present)
    assert "daemon_stopped" in gitopsd.log() and "interrupted by shutdown" in gitopsd.log()

    finished = gitopsd.run("--once")
    assert finished.returncode == 0, finished.stderr
    assert len(created()) == len(files)


def test_sighup_with_a_broken_config_keeps_the_old_one(
    gitopsd: Gitopsd, api_client: object
) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", ns, v="1")})
    config = gitopsd.write_config(extra=http_extra(gitopsd), interval="2s")
    daemon = gitopsd.start()
    wait_for(lambda: live_data(api_client, ns, "app") == {"v": "1"})
    config.write_text(config.read_text().replace("interval: 2s", "intervl: 2s"))
    daemon.send_signal(signal.SIGHUP)
    wait_for(lambda: "config_reload_refused" in gitopsd.log(), timeout=10)
    assert "did you mean 'interval'?" in gitopsd.log()
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", ns, v="2")})
    wait_for(lambda: live_data(api_client, ns, "app") == {"v": "2"}, timeout=15)
    assert daemon.poll() is None
    assert get(gitopsd.url("/healthz")) == (200, "ok\n")


def test_notify_socket_gets_ready_then_watchdog(gitopsd: Gitopsd, tmp_path: Path) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", ns, v="1")})
    gitopsd.write_config()
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.settimeout(30)
        gitopsd.start(env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})
        messages = [listener.recv(4096).decode() for _ in range(3)]
    assert messages[0].startswith("READY=1")
    assert "WATCHDOG=1" in messages[1:]


def test_metrics_count_passes_and_readyz_follows_failures(
    gitopsd: Gitopsd, api_client: object
) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit({"manifests/app.yaml": configmap("app", ns, v="1")})
    gitopsd.write_config(extra=http_extra(gitopsd), interval="1s")
    gitopsd.start()

    def passes() -> dict[tuple[str, str], float]:
        _, body = get(gitopsd.url("/metrics"))
        samples = [s for f in text_string_to_metric_families(body) for s in f.samples]
        return {
            (s.labels["target"], s.labels["outcome"]): s.value
            for s in samples
            if s.name == "gitopsd_passes_total"
        }

    wait_for(lambda: sum(passes().values()) >= 3, timeout=30)
    counted = passes()
    assert counted[("app", "converged")] == 1
    journal = json.loads(gitopsd.run("history", "--json").stdout)["passes"]
    assert len(journal) >= sum(counted.values())  # every counted pass was journaled
    assert get(gitopsd.url("/readyz"))[0] == 200
    gitopsd.remote.commit({"manifests/app.yaml": "apiVersion: v1\nkind: ConfigMap\n"})
    _, body = wait_for(lambda: (r := get(gitopsd.url("/readyz")))[0] == 503 and r)
    assert "target app:" in body and "metadata is missing" in body
    status = json.loads(get(gitopsd.url("/status"))[1])
    assert status["targets"]["app"]["last_pass"]["outcome"] == "failed"
    assert live_data(api_client, ns, "app") == {"v": "1"}  # the broken revision wrote nothing
