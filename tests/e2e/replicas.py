"""Several `gitopsd` processes sharing targets through Leases: configuration, start, inspection."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Gitopsd, configmap
from tests.support.git_remotes import free_port

# Short Leases so takeovers happen within a test; the fence allows writes for 5s after a
# renewal started (lease_duration - (renew_deadline - retry_period), within renew_deadline),
# which a 2-core machine loaded by several test suites still keeps.
LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 10.0, 6.0, 1.0
# How long after its last renewal started a replica may still write.
FENCE_WINDOW = LEASE_DURATION - (RENEW_DEADLINE - RETRY_PERIOD)
WEBHOOK_SECRET = "e2e-ha-webhook"


class Replicas:
    """`count` targets in one repository, and gitopsd replicas, each with its own state."""

    def __init__(self, gitopsd: Gitopsd, api_client: object, count: int) -> None:
        self.gitopsd, self.api = gitopsd, api_client
        self.ns = gitopsd.namespace
        self.targets = [f"t{n}" for n in range(count)]
        self.processes: dict[str, subprocess.Popen[str]] = {}
        self.ports: dict[str, int] = {}
        self.notify = ""  # a `notify:` section every replica started from now on gets
        gitopsd.remote.commit(
            {f"manifests/{t}/cm.yaml": configmap(f"cm-{t}", self.ns, v="1") for t in self.targets}
        )

    def folder(self, identity: str) -> Path:
        path = self.gitopsd.folder / identity
        path.mkdir(exist_ok=True)
        return path

    def write_config(
        self,
        identity: str,
        interval: str = "3s",
        lease_kubeconfig: Path | None = None,
        **settings: Any,
    ) -> Path:
        """`lease_kubeconfig` reaches the Leases another way than the targets (a proxy)."""
        folder = self.folder(identity)
        port = self.ports.setdefault(identity, free_port())
        leases = lease_kubeconfig or self.gitopsd.kubeconfig
        ha = (
            f"ha: {{kubeconfig: {leases}, namespace: {self.ns}, "
            f"identity: {identity}, lease_duration: {LEASE_DURATION}s, "
            f"renew_deadline: {RENEW_DEADLINE}s, retry_period: {RETRY_PERIOD}s}}\n"
        )
        http = f"http: {{address: 127.0.0.1, port: {port}}}\n"
        (folder / "hook-secret").write_text(WEBHOOK_SECRET + "\n")
        http += "webhook: {secret_file: hook-secret}\n"
        targets = "".join(
            self.gitopsd.target(t, path=f"manifests/{t}", **settings) for t in self.targets
        )
        path = folder / "gitopsd.yaml"
        path.write_text(
            f"state_dir: {folder / 'state'}\ninterval: {interval}\nstop_timeout: 20s\n"
            + ha
            + http
            + self.notify
            + "targets:\n"
            + targets
        )
        return path

    def start(
        self, identity: str, interval: str = "3s", lease_kubeconfig: Path | None = None
    ) -> subprocess.Popen[str]:
        config = self.write_config(identity, interval, lease_kubeconfig)
        folder = self.folder(identity)
        with open(folder / "stdout.log", "a") as out, open(folder / "stderr.log", "a") as err:
            process = subprocess.Popen(
                [self.gitopsd.executable, "--config", str(config)],
                env={**self.gitopsd.env, "PYTHONUNBUFFERED": "1"},  # logs readable mid-test
                stdout=out,
                stderr=err,
                text=True,
            )
        self.processes[identity] = process
        self.gitopsd.processes.append(process)  # killed when the test ends
        return process

    def once(self, identity: str, **settings: Any) -> subprocess.Popen[str]:
        """`gitopsd --once` in the background; read its output with communicate()."""
        config = self.write_config(identity, **settings)
        process = subprocess.Popen(
            [self.gitopsd.executable, "--config", str(config), "--once"],
            env=self.gitopsd.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.gitopsd.processes.append(process)
        return process

    def webhook(self, identity: str, target: str) -> tuple[int, str]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.ports[identity]}/hooks/sync?target={target}",
            data=b"{}",
            headers={"X-Gitopsd-Secret": WEBHOOK_SECRET},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), response.read().decode()

    # -- what the cluster and the replicas say ---------------------------------

    def holders(self) -> dict[str, str]:
        """Each target's Lease holder ("" when free), from the API server."""
        leases = client.CoordinationV1Api(self.api).list_namespaced_lease(self.ns)
        found = {
            lease.metadata.name.removeprefix("gitopsd-target-"): lease.spec.holder_identity or ""
            for lease in leases.items
            if lease.metadata.name.startswith("gitopsd-target-")
        }
        return {t: found.get(t, "") for t in self.targets}

    def held_by(self, identity: str) -> list[str]:
        return [t for t, holder in self.holders().items() if holder == identity]

    def status(self, identity: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.ports[identity]}/status"
        with urllib.request.urlopen(url, timeout=5) as response:
            status: dict[str, Any] = json.loads(response.read())
        return status

    def metrics(self, identity: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """`/metrics` of one replica: family -> label set -> value."""
        url = f"http://127.0.0.1:{self.ports[identity]}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = tuple(sorted(sample.labels.items()))
                found.setdefault(sample.name, {})[labels] = sample.value
        return found

    def lease_requests(self, identity: str) -> float:
        counts = self.metrics(identity).get("gitopsd_lease_requests_total", {})
        return sum(counts.values())

    def data(self, target: str) -> dict[str, str] | None:
        core = client.CoreV1Api(self.api)
        try:
            data: dict[str, str] | None = core.read_namespaced_config_map(
                f"cm-{target}", self.ns
            ).data
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return data

    def drift(self, target: str, value: str) -> None:
        core = client.CoreV1Api(self.api)
        core.patch_namespaced_config_map(f"cm-{target}", self.ns, {"data": {"v": value}})

    def converged(self) -> bool:
        return all(self.data(t) == {"v": "1"} for t in self.targets)

    def journal(self, identity: str, table: str) -> list[dict[str, Any]]:
        """Rows of one replica's journal (read-only; the replica may still be writing)."""
        path = self.folder(identity) / "state" / "journal.sqlite"
        if not path.exists():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(f"SELECT * FROM {table}")]

    def writes(self, identity: str) -> list[tuple[str, float, float]]:
        """(target, start, end) of each pass of `identity` that wrote something (its journal)."""
        return [
            (row["target"], row["started_at"], row["started_at"] + row["duration_seconds"])
            for row in self.journal(identity, "passes")
            if row["writes"]
        ]

    def events(self, identity: str, event: str) -> list[dict[str, Any]]:
        return [row for row in self.journal(identity, "events") if row["event"] == event]
