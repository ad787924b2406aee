"""python -m bench.drift_latency: how fast the daemon corrects drift, watching and not (issue 13).

Starts `gitopsd --config FILE` (the daemon) with one target of N objects (bench's
workload: ConfigMaps, Secrets, Services, Deployments) against the audited test cluster,
then makes D drifts one at a time, cycling through: delete a Service, change a
ConfigMap, scale a Deployment. Each is timed from the moment the change returned to the
moment the benchmark's own watch (on that one object) shows it corrected. The same is
done with `watch: false` and interval 30s. Then, with watching on, P passes are asked
for through the webhook with nothing changed, and the API requests they made are
counted from the audit log. The daemon's peak RSS (VmHWM) is read at the end of each
mode. Writes bench/results/<date>-drift-n<N>.json and prints a table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from bench.audit import AuditLog
from bench.output import save_facts
from bench.soak import PASSWORD_ENV, Daemon, World, log
from tests.support.cluster import free_port

INTERVAL = 30.0
SECRET = "bench-drift-secret"
MANAGER = "bench-drifter"


def _config(world: World, root: Path, port: int, watching: bool) -> Path:
    path = world.config(root / f"state-{'watch' if watching else 'poll'}", INTERVAL, port)
    (root / "hook-secret").write_text(SECRET + "\n")
    text = path.read_text().replace("targets:\n", "webhook: {secret_file: hook-secret}\ntargets:\n")
    if not watching:
        text += "    watch: false\n"
    path.write_text(text)
    return path


def _status(daemon: Daemon) -> dict[str, Any]:
    status = json.loads(daemon.get("/status"))
    return dict(status["targets"]["t0"])


def _passes(daemon: Daemon) -> int:
    counted, _ = daemon.counters()
    return sum(counted.values())


def _wait(condition: Callable[[], object], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not reached within {timeout:.0f}s: {what}")
        time.sleep(0.1)


def _peak_rss_mib(daemon: Daemon) -> float:
    status = Path(f"/proc/{daemon.pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return round(int(match.group(1)) / 1024, 1) if match else 0.0


class Drifter:
    """Makes one drift and times it until the object is seen corrected by a watch."""

    def __init__(self, api: client.ApiClient, world: World) -> None:
        self.core, self.apps = client.CoreV1Api(api), client.AppsV1Api(api)
        self.workload = world.workloads[0]

    def objects(self, kind: str) -> list[tuple[str, str]]:
        load = self.workload
        return [
            (load.namespace(i), load.name(i)) for i in range(load.objects) if load.kind(i) == kind
        ]

    def drift(self, kind: str, namespace: str, name: str) -> float:
        """Seconds from the change to its correction, as this benchmark's watch sees it."""
        if kind == "Service":
            uid = self.core.read_namespaced_service(name, namespace).metadata.uid
            self.core.delete_namespaced_service(name, namespace)
            changed = time.monotonic()
            return self._until(
                self.core.list_namespaced_service,
                namespace,
                name,
                lambda o: o["metadata"]["uid"] != uid,
                changed,
            )
        if kind == "ConfigMap":
            patch = {"data": {"LOG_LEVEL": "debug"}}
            self.core.patch_namespaced_config_map(name, namespace, patch, field_manager=MANAGER)
            changed = time.monotonic()
            return self._until(
                self.core.list_namespaced_config_map,
                namespace,
                name,
                lambda o: o["data"]["LOG_LEVEL"] == "info",
                changed,
            )
        patch = {"spec": {"replicas": 5}}
        self.apps.patch_namespaced_deployment(name, namespace, patch, field_manager=MANAGER)
        changed = time.monotonic()
        return self._until(
            self.apps.list_namespaced_deployment,
            namespace,
            name,
            lambda o: o["spec"]["replicas"] == 2,
            changed,
        )

    def _until(
        self,
        list_fn: Callable[..., Any],
        namespace: str,
        name: str,
        corrected: Callable[[dict[str, Any]], bool],
        changed: float,
    ) -> float:
        stream = watch.Watch()
        selector = f"metadata.name={name}"
        for event in stream.stream(
            list_fn, namespace, field_selector=selector, timeout_seconds=120
        ):
            raw = event["raw_object"]
            if event["type"] in ("ADDED", "MODIFIED") and corrected(raw):
                seen = time.monotonic()
                stream.stop()
                return seen - changed
        raise RuntimeError(f"{namespace}/{name} not corrected within 120s")


def _latencies(daemon: Daemon, drifter: Drifter, drifts: int) -> list[float]:
    kinds = ("Service", "ConfigMap", "Deployment")
    pools = {kind: drifter.objects(kind) for kind in kinds}
    times = []
    for i in range(drifts):
        kind = kinds[i % len(kinds)]
        namespace, name = pools[kind][i // len(kinds)]
        seconds = drifter.drift(kind, namespace, name)
        times.append(seconds)
        log(f"drift {i + 1}/{drifts}: {kind} {namespace}/{name} corrected in {seconds:.3f}s")
        _wait(lambda: not _status(daemon)["running"], "the correcting pass to end", 60)
    return times


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50": round(statistics.median(ordered), 3),
        "p95": round(p95, 3),
        "max": round(ordered[-1], 3),
    }


def _no_change_requests(daemon: Daemon, audit: AuditLog, passes: int) -> dict[str, Any]:
    """API requests of `passes` passes asked for by the webhook with nothing to do."""
    start, before = audit.offset(), _passes(daemon)
    for n in range(1, passes + 1):
        request = urllib.request.Request(
            daemon.url + "/hooks/sync?target=t0",
            data=b"",
            headers={"X-Gitopsd-Secret": SECRET},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10):
            pass
        _wait(lambda n=n: _passes(daemon) >= before + n, f"pass {n}", 60)
    counts = audit.counts(start, settle=1.0)
    counts.pop("watch", None)  # a watch the daemon renewed meanwhile is not a pass's request
    return {"passes": passes, "requests": counts, "per_pass": sum(counts.values()) / passes}


def _mode(world: World, root: Path, watching: bool, drifts: int, passes: int) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, PASSWORD_ENV: world.password}
    env.pop("KUBECONFIG", None)
    name = "watch" if watching else "poll"
    daemon = Daemon(_config(world, root, port, watching), port, root / f"gitopsd-{name}.log", env)
    api = config.new_client_from_config(config_file=str(world.plane.kubeconfig))
    try:
        daemon.wait_http(120)
        began = time.monotonic()
        _wait(lambda: _status(daemon).get("in_sync") is True, "in sync", 1800)
        synced = time.monotonic() - began
        if watching:
            _wait(lambda: _status(daemon)["watch"]["live_state"] == "cache", "caches", 600)
        log(f"{name}: in sync after {synced:.1f}s")
        facts: dict[str, Any] = {"first_sync_seconds": round(synced, 1)}
        if drifts:
            times = _latencies(daemon, Drifter(api, world), drifts)
            facts["latency_seconds"] = _summary(times)
            facts["latencies"] = [round(t, 3) for t in times]
        if watching and passes:
            facts["no_change_passes"] = _no_change_requests(
                daemon, AuditLog(world.plane.audit_log), passes
            )
        facts["peak_rss_mib"] = _peak_rss_mib(daemon)
        return facts
    finally:
        api.close()
        daemon.terminate()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drift_latency", description=__doc__)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--drifts", type=int, default=20)
    parser.add_argument("--passes", type=int, default=10, help="no-change passes counted")
    parser.add_argument(
        "--modes", default="watch,poll", help="watch (watching on), poll (watch: false, 30s)"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gitopsd-drift-"))
    world = World(root, 1, args.objects, audit=True)
    log(f"work directory {root}; {args.objects} objects")
    world.start()
    facts: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "objects": args.objects,
        "interval_seconds": INTERVAL,
        "cpus": len(os.sched_getaffinity(0)),
    }
    try:
        for mode in args.modes.split(","):
            facts[mode] = _mode(world, root, mode == "watch", args.drifts, args.passes)
            # The next mode starts from the same objects, already in sync.
    finally:
        world.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)
    facts["load_average_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    out = save_facts(f"drift-n{args.objects}", facts)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
