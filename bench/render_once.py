"""A no-change `gitopsd --once` on a kustomize target against the same on plain YAML.

    python -m bench.render_once [--objects 1000] [--repeat 5]

Issue 12 asks that a rendered target's no-change pass stay within 10% of the plain-YAML
one: the render cache must make the renderer free. Both targets declare N ConfigMaps,
are applied once, then `gitopsd --once` (a subprocess, interpreter start included) runs
R times on each, alternating. Uses the dev cluster (scripts/dev-cluster up; stopped at
the end only if this run started it).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.render import _write_repos
from tests.support.tools import KUSTOMIZE, build_tool

ROOT = Path(__file__).resolve().parents[1]
DEV_CLUSTER = [sys.executable, str(ROOT / "scripts" / "dev-cluster")]


def _git(repo: Path) -> None:
    for command in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-q", "-m", "x"],
    ):
        subprocess.run(["git", "-C", str(repo), *command], check=True)


def _config(work: Path, name: str, repo: Path, path: str, kubeconfig: str, tool: str) -> Path:
    config = work / f"{name}.yaml"
    config.write_text(
        f"state_dir: {work}/state-{name}\ntargets:\n  - name: bench-{name}\n"
        f"    repo: {repo}\n    branch: main\n    path: {path}\n"
        f"    kubeconfig: {kubeconfig}\n    namespace: bench-{name}\n"
        f"    inventory_namespace: bench-{name}\n    tools: {{kustomize: {tool}}}\n"
    )
    return config


def _once(config: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["gitopsd", "--config", str(config), "--once", "--log-level", "error"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    running = (Path.home() / ".cache/gitopsd/dev-cluster/kube-apiserver.pid").exists()
    up = subprocess.run([*DEV_CLUSTER, "up"], check=True, capture_output=True, text=True)
    kubeconfig = up.stdout.strip().splitlines()[-1]
    work = Path(tempfile.mkdtemp(prefix="bench-once-"))
    try:
        return _run(work, args.objects, args.repeat, kubeconfig)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not running:
            subprocess.run([*DEV_CLUSTER, "down"], check=False, capture_output=True)


def _run(work: Path, count: int, repeat: int, kubeconfig: str) -> int:
    repos = work / "repos"
    _write_repos(repos, count)
    tool = str(build_tool(KUSTOMIZE))
    namespace = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench-{}\n"
    (repos / "plain/plain/namespace.yaml").write_text(namespace.format("plain"))
    overlay = repos / "kustomize/overlays/prod"
    (overlay / "namespace.yaml").write_text(namespace.format("kustomize"))
    kustomization = (overlay / "kustomization.yaml").read_text()
    kustomization = kustomization.replace(
        "  - ../../base\n", "  - ../../base\n  - namespace.yaml\n"
    )
    (overlay / "kustomization.yaml").write_text(kustomization)
    configs = {}
    for name, path in (("plain", "plain"), ("kustomize", "overlays/prod")):
        _git(repos / name)
        configs[name] = _config(work, name, repos / name, path, kubeconfig, tool)
        print(f"{name}: first --once (applies {count} objects) {_once(configs[name]):.2f}s")
    runs: dict[str, list[float]] = {"plain": [], "kustomize": []}
    for index in range(repeat):
        order = ("plain", "kustomize") if index % 2 == 0 else ("kustomize", "plain")
        for name in order:
            runs[name].append(_once(configs[name]))
    plain, rendered = statistics.median(runs["plain"]), statistics.median(runs["kustomize"])
    print(f"no-change --once, median of {repeat}: plain {plain:.2f}s, kustomize {rendered:.2f}s")
    print(f"kustomize / plain: {rendered / plain:.2f}  (runs: {runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
