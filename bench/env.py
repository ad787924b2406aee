"""The benchmark's world: one audited control plane, one Git remote over smart HTTP,
gitopsd's configuration and kubectl's working tree, and resets between runs.

gitopsd reads its copy of the workload from the remote (namespaces `g-team-*`);
kubectl reads the same objects from a local directory (namespaces `k-team-*`),
as a cron job would after `git pull`. A reset deletes a tool's objects and
namespaces through the API, so a cold sync always starts from an empty cluster.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.audit import AuditLog
from bench.install import gitopsd_command
from bench.runner import Run, run_command
from bench.workload import Workload
from tests.support.cluster import ControlPlane, build, free_port
from tests.support.git_remotes import GitHttpServer, RemoteFactory

PASSWORD_ENV = "BENCH_GIT_PASSWORD"
GIT_USER = "bench"
INVENTORY_NAMESPACE = "gitopsd-bench"
TARGET = "bench"
APPLYSET = "kubectl-bench"
APPLYSET_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: applysets.bench.gitopsd.io
  labels: {applyset.kubernetes.io/is-parent-type: "true"}
spec:
  group: bench.gitopsd.io
  scope: Cluster
  names: {plural: applysets, singular: applyset, kind: ApplySet}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""
_RESOURCES = (
    ("apps/v1", "deployments"),
    ("v1", "services"),
    ("v1", "secrets"),
    ("v1", "configmaps"),
)


class BenchEnv:
    def __init__(
        self, root: Path, objects: int, rtt_ms: float = 0.0, gitopsd_bin: str | None = None
    ) -> None:
        self.root = root
        self.rtt_ms = rtt_ms
        self._proxies: list[subprocess.Popen[str]] = []
        self._api_port = 0  # what the measured tools dial: the API server, or its proxy
        self._git_port = 0
        self.binaries = build()
        self.plane = ControlPlane(root / "cluster", audit=True, binaries=self.binaries)
        self.audit = AuditLog(self.plane.audit_log)
        self.factory = RemoteFactory(root / "git")
        self.remote = self.factory.create("workload")
        self.password = secrets.token_hex(12)
        self.server = GitHttpServer(self.factory.repos, GIT_USER, self.password)
        self.gitopsd_workload = Workload(objects, "g-")
        self.kubectl_workload = Workload(objects, "k-")
        self.kubectl_dir = root / "kubectl-tree"
        self.env = {**os.environ, PASSWORD_ENV: self.password}
        self.env.pop("KUBECONFIG", None)
        self.gitopsd_bin = gitopsd_bin or gitopsd_command(dev_install=False)
        self._context: ssl.SSLContext | None = None
        # The delaying proxies' CPU over the whole run: they share the machine's cores
        # with both tools and the server, which `tc netem` in the kernel would not.
        self.proxy_cpu_seconds = 0.0

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.plane.start()
        self.server.start()
        self._context = self.plane.ssl_context()
        self._api_port, self._git_port = self.plane.port, self.server.port
        if self.rtt_ms > 0:
            self._api_port = self._delay(self.plane.port)
            self._git_port = self._delay(self.server.port)
        self.kubeconfig.write_text(
            self.plane.kubeconfig.read_text().replace(
                f"127.0.0.1:{self.plane.port}", f"127.0.0.1:{self._api_port}"
            )
        )
        self.commit(self.gitopsd_workload.tree(), "workload")
        self.write_kubectl(self.kubectl_workload.tree())
        self.kubectl("apply", "--server-side", "-f", "-", stdin_text=APPLYSET_CRD)

    def stop(self) -> None:
        self.proxy_cpu_seconds = _cpu_seconds(self._proxies)
        for proxy in self._proxies:
            proxy.kill()
            proxy.wait()
        self.server.stop()
        self.plane.stop()

    def _delay(self, upstream: int) -> int:
        """Start a delaying proxy in front of `upstream` (bench/delayproxy.py); its port."""
        port = free_port()
        proxy = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.delayproxy",
                str(port),
                str(upstream),
                str(self.rtt_ms / 2),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        self._proxies.append(proxy)
        assert proxy.stdout is not None and proxy.stdout.readline().strip() == "ready"
        return port

    @property
    def kubeconfig(self) -> Path:
        """The kubeconfig both measured tools use: through the proxy when an RTT is set."""
        return self.root / "measured-kubeconfig"

    def server_cpu_seconds(self) -> float:
        """CPU time so far of kube-apiserver and etcd, from /proc/<pid>/stat."""
        return _cpu_seconds(self.plane.processes)

    # -- the two copies of the workload -------------------------------------------------

    def commit(self, files: dict[str, Any], message: str = "change") -> str:
        return self.remote.commit({f"deploy/{p}": text for p, text in files.items()}, message)

    def write_kubectl(self, files: dict[str, Any]) -> None:
        for rel, text in files.items():
            path = self.kubectl_dir / rel
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)

    # -- gitopsd ------------------------------------------------------------------------

    def gitopsd_config(self, state_dir: Path, extra: str = "") -> Path:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir.parent / f"{state_dir.name}.yaml"
        path.write_text(
            f"state_dir: {state_dir}\ninterval: 1h\nlog_level: warning\ntargets:\n"
            f"  - name: {TARGET}\n    repo: {self.git_url()}\n"
            f"    branch: main\n    path: deploy\n    username: {GIT_USER}\n"
            f"    password_env: {PASSWORD_ENV}\n    kubeconfig: {self.kubeconfig}\n"
            f"    inventory_namespace: {INVENTORY_NAMESPACE}\n{extra}"
        )
        return path

    def git_url(self) -> str:
        return self.server.url(self.remote).replace(
            f"127.0.0.1:{self.server.port}", f"127.0.0.1:{self._git_port}"
        )

    def gitopsd_argv(self, state_dir: Path, extra: str = "") -> list[str]:
        config = self.gitopsd_config(state_dir, extra)
        return [self.gitopsd_bin, "--config", str(config), "--once", "--log-level", "warning"]

    def gitopsd(self, state_dir: Path, extra: str = "") -> Run:
        return run_command(
            self.gitopsd_argv(state_dir, extra),
            self.audit,
            env=self.env,
            server_cpu=self.server_cpu_seconds,
        )

    # -- kubectl ------------------------------------------------------------------------

    def kubectl_argv(self, *args: str) -> list[str]:
        # Its own discovery cache, warm after the first call, as on a cron job's host.
        return [
            str(self.binaries / "kubectl"),
            "--kubeconfig",
            str(self.kubeconfig),
            "--cache-dir",
            str(self.root / "kube-cache"),
            *args,
        ]

    def kubectl_run(self, *args: str, ok: tuple[int, ...] = (0,), applyset: bool = False) -> Run:
        env = {**self.env, "KUBECTL_APPLYSET": "true"} if applyset else self.env
        return run_command(
            self.kubectl_argv(*args), self.audit, env=env, ok=ok, server_cpu=self.server_cpu_seconds
        )

    def kubectl(self, *args: str, stdin_text: str | None = None) -> str:
        result = subprocess.run(
            self.kubectl_argv(*args), input=stdin_text, text=True, capture_output=True, env=self.env
        )
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:3])}: {result.stderr.strip()}")
        return result.stdout

    def applyset_parent(self) -> None:
        """The cluster-scoped ApplySet parent kubectl needs for prune across namespaces."""
        digest = hashlib.sha256(f"{APPLYSET}..ApplySet.bench.gitopsd.io".encode()).digest()
        ident = "applyset-" + base64.urlsafe_b64encode(digest).decode().rstrip("=") + "-v1"
        self.kubectl(
            "apply",
            "--server-side",
            "-f",
            "-",
            stdin_text=(
                f"apiVersion: bench.gitopsd.io/v1\nkind: ApplySet\nmetadata:\n  name: {APPLYSET}\n"
                f"  labels: {{applyset.kubernetes.io/id: {ident}}}\n"
                f"  annotations: {{applyset.kubernetes.io/tooling: kubectl/v0, "
                f"applyset.kubernetes.io/contains-group-kinds: ''}}\n"
            ),
        )

    # -- raw API for resets and checks ---------------------------------------------------

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.plane.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=self._context, timeout=120) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise RuntimeError(f"{method} {path}: {error.code} {error.read()[:300]!r}") from error

    def reset(self, workload: Workload) -> None:
        """Delete a copy's objects and namespaces; for gitopsd also its inventory."""
        for namespace in workload.namespaces:
            for version, plural in _RESOURCES:
                prefix = "/api/v1" if version == "v1" else f"/apis/{version}"
                collection = f"{prefix}/namespaces/{namespace}/{plural}"
                try:
                    self.api("DELETE", collection)
                    continue
                except RuntimeError as error:
                    if " 405 " not in str(error):
                        raise
                listing = self.api("GET", collection) or {"items": []}
                for item in listing["items"]:
                    self.api("DELETE", f"{collection}/{item['metadata']['name']}")
            if self.api("DELETE", f"/api/v1/namespaces/{namespace}") is not None:
                # No namespace controller runs: finalize it by hand (it is empty now).
                live = self.api("GET", f"/api/v1/namespaces/{namespace}")
                if live is not None:
                    live["spec"]["finalizers"] = []
                    self.api("PUT", f"/api/v1/namespaces/{namespace}/finalize", live)
        if workload.prefix == self.gitopsd_workload.prefix:
            self.api(
                "DELETE",
                f"/api/v1/namespaces/{INVENTORY_NAMESPACE}/configmaps/gitopsd-inventory-{TARGET}",
            )

    def count_objects(self, workload: Workload) -> int:
        total = 0
        for namespace in workload.namespaces:
            for version, plural in _RESOURCES:
                prefix = "/api/v1" if version == "v1" else f"/apis/{version}"
                listing = self.api("GET", f"{prefix}/namespaces/{namespace}/{plural}")
                total += len((listing or {"items": []})["items"])
        return total


def _cpu_seconds(processes: list[subprocess.Popen[Any]]) -> float:
    """CPU time so far of running `processes`, from /proc/<pid>/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for process in processes:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks
