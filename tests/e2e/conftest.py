"""The `gitopsd` command as a subprocess, against the real cluster and a real Git remote.

Each test gets a bare repository served over smart HTTP with Basic auth (the
password reaches gitopsd only through an environment variable named in the
configuration), a fresh namespace, and a folder holding the configuration and
state directory. Every process a test starts is killed when the test ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.git_fixtures import HTTP_USER
from tests.support.git_remotes import BareRemote, GitHttpServer, free_port
from tests.support.waiting import wait_until

PASSWORD_ENV = "GITOPSD_E2E_GIT_PASSWORD"


def configmap(name: str, namespace: str, **data: str) -> str:
    lines = "".join(f"  {key}: {value!r}\n" for key, value in data.items())
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"
        f"  namespace: {namespace}\ndata:\n{lines}"
    )


def secret(name: str, namespace: str, **data: str) -> str:
    lines = "".join(f"  {key}: {value!r}\n" for key, value in data.items())
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n"
        f"  namespace: {namespace}\ntype: Opaque\nstringData:\n{lines}"
    )


class Gitopsd:
    """One test's remote, namespace, configuration and gitopsd processes."""

    def __init__(
        self,
        folder: Path,
        remote: BareRemote,
        server: GitHttpServer,
        password: str,
        kubeconfig: Path,
        namespace: str,
    ) -> None:
        self.folder, self.remote, self.server = folder, remote, server
        self.kubeconfig, self.namespace = kubeconfig, namespace
        self.env = {**os.environ, PASSWORD_ENV: password}
        self.env.pop("NOTIFY_SOCKET", None)
        self.env.pop("WATCHDOG_USEC", None)
        self.config_path = folder / "gitopsd.yaml"
        self.state_dir = folder / "state"
        self.port = free_port()
        self.processes: list[subprocess.Popen[str]] = []
        executable = shutil.which("gitopsd")
        assert executable, "the gitopsd command is not installed (pip install -e .)"
        self.executable = executable

    def target(self, name: str = "app", **settings: Any) -> str:
        """One target's YAML entry (flow style), reading this test's remote."""
        entry = {
            "name": name,
            "repo": self.server.url(self.remote),
            "branch": "main",
            "username": HTTP_USER,
            "password_env": PASSWORD_ENV,
            "path": "manifests",
            "kubeconfig": str(self.kubeconfig),
            "namespace": self.namespace,
            "inventory_namespace": self.namespace,
            **settings,
        }
        fields = ", ".join(f"{key}: {_yaml(value)}" for key, value in entry.items())
        return f"  - {{{fields}}}\n"

    def write_config(self, *targets: str, extra: str = "", interval: str = "1h") -> Path:
        head = f"state_dir: {self.state_dir}\ninterval: {interval}\nstop_timeout: 20s\n"
        head += extra + "\n" if extra else ""
        self.config_path.write_text(head + "targets:\n" + "".join(targets or [self.target()]))
        return self.config_path

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run gitopsd to completion with this test's configuration."""
        return subprocess.run(
            [self.executable, "--config", str(self.config_path), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start gitopsd in the background; its output goes to files in the test folder."""
        index = len(self.processes)
        out = open(self.folder / f"stdout-{index}.log", "w")  # noqa: SIM115 - closed by the child's end
        err = open(self.folder / f"stderr-{index}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            [self.executable, "--config", str(self.config_path), *args],
            env={**self.env, **(env or {})},
            stdout=out,
            stderr=err,
            text=True,
        )
        out.close()
        err.close()
        self.processes.append(process)
        return process

    def log(self, index: int = 0) -> str:
        return (self.folder / f"stderr-{index}.log").read_text()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(10)


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value!r}" if isinstance(value, str) else str(value)


def wait_for(check: Callable[[], Any], timeout: float = 30.0, every: float = 0.2) -> Any:
    """The first truthy result of `check`, or fail after `timeout` seconds."""

    def quietly() -> Any:
        try:
            return check()
        except Exception:  # not ready yet: connection refused, 404, ...
            return None

    try:
        return wait_until(quietly, str(check), timeout, every)
    except AssertionError as timed_out:
        pytest.fail(f"condition not met within {timeout}s: {check} ({timed_out})")


@pytest.fixture
def gitopsd(
    tmp_path: Path,
    bare_remote: BareRemote,
    git_http_server: GitHttpServer,
    http_password: str,
    kubeconfig: Path,
    namespace: str,
) -> Iterator[Gitopsd]:
    runner = Gitopsd(tmp_path, bare_remote, git_http_server, http_password, kubeconfig, namespace)
    try:
        yield runner
    finally:
        runner.stop_all()
