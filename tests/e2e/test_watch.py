"""The daemon corrects drift from watch events, long before its interval (issue 13).

The daemon runs as a subprocess with `interval: 1h`, so every correction seen here came
from a watch event; each test waits for the cluster to show it, never a fixed time.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from gitopsd.clock import SYSTEM_CLOCK
from gitopsd.journal import Journal
from gitopsd.watchlogic import FIGHT_CORRECTIONS
from tests.daemon.receivers import Receiver, serving
from tests.e2e.conftest import Gitopsd, configmap, wait_for
from tests.e2e.test_daemon import SECRET, http_extra, post

DEADLINE = 10.0  # the bound for each correction


def _app(ns: str) -> dict[str, str]:
    service = (
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: {ns}}}\n"
        "spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}\n"
    )
    deployment = (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: {ns}}}\n"
        "spec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n"
        "  template:\n    metadata: {labels: {app: web}}\n"
        "    spec: {containers: [{name: web, image: 'nginx:1.27'}]}\n"
    )
    return {
        "manifests/cm.yaml": configmap("settings", ns, color="blue"),
        "manifests/svc.yaml": service,
        "manifests/deploy.yaml": deployment,
    }


def _metrics(gitopsd: Gitopsd) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(gitopsd.url("/metrics"), timeout=5) as response:
        text = response.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _sum(gitopsd: Gitopsd, name: str, **labels: str) -> float:
    return sum(
        value
        for (sample, pairs), value in _metrics(gitopsd).items()
        if sample == name and all((k, v) in pairs for k, v in labels.items())
    )


def _status(gitopsd: Gitopsd) -> dict[str, Any]:
    with urllib.request.urlopen(gitopsd.url("/status"), timeout=5) as response:
        return dict(json.loads(response.read()))


def _start(gitopsd: Gitopsd, api_client: Any, notify: str = "") -> None:
    gitopsd.remote.commit(_app(gitopsd.namespace))
    gitopsd.write_config(extra=http_extra(gitopsd, webhook=True) + notify, interval="1h")
    gitopsd.start()
    core = client.CoreV1Api(api_client)
    wait_for(lambda: core.read_namespaced_service("web", gitopsd.namespace))
    wait_for(lambda: _status(gitopsd)["targets"]["app"]["watch"]["live_state"] == "cache")
    wait_for(lambda: _sum(gitopsd, "gitopsd_passes_total") == 1)  # the first pass recorded


def _drifts(gitopsd: Gitopsd, name: str, kind: str) -> list[dict[str, Any]]:
    journal = Journal.open(gitopsd.state_dir)
    try:
        rows = journal.drifts("app")
    finally:
        journal.close()
    return [r for r in rows if r["name"] == name and r["kind"] == kind]


def test_drift_is_corrected_from_watch_events_without_waiting_for_the_interval(
    gitopsd: Gitopsd, api_client: Any
) -> None:
    _start(gitopsd, api_client)
    ns, core, apps = gitopsd.namespace, client.CoreV1Api(api_client), client.AppsV1Api(api_client)

    uid = core.read_namespaced_service("web", ns).metadata.uid
    core.delete_namespaced_service("web", ns)
    wait_for(lambda: core.read_namespaced_service("web", ns).metadata.uid != uid, DEADLINE)

    patch = {"data": {"color": "red"}}
    core.patch_namespaced_config_map("settings", ns, patch, field_manager="intruder")
    wait_for(lambda: core.read_namespaced_config_map("settings", ns).data["color"] == "blue", 10)

    scale = {"spec": {"replicas": 5}}
    apps.patch_namespaced_deployment("web", ns, scale, field_manager="scaler")
    wait_for(lambda: apps.read_namespaced_deployment("web", ns).spec.replicas == 2, DEADLINE)

    # Without its managed-by label the object leaves the watch's selector: a DELETED event.
    unlabel = {"metadata": {"labels": {"app.kubernetes.io/managed-by": None}}}
    core.patch_namespaced_config_map("settings", ns, unlabel, field_manager="relabeller")

    def relabelled() -> bool:
        labels = core.read_namespaced_config_map("settings", ns).metadata.labels or {}
        return labels.get("app.kubernetes.io/managed-by") == "gitopsd"

    wait_for(relabelled, DEADLINE)

    assert any("intruder" in str(r["managers"]) for r in _drifts(gitopsd, "settings", "ConfigMap"))
    assert any("scaler" in str(r["managers"]) for r in _drifts(gitopsd, "web", "Deployment"))
    assert _drifts(gitopsd, "web", "Service")[-1]["action"] in ("created", "recreated")
    assert _sum(gitopsd, "gitopsd_passes_total") < 10  # one pass per drift, give or take
    assert _sum(gitopsd, "gitopsd_drift_correction_seconds_count") >= 4
    assert _sum(gitopsd, "gitopsd_event_triggered_passes_total") >= 4
    assert (
        _sum(gitopsd, "gitopsd_watches_open") == 3
    )  # ConfigMap (inventory too), Service, Deployment
    assert _sum(gitopsd, "gitopsd_watch_cache_objects") >= 4  # its 3 objects, the inventory
    assert _sum(gitopsd, "gitopsd_watch_events_total", type="DELETED") >= 2  # delete, unlabel
    assert _sum(gitopsd, "gitopsd_watch_relists_total") == 0


def test_own_writes_trigger_no_pass(gitopsd: Gitopsd, api_client: Any) -> None:
    _start(gitopsd, api_client)
    ns, core = gitopsd.namespace, client.CoreV1Api(api_client)
    passes = _sum(gitopsd, "gitopsd_passes_total")
    files = _app(ns)
    files["manifests/cm.yaml"] = configmap("settings", ns, color="green")
    files["manifests/more.yaml"] = configmap("more", ns, a="1")
    gitopsd.remote.commit(files)
    assert post(gitopsd.url("/hooks/sync?target=app"), SECRET) == 202
    wait_for(lambda: core.read_namespaced_config_map("more", ns), 30)
    # Its writes (two ConfigMaps and the inventory) are echoed by the watch as our own.
    wait_for(lambda: _sum(gitopsd, "gitopsd_watch_object_events_total", origin="own") >= 2, 10)
    assert _sum(gitopsd, "gitopsd_watch_object_events_total", origin="drift") == 0
    assert _sum(gitopsd, "gitopsd_event_triggered_passes_total") == 0
    assert _sum(gitopsd, "gitopsd_passes_total") == passes + 1


def test_a_fight_backs_off_and_is_journaled_and_notified_once(
    gitopsd: Gitopsd, api_client: Any
) -> None:
    with serving(Receiver(SYSTEM_CLOCK)) as hook:
        sink = f"{{name: ops, type: webhook, url: '{hook.url}/ops', events: [drift_fight]}}"
        _start(gitopsd, api_client, notify=f"\nnotify:\n  - {sink}")
        _fight(gitopsd, api_client)
        wait_for(lambda: hook.requests)
    [told] = [r.json() for r in hook.requests]
    assert told["event"] == "drift_fight" and told["target"] == "app"
    [settings] = told["objects"]
    assert (settings["kind"], settings["name"]) == ("ConfigMap", "settings")
    assert "looper" in settings["managers"]
    assert told["reason"].startswith(f"corrected {FIGHT_CORRECTIONS} times within")


def _fight(gitopsd: Gitopsd, api_client: Any) -> None:
    """Another writer keeps a ConfigMap's value its own: one fight, backed off, journaled."""
    ns, core = gitopsd.namespace, client.CoreV1Api(api_client)
    stop, writes = threading.Event(), [0]

    def other_writer() -> None:  # a script in a loop, setting its own value back
        while not stop.wait(0.2):
            live = core.read_namespaced_config_map("settings", ns)
            if live.data.get("color") != "purple":
                patch = {"data": {"color": "purple"}}
                core.patch_namespaced_config_map("settings", ns, patch, field_manager="looper")
                writes[0] += 1

    def fights() -> list[dict[str, Any]]:
        journal = Journal.open(gitopsd.state_dir)
        try:
            return [e for e in journal.events("app") if e["event"] == "drift_fight"]
        finally:
            journal.close()

    thread = threading.Thread(target=other_writer, daemon=True)
    thread.start()
    try:
        wait_for(fights, 60)
        status = _status(gitopsd)["targets"]["app"]["watch"]
    finally:
        stop.set()
        thread.join(10)
    [fight] = fights()
    assert fight["detail"]["name"] == "settings" and fight["detail"]["kind"] == "ConfigMap"
    assert "looper" in fight["detail"]["managers"]
    assert any("color" in field for field in fight["detail"]["fields"])
    assert [f["object"] for f in status["fighting"]] == [f"ConfigMap {ns}/settings"]
    corrections = [
        r for r in _drifts(gitopsd, "settings", "ConfigMap") if r["action"] == "corrected"
    ]
    # Backing off 0, 1, 2, 4, 8 s: five corrections reach the fight, not one per 0.2 s write.
    assert 5 <= len(corrections) <= 7
    history = gitopsd.run("history", "--target", "app")
    assert "drift_fight" in history.stdout
