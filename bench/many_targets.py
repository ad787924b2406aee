"""python -m bench.many_targets: one daemon with many small targets on one cluster.

Starts `gitopsd --config FILE` (the daemon) with T targets of N objects each (default
100 x 20) against the audited test cluster, times how long until every target's
status is in sync, then watches it idle for a while: the daemon's CPU per minute (from
/proc), its RSS, and the API requests per minute it makes with nothing changing (from
the audit log). Writes bench/results/<date>-many-t<T>-n<N>.json and prints a summary.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.audit import AuditLog
from bench.install import gitopsd_command
from bench.output import save_facts
from bench.soak import PASSWORD_ENV, Daemon, World, _by_name, _missing_objects, log
from tests.support.cluster import free_port

RSS_TARGET_MIB = 300


def in_sync(daemon: Daemon, targets: int) -> int:
    """How many targets /status reports in sync."""
    status = json.loads(daemon.get("/status"))
    entries = status.get("targets", status) if isinstance(status, dict) else status
    return sum(1 for entry in _by_name(entries).values() if entry.get("in_sync") is True)


def converge(daemon: Daemon, targets: int, timeout: float) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if not daemon.alive():
            raise RuntimeError(f"gitopsd exited; see {daemon.log_path}")
        if in_sync(daemon, targets) == targets:
            return time.monotonic() - began
        time.sleep(0.25)
    raise RuntimeError(f"not every target in sync after {timeout:.0f}s")


def idle(daemon: Daemon, audit: AuditLog, seconds: float) -> dict[str, Any]:
    """CPU, RSS and API requests of the daemon while nothing changes."""
    start_offset, start_cpu, began = audit.offset(), daemon.cpu_seconds(), time.monotonic()
    peak_rss = 0
    while time.monotonic() - began < seconds:
        peak_rss = max(peak_rss, daemon.resources()[0])
        time.sleep(1.0)
    minutes = (time.monotonic() - began) / 60
    requests = audit.counts(start_offset)
    return {
        "idle_seconds": round(minutes * 60, 1),
        "cpu_seconds_per_minute": round((daemon.cpu_seconds() - start_cpu) / minutes, 3),
        "peak_rss_mib_idle": round(peak_rss / 1024, 1),
        "requests_per_minute": {v: round(n / minutes, 1) for v, n in requests.items()},
        "requests_per_minute_total": round(sum(requests.values()) / minutes, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.many_targets", description=__doc__)
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--objects", type=int, default=20, help="objects per target")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds")
    parser.add_argument("--idle", type=float, default=180.0, help="seconds watched idle")
    parser.add_argument(
        "--dev-install", action="store_true", help="run the gitopsd on PATH (bench/install.py)"
    )
    args = parser.parse_args()
    binary = gitopsd_command(args.dev_install, log)
    root = Path(tempfile.mkdtemp(prefix="gitopsd-many-"))
    world = World(root, args.targets, args.objects, audit=True)
    log(f"work directory {root}; {args.targets} targets x {args.objects} objects")
    world.start()
    daemon = None
    try:
        port = free_port()
        config = world.config(root / "state", args.interval, port)
        env = {**os.environ, PASSWORD_ENV: world.password}
        env.pop("KUBECONFIG", None)
        daemon = Daemon(config, port, root / "gitopsd.log", env, binary)
        daemon.wait_http(120)
        seconds = converge(daemon, args.targets, timeout=900)
        converge_cpu = daemon.cpu_seconds()
        peak_at_converge = daemon.resources()[0] / 1024
        log(f"all {args.targets} targets in sync after {seconds:.1f}s")
        missing = _missing_objects(world)
        facts: dict[str, Any] = {
            "date": datetime.date.today().isoformat(),
            "targets": args.targets,
            "objects_per_target": args.objects,
            "interval_seconds": args.interval,
            "gitopsd": binary,
            "converge_seconds": round(seconds, 1),
            "cpu_seconds_to_converge": round(converge_cpu, 2),
            "rss_mib_at_converge": round(peak_at_converge, 1),
            "missing_objects": len(missing),
            **idle(daemon, AuditLog(world.plane.audit_log), args.idle),
            "cpus": len(os.sched_getaffinity(0)),
            "load_average_at_end": Path("/proc/loadavg").read_text().split()[:3],
        }
        peak = max(facts["peak_rss_mib_idle"], facts["rss_mib_at_converge"])
        facts["rss_target_met"] = peak <= RSS_TARGET_MIB
    finally:
        if daemon is not None:
            daemon.terminate()
        world.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)
    out = save_facts(f"many-t{args.targets}-n{args.objects}", facts)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
