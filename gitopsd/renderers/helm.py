"""`helm template` of a chart, with the values files of the repository and the cluster's
real capabilities.

A chart that branches on `.Capabilities.APIVersions.Has` or `.Capabilities.KubeVersion`
must render as `helm install` would against the same cluster, so the API versions and
the server version come from discovery (done by the adapter, passed in as data). No
network at render time: dependencies must be vendored under `charts/`.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gitopsd.errors import RenderError
from gitopsd.renderconfig import HelmSettings
from gitopsd.renderers.run import replacing

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STAND_IN = "<a value from a values file>"
_SHORTEST = 4  # shorter values ("1", "true", "web") would garble the message, not hide much
_SEMVER = re.compile(r"v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?")


@dataclass(frozen=True)
class Capabilities:
    """What `helm install` would learn from the cluster: its version and API versions."""

    kube_version: str
    api_versions: tuple[str, ...]


@dataclass(frozen=True)
class HelmInput:
    """One chart render: the chart directory, the repository checkout values come from."""

    chart: Path
    checkout: Path
    target_path: str  # the target's path in the repository; values files are relative to it
    release: str
    namespace: str
    settings: HelmSettings
    extra_values: tuple[Path, ...] = ()  # applied after values_files, before inline values
    escaping: frozenset[str] = frozenset()  # symlinks the checkout left out (they lead out)


def check_dependencies(chart: Path, describe: str) -> None:
    """Refuse a chart whose declared dependencies are not vendored under charts/."""
    declared = _dependencies(chart, describe)
    vendored = chart / "charts"
    missing = [name for name in declared if not _vendored(vendored, name)]
    if missing:
        lock = " (Chart.lock lists them)" if (chart / "Chart.lock").is_file() else ""
        raise RenderError(
            f"{describe}: dependencies {', '.join(missing)} are not vendored under charts/"
            f"{lock}: run `helm dependency build` and commit charts/ (gitopsd fetches nothing "
            "at render time)"
        )


def _dependencies(chart: Path, describe: str) -> list[str]:
    names = []
    for file in ("Chart.yaml", "requirements.yaml"):
        try:
            data = yaml.safe_load((chart / file).read_bytes()) if (chart / file).is_file() else {}
        except (OSError, yaml.YAMLError) as exc:
            raise RenderError(f"{describe}: {file} cannot be read: {type(exc).__name__}") from exc
        for item in (data or {}).get("dependencies") or []:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                names.append(item["name"])
    return names


def _vendored(charts: Path, name: str) -> bool:
    if (charts / name / "Chart.yaml").is_file():
        return True
    return charts.is_dir() and any(p.name.startswith(f"{name}-") for p in charts.glob("*.tgz"))


def values_paths(job: HelmInput, describe: str) -> list[Path]:
    """The values files in order, each checked to lie inside the checkout."""
    real_root = os.path.realpath(job.checkout)
    paths = []
    for value in job.settings.values_files:
        relative = posixpath.normpath(posixpath.join(job.target_path, value))
        real = os.path.realpath(job.checkout / relative)
        if relative.startswith("../") or not real.startswith(real_root + os.sep):
            raise RenderError(f"{describe}: helm.values_files {value!r} is outside the repository")
        if (link := _escaping_link(relative, job.escaping)) is not None:
            raise RenderError(
                f"{describe}: helm.values_files {value!r} goes through symlink {link!r}, which "
                "leads outside the repository: refused (commit the file itself)"
            )
        if not os.path.isfile(real):
            raise RenderError(
                f"{describe}: helm.values_files {value!r} does not exist at {relative!r}"
            )
        paths.append(Path(real))
    return paths


def check_chart_links(chart_path: str, escaping: frozenset[str], describe: str) -> None:
    """Refuse a chart in the repository holding a symlink that leads out of it: the
    checkout leaves such links out, and helm would render without them, silently."""
    prefix = "" if chart_path in ("", ".") else chart_path.rstrip("/") + "/"
    inside = sorted(p for p in escaping if p.startswith(prefix) or p == prefix.rstrip("/"))
    if inside:
        raise RenderError(
            f"{describe}: {inside[0]!r} is a symlink leading outside the repository: refused "
            "(commit the file itself)"
        )


def _escaping_link(relative: str, escaping: frozenset[str]) -> str | None:
    """The symlink left out of the checkout that `relative` (or a folder of it) is."""
    parts = relative.split("/")
    for end in range(1, len(parts) + 1):
        if (path := "/".join(parts[:end])) in escaping:
            return path
    return None


def values_redactor(paths: Sequence[Path]) -> Callable[[str], str]:
    """Replaces in helm's error line each value of these files (a chart's `required` or
    `fail` may quote one, and values files hold passwords) by a stand-in."""
    found: set[str] = set()
    for path in paths:
        try:
            data = yaml.load(path.read_bytes(), Loader=_Loader)  # a safe loader: plain data
        except (OSError, yaml.YAMLError):
            continue  # helm has reported it unreadable; nothing of it to hide
        _scalars(data, found, set())
    return replacing(found, _STAND_IN)


def _scalars(value: Any, found: set[str], seen: set[int]) -> None:
    if isinstance(value, dict | list):
        if id(value) in seen:  # an alias: walked once, however often it is used
            return
        seen.add(id(value))
        for item in value.values() if isinstance(value, dict) else value:
            _scalars(item, found, seen)
    elif value is not None and not isinstance(value, bool):
        # helm's line is whitespace-joined: a multi-line value matches line by line.
        text = " ".join(str(value).split())
        found.update(p for p in (text, *str(value).splitlines()) if len(p.strip()) >= _SHORTEST)


def helm_argv(
    tool: str,
    job: HelmInput,
    capabilities: Capabilities | None,
    inline_values: Path,
    describe: str,
) -> tuple[str, ...]:
    """The `helm template` command line."""
    argv = [tool, "template", job.release, str(job.chart), "--namespace", job.namespace]
    argv.append("--include-crds" if job.settings.include_crds else "--skip-crds")
    if capabilities is not None:
        if (kube := kube_version(capabilities.kube_version)) is not None:
            argv += ["--kube-version", kube]
        if capabilities.api_versions:
            argv += ["--api-versions", ",".join(capabilities.api_versions)]
    for path in [*values_paths(job, describe), *job.extra_values]:
        argv += ["--values", str(path)]
    argv += ["--values", str(inline_values)]
    return tuple(argv)


def kube_version(git_version: str) -> str | None:
    """The server's version as `--kube-version` accepts it: build metadata dropped (helm
    refuses `v1.30.1+k3s1`-style metadata it cannot parse), None when it is no version."""
    version = git_version.split("+", 1)[0]
    return version if _SEMVER.fullmatch(version) else None


def write_inline_values(settings: HelmSettings, directory: Path) -> Path:
    """The inline `values` map as a file helm reads last (JSON is YAML)."""
    path = directory / "inline-values.json"
    values: Any = json.loads(settings.values_json)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(values, out)
    return path


def helm_env(home: Path) -> dict[str, str]:
    """Helm's config, cache and data directories kept private to this render."""
    return {
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
