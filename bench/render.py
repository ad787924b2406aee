"""Render time for N objects as plain YAML, a kustomize overlay and a Helm chart (issue 12).

    python -m bench.render [--objects 1000] [--repeat 5]

For each renderer: the tool run by hand (`kustomize build`, `helm template`), gitopsd's
first render (checkout copy, tool, parse, validate) and its cached re-render (the render
cache's key and read, which is all a no-change `--once` pays). Tools come from
~/.cache/gitopsd (scripts/dev-cluster build). No cluster: discovery answers "unknown",
as in `gitopsd validate`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gitopsd.config import ClusterSettings, RefKind, SourceSettings, TargetSettings
from gitopsd.model import SourceFile
from gitopsd.rendercache import RenderCache, cache_key
from gitopsd.renderconfig import RenderKind, RenderSettings
from gitopsd.renderers import RenderJob, render_target
from tests.support.tools import HELM, KUSTOMIZE, build_tool

CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings-{i}
data:
  level: "{i}"
  application.yaml: |
    server:
      port: 8080
      name: settings-{i}
"""
TEMPLATE = """\
{{- range $i := until (int .Values.count) }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings-{{ $i }}
data:
  level: "{{ $i }}"
  application.yaml: |
    server:
      port: 8080
      name: settings-{{ $i }}
{{- end }}
"""


def _write_repos(root: Path, count: int) -> None:
    """One repository per renderer (a checkout writes the whole repository out)."""
    plain = root / "plain" / "plain"
    plain.mkdir(parents=True)
    for i in range(count):
        (plain / f"cm-{i:05d}.yaml").write_text(CONFIG_MAP.format(i=i))
    base = root / "kustomize" / "base"
    shutil.copytree(plain, base)
    names = "\n".join(f"  - cm-{i:05d}.yaml" for i in range(count))
    (base / "kustomization.yaml").write_text(f"resources:\n{names}\n")
    overlay = root / "kustomize" / "overlays" / "prod"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(
        "resources:\n  - ../../base\nnamePrefix: prod-\ncommonLabels:\n  env: prod\n"
    )
    chart = root / "helm" / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: bench\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text(f"count: {count}\n")
    (chart / "templates" / "configmaps.yaml").write_text(TEMPLATE)


def _target(path: str, kind: RenderKind, tools: dict[str, str]) -> TargetSettings:
    return TargetSettings(
        name=f"bench-{kind.value}",
        source=SourceSettings(repo="/bench", ref_kind=RefKind.BRANCH, ref="main", path=path),
        cluster=ClusterSettings(kubeconfig=Path("/dev/null")),
        render=RenderSettings(
            kind=kind, kustomize_tool=tools["kustomize"], helm_tool=tools["helm"]
        ),
    )


def _files(root: Path, path: str) -> list[SourceFile]:
    return [
        SourceFile(str(p.relative_to(root / path)), p.read_bytes())
        for p in sorted((root / path).rglob("*.yaml"))
    ]


def _timed(action: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tools = {"kustomize": str(build_tool(KUSTOMIZE)), "helm": str(build_tool(HELM))}
    work = Path(tempfile.mkdtemp(prefix="bench-render-"))
    try:
        return _run(work, args.objects, args.repeat, tools)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work: Path, count: int, repeat: int, tools: dict[str, str]) -> int:
    repos = work / "repos"
    _write_repos(repos, count)
    by_hand = {
        "plain": None,
        "kustomize": [tools["kustomize"], "build", str(repos / "kustomize/overlays/prod")],
        "helm": [tools["helm"], "template", "bench", str(repos / "helm/chart")],
    }
    cases = (
        ("plain", "plain", RenderKind.PLAIN),
        ("kustomize", "overlays/prod", RenderKind.KUSTOMIZE),
        ("helm", "chart", RenderKind.HELM),
    )
    print(f"{count} ConfigMaps, median of {repeat} runs (seconds)")
    print(f"{'renderer':<10} {'by hand':>8} {'first':>8} {'cached':>8} {'objects':>8}")
    for name, path, kind in cases:
        target = _target(path, kind, tools)
        repo = repos / name
        files = _files(repo, path)

        def checkout(directory: Path, repo: Path = repo) -> frozenset[str]:
            shutil.copytree(repo, directory, dirs_exist_ok=True, symlinks=True)
            return frozenset()

        job = RenderJob(target, files, lambda _v, _k: None, checkout=checkout)
        command = by_hand[name]
        hand = (
            _timed(lambda c=command: subprocess.run(c, capture_output=True, check=True), repeat)
            if command
            else float("nan")
        )
        objects = render_target(job)
        first = _timed(lambda j=job: render_target(j), repeat)
        cache = RenderCache(work / "state" / "render", target.name)
        cache.put(cache_key(target, "c" * 40), objects)

        def cached(t: TargetSettings = target, c: RenderCache = cache) -> object:
            found = c.get(cache_key(t, "c" * 40))
            assert found is not None
            return found

        again = _timed(cached, repeat)
        print(f"{name:<10} {hand:>8.3f} {first:>8.3f} {again:>8.3f} {len(objects):>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
