"""python -m bench [--objects N] [--repeat R] [--scenarios 1,2,...] [--rtt MS]: gitopsd against
kubectl (and git) on one audited kube-apiserver, in one run; see bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import report
from bench.env import BenchEnv
from bench.install import gitopsd_command
from bench.scenarios import Scenarios, summary

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--objects", type=int, default=1000, help="objects per tool (N)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per scenario (R)")
    parser.add_argument("--scenarios", default="1,2,3,4,5,6", help="comma-separated numbers")
    parser.add_argument(
        "--rtt",
        type=float,
        default=0.0,
        metavar="MS",
        help="round trip in milliseconds added between the measured tools and the API and "
        "Git servers (bench/delayproxy.py)",
    )
    parser.add_argument(
        "--curve",
        action="store_true",
        help="scenarios 1-3 at N = 100, 1000, 5000, 10000 (--objects is ignored); "
        "table, JSON and PNG under bench/results/",
    )
    parser.add_argument(
        "--dev-install",
        action="store_true",
        help="measure the gitopsd on PATH (the development install) instead of a runtime "
        "environment with `pip install .` of this checkout (bench/install.py)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="afterwards, profile one gitopsd --once of scenarios 2 and 4 "
        "with pyinstrument into DIR",
    )
    args = parser.parse_args()
    gitopsd_bin = gitopsd_command(args.dev_install, log)
    if args.curve:
        from bench.curve import SIZES, run_curve, write

        points = run_curve(SIZES, args.repeat, args.rtt, log, gitopsd_bin)
        out, text = write(points, args.rtt, RESULTS)
        print(text)
        log(f"wrote {out}")
        return 0
    wanted = sorted({int(x) for x in args.scenarios.split(",") if x.strip()})
    root = Path(tempfile.mkdtemp(prefix="gitopsd-bench-"))
    env = BenchEnv(root, args.objects, args.rtt, gitopsd_bin)
    began = time.monotonic()
    log(f"work directory {root}; starting cluster and git server")
    env.start()
    results = []
    try:
        runner = Scenarios(env, args.repeat, log)
        steps = {
            1: runner.cold,
            2: runner.unchanged,
            3: runner.drifted,
            4: runner.changed,
            5: runner.removed,
            6: runner.remote_unchanged,
        }
        for number in wanted:
            log(f"scenario {number}")
            results.append(summary(steps[number]()))
        if args.profile:
            from bench.profile import profile

            profile(env, runner, args.profile, log)
    finally:
        env.stop()
        if not args.keep:
            subprocess.run(["rm", "-rf", str(root)], check=False)
    found = report.targets(results, args.rtt)
    print(report.table(results))
    print()
    print(report.targets_text(found))
    date = datetime.date.today().isoformat()
    document = {
        "date": date,
        "objects": args.objects,
        "repeat": args.repeat,
        "rtt_ms": args.rtt,
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "machine": {
            "cpus": _cpus(),
            "python": platform.python_version(),
            "load_average_at_end": _load(),
        },
        "kubernetes": env.binaries.name,
        "gitopsd": {**_gitopsd_source(), "command": gitopsd_bin},
        "wall_seconds": round(time.monotonic() - began, 1),
        "delay_proxy_cpu_seconds": round(env.proxy_cpu_seconds, 2),
        "scenarios": results,
        "table": report.table(results).splitlines(),
        "targets": [{"target": t, "met": ok, "evidence": why} for t, ok, why in found],
    }
    RESULTS.mkdir(exist_ok=True)
    suffix = f"-rtt{args.rtt:g}ms" if args.rtt else ""
    out = RESULTS / f"{date}-n{args.objects}{suffix}.json"
    out.write_text(json.dumps(document, indent=2) + "\n")
    log(f"wrote {out}")
    return 0


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _gitopsd_source() -> dict[str, str]:
    """Which gitopsd was measured: its folder, and its commit when that can be told."""
    import gitopsd

    folder = Path(gitopsd.__file__).resolve().parent
    found = {"path": str(folder)}
    head = subprocess.run(
        ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if head.returncode == 0:
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
        ).stdout.strip()
        found["commit"] = head.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    elif os.environ.get("GITOPSD_BENCH_COMMIT"):
        found["commit"] = os.environ["GITOPSD_BENCH_COMMIT"] + " (exported copy)"
    return found


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def _load() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


if __name__ == "__main__":
    sys.exit(main())
