"""kustomize and helm for tests and benchmarks, built from the Go module proxy.

No prebuilt binary may be downloaded, so `build_tools()` runs `go install
module@version` (pinned below) into ~/.cache/gitopsd/<tool>/<version>/ and
re-uses that directory afterwards, as tests/support/cluster.py does for
kube-apiserver.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


class ToolBuildError(RuntimeError):
    """A renderer tool could not be built; the message says why."""


@dataclass(frozen=True)
class Tool:
    """One Go-built command: its name, module package, version and link flags."""

    name: str
    package: str
    version: str
    ldflags: str = ""


# kustomize v5.8.2 is the newest whose kustomize/api (v0.21.2) builds with go1.26.
KUSTOMIZE = Tool("kustomize", "sigs.k8s.io/kustomize/kustomize/v5", "v5.8.2")
HELM = Tool(
    "helm",
    "helm.sh/helm/v3/cmd/helm",
    "v3.22.0",
    # helm's Makefile sets its version this way; without it `helm version` says "v3.22+unreleased".
    ldflags="-X helm.sh/helm/v3/internal/version.version=v3.22.0 "
    "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
)
TOOLS = (KUSTOMIZE, HELM)


def cache_root() -> Path:
    """Where everything built for the tests and benchmarks is kept between runs."""
    return Path(os.environ.get("GITOPSD_CLUSTER_CACHE", Path.home() / ".cache" / "gitopsd"))


def tool_dir(tool: Tool) -> Path:
    """Where one tool's binary lives, keyed by its version."""
    return cache_root() / tool.name / tool.version


def tool_path(tool: Tool) -> Path:
    """The cached binary of `tool` (it may not exist yet)."""
    return tool_dir(tool) / tool.name


def build_tool(tool: Tool, *, log: bool = True) -> Path:
    """Build `tool` unless cached; return the binary's path."""
    binary = tool_path(tool)
    if binary.is_file():
        return binary
    binary.parent.parent.mkdir(parents=True, exist_ok=True)
    with open(binary.parent.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.is_file():
            _go_install(tool, binary, log=log)
    return binary


def build_tools(*, log: bool = True) -> dict[str, Path]:
    """Build (or find cached) every renderer tool; name -> binary path."""
    return {tool.name: build_tool(tool, log=log) for tool in TOOLS}


def _go_install(tool: Tool, binary: Path, *, log: bool) -> None:
    if shutil.which("go") is None:
        raise ToolBuildError(f"cannot build {tool.name}: `go` is not on PATH")
    staging = Path(tempfile.mkdtemp(prefix="build-", dir=binary.parent.parent))
    command = ["nice", "-n", "10", "go", "install", "-trimpath"]
    if tool.ldflags:
        command.append(f"-ldflags={tool.ldflags}")
    command.append(f"{tool.package}@{tool.version}")
    if log:
        print(f"building {tool.name} {tool.version} into {binary.parent} (takes minutes)")
    started = time.monotonic()
    env = {**os.environ, "GOBIN": str(staging), "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise ToolBuildError(f"building {tool.name} {tool.version} failed:\n{tail}")
    shutil.rmtree(binary.parent, ignore_errors=True)
    staging.rename(binary.parent)
    if log:
        print(f"built {tool.name} {tool.version} in {time.monotonic() - started:.0f}s")
