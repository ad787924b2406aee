"""python -m bench.ha: three gitopsd replicas sharing targets through Leases (`ha:`).

Starts three daemons with the default Lease settings (15s / 10s / 2s) on T targets of N
objects (default 30 x 30) against the audited test cluster and measures: the time from
start until every target has a holder and every object exists; the Lease API requests
per minute while idle (from the audit log; the issue asks below 2 per replica per
second); and, over K rounds, the takeover time after a SIGKILL (from the kill until
every target the victim held has another holder), a fresh replica replacing the victim
each round. Writes bench/results/<date>-ha-t<T>-n<N>.json and prints it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from kubernetes import client, config

from bench.output import save_facts
from bench.soak import PASSWORD_ENV, Daemon, World, _missing_objects, log
from tests.support.cluster import free_port

NAMESPACE = "gitopsd-ha"
LEASE_DURATION = 15.0


class Fleet:
    """The replicas, their configuration files, and the Leases as the API server has them."""

    def __init__(self, world: World, root: Path, interval: float) -> None:
        self.world, self.root, self.interval = world, root, interval
        self.daemons: dict[str, Daemon] = {}
        self.env = {**os.environ, PASSWORD_ENV: world.password}
        self.env.pop("KUBECONFIG", None)
        api = config.new_client_from_config(config_file=str(world.plane.kubeconfig))
        self.core = client.CoreV1Api(api)
        self.leases = client.CoordinationV1Api(api)
        self.core.create_namespace({"metadata": {"name": NAMESPACE}})

    def start(self, identity: str) -> None:
        port = free_port()
        text = self.world.config(self.root / identity / "state", self.interval, port).read_text()
        ha = (
            f"ha:\n  kubeconfig: {self.world.plane.kubeconfig}\n  namespace: {NAMESPACE}\n"
            f"  identity: {identity}\n"
        )
        path = self.root / f"{identity}.yaml"
        path.write_text(ha + text)
        self.daemons[identity] = Daemon(path, port, self.root / f"{identity}.log", self.env)

    def holders(self) -> dict[str, str]:
        found = self.leases.list_namespaced_lease(NAMESPACE).items
        return {
            lease.metadata.name.removeprefix("gitopsd-target-"): lease.spec.holder_identity or ""
            for lease in found
            if lease.metadata.name.startswith("gitopsd-target-")
        }

    def wait(self, done: Any, what: str, timeout: float, every: float = 0.1) -> float:
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if done():
                return time.monotonic() - began
            time.sleep(every)
        raise RuntimeError(f"{what}: not within {timeout:.0f}s")

    def balanced(self, targets: int) -> bool:
        holders = self.holders()
        live = {n for n, d in self.daemons.items() if d.alive()}
        shares = Counter(holders.values())
        most = -(-targets // len(live))
        return (
            len(holders) == targets
            and set(holders.values()) <= live
            and max(shares.values()) <= most
        )


def lease_requests(audit_log: Path, start: int) -> Counter[str]:
    """Requests on Leases since `start` in the audit log, by verb."""
    counts: Counter[str] = Counter()
    with audit_log.open("rb") as lines:
        lines.seek(start)
        for line in lines:
            if not line.endswith(b"\n"):
                break
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if event.get("stage") == "ResponseComplete" and ref.get("resource") == "leases":
                counts[str(event.get("verb"))] += 1
    return counts


def takeovers(fleet: Fleet, targets: int, kills: int) -> list[float]:
    seconds = []
    for round_ in range(kills):
        holders = fleet.holders()
        victim = sorted(n for n, d in fleet.daemons.items() if d.alive())[0]
        orphans = [t for t, h in holders.items() if h == victim]
        fleet.daemons[victim].process.send_signal(signal.SIGKILL)
        fleet.daemons[victim].process.wait()
        took = fleet.wait(
            lambda o=orphans, v=victim: all(fleet.holders()[t] not in ("", v) for t in o),
            "takeover",
            timeout=120,
        )
        seconds.append(round(took, 2))
        log(f"round {round_ + 1}: {len(orphans)} targets of {victim} taken over in {took:.1f}s")
        del fleet.daemons[victim]
        fleet.start(f"replica-{round_ + 3}")
        fleet.wait(lambda: fleet.balanced(targets), "rebalance", timeout=300, every=0.5)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ha", description=__doc__)
    parser.add_argument("--targets", type=int, default=30)
    parser.add_argument("--objects", type=int, default=30, help="objects per target")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds watched idle")
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gitopsd-ha-"))
    world = World(root, args.targets, args.objects, audit=True)
    log(f"work directory {root}; 3 replicas, {args.targets} targets x {args.objects} objects")
    world.start()
    fleet: Fleet | None = None
    try:
        fleet = Fleet(world, root, args.interval)
        began = time.monotonic()
        for n in range(3):
            fleet.start(f"replica-{n}")
        fleet.wait(lambda: fleet.balanced(args.targets), "assignment", timeout=600, every=0.5)
        fleet.wait(lambda: not _missing_objects(world), "convergence", timeout=900, every=1.0)
        converge = time.monotonic() - began
        log(f"all targets held and every object present after {converge:.1f}s")
        audit = world.plane.audit_log
        start, idle_began = audit.stat().st_size, time.monotonic()
        time.sleep(args.idle)  # a measurement window, not a wait for a condition
        minutes = (time.monotonic() - idle_began) / 60
        requests = lease_requests(audit, start)
        kills = takeovers(fleet, args.targets, args.kills)
        facts: dict[str, Any] = {
            "date": datetime.date.today().isoformat(),
            "replicas": 3,
            "targets": args.targets,
            "objects_per_target": args.objects,
            "lease_duration_seconds": LEASE_DURATION,
            "converge_seconds": round(converge, 1),
            "idle_lease_requests_per_minute": {
                v: round(n / minutes, 1) for v, n in requests.items()
            },
            "idle_lease_requests_per_replica_per_second": round(
                sum(requests.values()) / minutes / 60 / 3, 3
            ),
            "takeover_seconds": kills,
            "takeover_p50_seconds": statistics.median(kills) if kills else None,
            "takeover_max_seconds": max(kills) if kills else None,
            "cpus": len(os.sched_getaffinity(0)),
            "load_average_at_end": Path("/proc/loadavg").read_text().split()[:3],
        }
    finally:
        if fleet is not None:
            for daemon in fleet.daemons.values():
                if daemon.alive():
                    daemon.terminate()
        world.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)
    out = save_facts(f"ha-t{args.targets}-n{args.objects}", facts)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
