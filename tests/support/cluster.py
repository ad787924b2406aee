"""A real control plane for tests: etcd and kube-apiserver built from Go modules.

No prebuilt binary may be downloaded here, so `build()` compiles both (and
kubectl, for the benchmarks) from the Go module in scripts/cluster/ and caches
them under ~/.cache/gitopsd/cluster/<version>/. `ControlPlane` starts them on
free loopback ports with TLS, client-certificate authentication and RBAC, and
stops them with nothing left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.tools import cache_root

REPO_ROOT = Path(__file__).resolve().parents[2]
GO_MODULE = REPO_ROOT / "scripts" / "cluster"
BINARIES = ("etcd", "kube-apiserver", "kubectl")


class ClusterHarnessError(RuntimeError):
    """The test cluster could not be built or started; the message says why."""


def kubernetes_version() -> str:
    """The k8s.io/kubernetes version the Go module pins, e.g. 'v1.37.2'."""
    match = re.search(r"k8s\.io/kubernetes (v\S+)", (GO_MODULE / "go.mod").read_text())
    if not match:
        raise ClusterHarnessError(f"{GO_MODULE / 'go.mod'} does not require k8s.io/kubernetes")
    return match.group(1)


def cache_dir() -> Path:
    """Where built binaries live, keyed by the Kubernetes version."""
    return cache_root() / "cluster" / kubernetes_version()


def build(*, log: bool = True) -> Path:
    """Build etcd, kube-apiserver and kubectl unless cached; return their directory."""
    target = cache_dir()
    if all((target / name).is_file() for name in BINARIES):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Two processes (a test run and scripts/dev-cluster) may ask at once.
    with open(target.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all((target / name).is_file() for name in BINARIES):
            return target
        _go_build(target, log=log)
    return target


def _go_build(target: Path, *, log: bool) -> None:
    if shutil.which("go") is None:
        raise ClusterHarnessError("cannot build the test cluster: `go` is not on PATH")
    staging = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
    command = [
        "go",
        "build",
        "-trimpath",
        "-o",
        str(staging) + "/",
        "./cmd/etcd",
        "k8s.io/kubernetes/cmd/kube-apiserver",
        "k8s.io/kubernetes/cmd/kubectl",
    ]
    if log:
        print(f"building test cluster {kubernetes_version()} into {target} (takes minutes)")
    result = subprocess.run(command, cwd=GO_MODULE, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise ClusterHarnessError(f"building the test cluster failed:\n{tail}")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ClusterHarnessError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _make_pki(directory: Path) -> None:
    """A CA, a serving certificate for 127.0.0.1, an admin client certificate, SA keys."""
    run = lambda *args: _openssl(*args, cwd=directory)  # noqa: E731
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=gitopsd-test-ca",
    )
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1\nextendedKeyUsage=serverAuth\n"
    )
    (directory / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject in (
        ("server", "/CN=kube-apiserver"),
        ("admin", "/O=system:masters/CN=admin"),
    ):
        ext = "server.ext" if name == "server" else "client.ext"
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            subject,
        )
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-extfile",
            ext,
        )
    run("genrsa", "-out", "sa.key", "2048")
    run("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")


AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
"""


@dataclass
class ControlPlane:
    """etcd plus kube-apiserver on loopback, in `workdir`."""

    workdir: Path
    audit: bool = False
    # Appended to kube-apiserver's own flags (a later flag wins), e.g. in-flight limits.
    apiserver_args: tuple[str, ...] = ()
    binaries: Path = field(default_factory=build)
    etcd_port: int = 0
    port: int = 0
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def start(self, *, timeout: float = 180.0, detach: bool = False) -> None:
        """Start etcd and kube-apiserver and wait until /readyz answers ok."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        _make_pki(self.workdir)
        self.etcd_port, peer_port, self.port = free_port(), free_port(), free_port()
        try:
            self._spawn("etcd", self._etcd_args(peer_port), detach)
            self._spawn("kube-apiserver", self._apiserver_args(), detach)
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self._write_kubeconfig()

    def _etcd_args(self, peer_port: int) -> list[str]:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        return [
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_args(self) -> list[str]:
        pki = self.workdir
        args = [
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # No kubelet or kube-proxy: the kubernetes Service needs no endpoints.
            "--endpoint-reconciler-type=none",
            f"--secure-port={self.port}",
            f"--cert-dir={pki / 'certs'}",
            f"--tls-cert-file={pki / 'server.crt'}",
            f"--tls-private-key-file={pki / 'server.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            # No controller-manager runs, so no default ServiceAccount ever appears.
            "--disable-admission-plugins=ServiceAccount",
            "--v=0",
        ]
        if self.audit:
            (pki / "audit-policy.yaml").write_text(AUDIT_POLICY)
            args += [
                f"--audit-policy-file={pki / 'audit-policy.yaml'}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-mode=blocking",
            ]
        return args + list(self.apiserver_args)

    def kill_apiserver(self) -> None:
        """SIGKILL kube-apiserver (etcd keeps running) and wait until it is gone."""
        process = self._process("kube-apiserver")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self.processes.remove(process)

    def start_apiserver(self, *, timeout: float = 180.0) -> None:
        """Start kube-apiserver again, on the same port and etcd, unless it runs."""
        if any(self._name(process) == "kube-apiserver" for process in self.processes):
            return
        self._spawn("kube-apiserver", self._apiserver_args(), detach=False)
        self._wait_ready(timeout)

    def _process(self, name: str) -> subprocess.Popen[bytes]:
        for process in self.processes:
            if self._name(process) == name:
                return process
        raise ClusterHarnessError(f"{name} is not running")

    @staticmethod
    def _name(process: subprocess.Popen[bytes]) -> str:
        return Path(str(process.args[0])).name  # type: ignore[index]

    def user_kubeconfig(self, user: str, group: str = "gitopsd-test") -> Path:
        """A kubeconfig for an ordinary user (not system:masters, which the API server never
        throttles), with a client certificate signed by the test CA; RBAC grants it nothing."""
        pki = self.workdir
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{user}.key",
            "-out",
            f"{user}.csr",
            "-subj",
            f"/O={group}/CN={user}",
            cwd=pki,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{user}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{user}.crt",
            "-days",
            "2",
            "-extfile",
            "client.ext",
            cwd=pki,
        )
        path = pki / f"kubeconfig-{user}"
        path.write_text(self._kubeconfig_text(pki / f"{user}.crt", pki / f"{user}.key"))
        return path

    def _spawn(self, name: str, args: list[str], detach: bool) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(
            [str(self.binaries / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=None if detach else _die_with_parent,
        )
        log.close()
        self.processes.append(process)
        (self.workdir / f"{name}.pid").write_text(str(process.pid))

    def _wait_ready(self, timeout: float) -> None:
        context = self.ssl_context()
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise ClusterHarnessError(self._crash_message(process))
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", context=context, timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError) as error:
                last = str(error)
            time.sleep(0.3)
        raise ClusterHarnessError(
            f"kube-apiserver not ready after {timeout:.0f}s: {last}; "
            f"see {self.workdir / 'kube-apiserver.log'}"
        )

    def _crash_message(self, process: subprocess.Popen[bytes]) -> str:
        name = self._name(process)
        log = (self.workdir / f"{name}.log").read_text(errors="replace").strip().splitlines()
        tail = "\n".join(log[-10:])
        return f"{name} exited with {process.returncode} during start-up:\n{tail}"

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS context that trusts the test CA and presents the admin certificate."""
        context = ssl.create_default_context(cafile=str(self.workdir / "ca.crt"))
        context.load_cert_chain(self.workdir / "admin.crt", self.workdir / "admin.key")
        return context

    def _write_kubeconfig(self) -> None:
        self.kubeconfig.write_text(
            self._kubeconfig_text(self.workdir / "admin.crt", self.workdir / "admin.key")
        )

    def _kubeconfig_text(self, certificate: Path, key: Path) -> str:
        return f"""apiVersion: v1
kind: Config
clusters:
  - name: test
    cluster:
      server: {self.url}
      certificate-authority: {self.workdir / "ca.crt"}
users:
  - name: user
    user:
      client-certificate: {certificate}
      client-key: {key}
contexts:
  - name: test
    context: {{cluster: test, user: user}}
current-context: test
"""

    def stop(self, timeout: float = 15.0) -> None:
        """Stop kube-apiserver, then etcd; kill what does not exit in time."""
        for process in reversed(self.processes):
            _terminate(process.pid, process.wait, timeout)
        self.processes.clear()


@contextlib.contextmanager
def separate_control_plane(
    workdir: Path, *, apiserver_args: tuple[str, ...] = ()
) -> Iterator[ControlPlane]:
    """A control plane of a test's own, for tests that kill or throttle the API server
    (the session's cluster is shared with every other test)."""
    plane = ControlPlane(workdir, apiserver_args=apiserver_args, binaries=build())
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


def _terminate(pid: int, wait: object, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    try:
        wait(timeout=timeout)  # type: ignore[operator]
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        wait()  # type: ignore[operator]


def _die_with_parent() -> None:
    """Ask the kernel to kill the child when the test process dies, however it dies."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
