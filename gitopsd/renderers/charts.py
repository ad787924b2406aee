"""Charts from a chart repository for the Helm renderer: resolve, fetch, unpack safely."""

from __future__ import annotations

import atexit
import shutil
import tarfile
import tempfile
from pathlib import Path

from gitopsd.chartrepo import ChartRepository, ResolvedChart
from gitopsd.config import TargetSettings
from gitopsd.errors import RenderError

_scratch: Path | None = None
# (cache, repo, chart) -> the version last resolved: what a pass reports next to its commit.
_resolved: dict[tuple[str, str, str], str] = {}


def _fallback_cache() -> Path:
    """A private cache for this process, when the runner set none (previews, validate)."""
    global _scratch
    if _scratch is None:
        _scratch = Path(tempfile.mkdtemp(prefix="gitopsd-charts-"))
        atexit.register(shutil.rmtree, _scratch, True)
    return _scratch


def chart_repository(target: TargetSettings) -> ChartRepository:
    """The chart repository of a target with `helm.chart` + `helm.repo`."""
    settings = target.render
    directory = settings.chart_cache or _fallback_cache()
    return ChartRepository(directory, settings.helm, target.name, settings.timeout_seconds)


def chart_version(target: TargetSettings) -> str:
    """`name version digest` of the chart version `helm.version` selects now."""
    repository = chart_repository(target)
    version, entry = repository.resolve_version()
    _resolved[_key(target)] = f"{target.render.helm.chart} {version}"
    return f"{target.render.helm.chart} {version} {entry.get('digest')}"


def resolved_chart(target: TargetSettings) -> str:
    """`web 0.2.0`: the chart version this process last resolved for `target`, or ""."""
    return _resolved.get(_key(target), "") if target.render.helm.chart is not None else ""


def _key(target: TargetSettings) -> tuple[str, str, str]:
    helm = target.render.helm
    return (str(target.render.chart_cache), helm.repo or "", helm.chart or "")


def unpack_chart(chart: ResolvedChart, directory: Path, what: str) -> Path:
    """The chart's directory, unpacked from its verified archive with tarfile's `data`
    filter (no absolute paths, no `..`, no links out, no devices)."""
    directory.mkdir(mode=0o700)
    try:
        with tarfile.open(chart.archive, "r:gz") as archive:
            archive.extractall(directory, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise RenderError(
            f"{what}: the archive of {chart.name} {chart.version} cannot be unpacked: "
            f"{type(exc).__name__}"
        ) from exc
    found = directory / chart.name
    if not (found / "Chart.yaml").is_file():
        raise RenderError(f"{what}: the archive of {chart.name} {chart.version} holds no chart")
    return found
