"""python -m bench --curve: scenarios 1-3 at N = 100, 1,000, 5,000 and 10,000.

One fresh cluster per N (so no size carries over), gitopsd and kubectl side by side as
in the main benchmark. Writes bench/results/<date>-curve[-rttX].json, a markdown table,
and, when matplotlib is installed (`pip install -e '.[bench]'`), a PNG of wall time, own
CPU, API requests and peak RSS against N for both tools.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.env import BenchEnv
from bench.scenarios import Scenarios, summary

SIZES = (100, 1000, 5000, 10000)
CURVE_SCENARIOS = (1, 2, 3)
RSS_TARGET_MIB = 500


def run_curve(
    sizes: tuple[int, ...],
    repeat: int,
    rtt_ms: float,
    log: Callable[[str], None],
    gitopsd_bin: str | None = None,
) -> list[dict[str, Any]]:
    """For each N, the summaries of scenarios 1-3."""
    points = []
    for n in sizes:
        root = Path(tempfile.mkdtemp(prefix=f"gitopsd-curve-{n}-"))
        env = BenchEnv(root, n, rtt_ms, gitopsd_bin)
        log(f"N = {n}: starting cluster and git server in {root}")
        env.start()
        try:
            runner = Scenarios(env, repeat, log)
            steps = {1: runner.cold, 2: runner.unchanged, 3: runner.drifted}
            results = [summary(steps[number]()) for number in CURVE_SCENARIOS]
        finally:
            env.stop()
            subprocess.run(["rm", "-rf", str(root)], check=False)
        points.append({"objects": n, "scenarios": results})
    return points


def rows(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per (N, scenario, tool): the figures the table and the plot show."""
    out = []
    for point in points:
        for s in point["scenarios"]:
            for m in (s["gitopsd"], s["peers"][0]):
                requests = m.get("requests_median", {})
                out.append(
                    {
                        "objects": point["objects"],
                        "scenario": s["scenario"],
                        "tool": "gitopsd" if m is s["gitopsd"] else m["tool"],
                        "seconds": m["median_seconds"],
                        "cpu_seconds": m.get("median_cpu_seconds", 0.0),
                        "server_cpu_seconds": m.get("median_server_cpu_seconds", 0.0),
                        "requests": sum(requests.values()),
                        "peak_rss_mib": max(m.get("peak_rss_mib") or [0.0]),
                        "failed_checks": m["failed_checks"],
                    }
                )
    return out


def table(flat: list[dict[str, Any]]) -> str:
    lines = [
        "| N | # | tool | wall s | own CPU s | CPU ms/object | server CPU s | requests "
        "| peak RSS MiB |",
        "|" + "---|" * 9,
    ]
    for r in flat:
        lines.append(
            f"| {r['objects']} | {r['scenario']} | {r['tool']} | {r['seconds']:.2f} "
            f"| {r['cpu_seconds']:.2f} | {1000 * r['cpu_seconds'] / r['objects']:.2f} "
            f"| {r['server_cpu_seconds']:.2f} | {r['requests']:g} | {r['peak_rss_mib']:.0f} |"
        )
    return "\n".join(lines)


def linear(flat: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """Per scenario, tool and figure: does it grow at most linearly with N (20% slack)?"""
    found = []
    keys = sorted({(r["scenario"], r["tool"]) for r in flat})
    for scenario, tool in keys:
        series = sorted(
            (r for r in flat if (r["scenario"], r["tool"]) == (scenario, tool)),
            key=lambda r: r["objects"],
        )
        if len(series) < 2:
            continue
        first, last = series[0], series[-1]
        growth = last["objects"] / first["objects"]
        for figure in ("seconds", "cpu_seconds", "requests", "peak_rss_mib"):
            if not first[figure]:
                continue
            ratio = last[figure] / first[figure]
            found.append(
                (
                    f"{scenario} {tool} {figure}: at most linear in N",
                    ratio <= growth * 1.2,
                    f"x{ratio:.1f} for N x{growth:g}",
                )
            )
    rss = [r["peak_rss_mib"] for r in flat if r["tool"] == "gitopsd" and r["objects"] >= 10000]
    if rss:
        found.append(
            (
                f"gitopsd peak RSS <= {RSS_TARGET_MIB} MiB at 10,000",
                max(rss) <= RSS_TARGET_MIB,
                f"max {max(rss):.0f} MiB",
            )
        )
    return found


def plot(flat: list[dict[str, Any]], path: Path) -> bool:
    """A 2x2 PNG of the four figures against N; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figures = (("seconds", "wall s"), ("cpu_seconds", "own CPU s"), ("requests", "API requests"),
               ("peak_rss_mib", "peak RSS MiB"))  # fmt: skip
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for axis, (key, label) in zip(axes.flat, figures, strict=True):
        for scenario, tool in sorted({(r["scenario"], r["tool"]) for r in flat}):
            series = sorted(
                (r for r in flat if (r["scenario"], r["tool"]) == (scenario, tool)),
                key=lambda r: r["objects"],
            )
            axis.plot([r["objects"] for r in series], [r[key] for r in series], marker="o",
                      linestyle="-" if tool == "gitopsd" else "--",
                      label=f"{scenario}: {tool}")  # fmt: skip
        axis.set_xlabel("objects (N)")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def write(points: list[dict[str, Any]], rtt_ms: float, results: Path) -> tuple[Path, str]:
    flat = rows(points)
    found = linear(flat)
    date = datetime.date.today().isoformat()
    stem = f"{date}-curve" + (f"-rtt{rtt_ms:g}ms" if rtt_ms else "")
    results.mkdir(exist_ok=True)
    text = (
        table(flat)
        + "\n\n"
        + "\n".join(f"- [{'met' if ok else 'MISSED'}] {name}: {why}" for name, ok, why in found)
    )
    (results / f"{stem}.md").write_text(text + "\n")
    plotted = plot(flat, results / f"{stem}.png")
    document = {"date": date, "rtt_ms": rtt_ms, "points": points, "rows": flat,
                "targets": [{"target": t, "met": ok, "evidence": why} for t, ok, why in found],
                "plot": f"{stem}.png" if plotted else "matplotlib not installed"}  # fmt: skip
    out = results / f"{stem}.json"
    out.write_text(json.dumps(document, indent=2) + "\n")
    return out, text
