"""python -m bench.soak: the daemon under steady load for a long time, looking for leaks.

Runs `gitopsd --config FILE` (the daemon, not --once) with N targets at a short interval
against the test cluster and a smart-HTTP Git remote, while a background writer drifts
managed objects through the API under another field manager (and, optionally, pushes a
commit now and then). Every K passes, counted from the daemon's /metrics, it samples the
daemon's RSS, open file descriptors and threads; at the end it fits a least-squares slope
to each over the second half of the run (after warm-up), writes a CSV and a markdown
summary to bench/results/ and prints the summary. Issue 10: RSS and FDs must stay flat.
See bench/README.md, "Soak".
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import datetime
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from bench.workload import Workload
from tests.support.cluster import ControlPlane, build, free_port
from tests.support.git_remotes import GitHttpServer, RemoteFactory

RESULTS = Path(__file__).resolve().parent / "results"
PASSWORD_ENV = "SOAK_GIT_PASSWORD"
GIT_USER = "soak"
DRIFTER = "soak-drifter"
INVENTORY_NAMESPACE = "gitopsd-soak"
_METRIC = re.compile(r"^(gitopsd_passes_total|gitopsd_drift_events_total)\{(.*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def log(text: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def duration(text: str) -> float:
    """'500ms', '1s', '2m' or a bare number of seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: not a duration such as 500ms, 1s or 2m")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]
    return float(match.group(1)) * scale


# -- the world: cluster, Git remote, one workload per target -----------------------------


class World:
    """The test control plane, one repository served over smart HTTP, N target folders."""

    def __init__(self, root: Path, targets: int, objects: int, *, audit: bool = False) -> None:
        self.root = root
        self.binaries = build()
        self.plane = ControlPlane(root / "cluster", audit=audit, binaries=self.binaries)
        self.factory = RemoteFactory(root / "git")
        self.remote = self.factory.create("soak")
        self.password = os.urandom(12).hex()
        self.server = GitHttpServer(self.factory.repos, GIT_USER, self.password)
        self.workloads = [Workload(objects, f"soak{k}-") for k in range(targets)]

    def start(self) -> None:
        self.plane.start()
        self.server.start()
        files: dict[str, str | None] = {}
        for k, workload in enumerate(self.workloads):
            files.update({f"t{k}/{p}": text for p, text in workload.tree().items()})
        self.remote.commit(files, "soak workload")

    def stop(self) -> None:
        self.server.stop()
        self.plane.stop()

    def commit_change(self, rng: random.Random) -> str:
        """A new revision of one object of one target: a fetch and a render for the daemon."""
        k = rng.randrange(len(self.workloads))
        changed = self.workloads[k].change([rng.randrange(self.workloads[k].objects)])
        self.remote.commit({f"t{k}/{p}": text for p, text in changed.items()}, "soak change")
        return "commit"

    def config(self, state_dir: Path, interval: float, http_port: int) -> Path:
        lines = [f"state_dir: {state_dir}", f"interval: {int(interval * 1000)}ms",
                 "log_level: info", f"http:\n  address: 127.0.0.1\n  port: {http_port}",
                 "targets:"]  # fmt: skip
        for k in range(len(self.workloads)):
            lines.append(
                f"  - name: t{k}\n    repo: {self.server.url(self.remote)}\n    branch: main\n"
                f"    path: t{k}\n    username: {GIT_USER}\n    password_env: {PASSWORD_ENV}\n"
                f"    kubeconfig: {self.plane.kubeconfig}\n"
                f"    inventory_namespace: {INVENTORY_NAMESPACE}"
            )
        path = self.root / "gitopsd.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path


# -- the background writers --------------------------------------------------------------


class Periodic(threading.Thread):
    """Calls `step` every `period` seconds until stopped; counts what the steps return."""

    def __init__(self, name: str, period: float, step: Callable[[], str]) -> None:
        super().__init__(name=name, daemon=True)
        self.period = period
        self.step = step
        self.done: Counter[str] = Counter()
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.period):
            try:
                self.done[self.step()] += 1
            except Exception as error:  # a soak reports every failure and keeps going
                self.done[f"error: {type(error).__name__}: {str(error)[:120]}"] += 1

    def stop(self) -> None:
        self.halt.set()
        if self.ident is not None:  # a writer switched off (period 0) never started
            self.join(timeout=30)


class Drifter:
    """Changes or deletes one managed object through the API, as another field manager."""

    def __init__(self, world: World, rng: random.Random) -> None:
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=str(world.plane.kubeconfig))
        self.core, self.apps = client.CoreV1Api(api), client.AppsV1Api(api)
        self.api_exception = client.ApiException
        self.world, self.rng = world, rng

    def step(self) -> str:
        workload = self.rng.choice(self.world.workloads)
        index = self.rng.randrange(workload.objects)
        kind, name, ns = workload.kind(index), workload.name(index), workload.namespace(index)
        delete = self.rng.random() < 0.25
        try:
            (self._delete if delete else self._patch)(kind, name, ns)
        except self.api_exception as error:
            if error.status != 404:  # already deleted and not yet recreated: no drift made
                raise
            return "not found"
        return f"{'deleted' if delete else 'patched'} {kind}"

    def _patch(self, kind: str, name: str, ns: str) -> None:
        mark = str(self.rng.randrange(10**6))
        call, body = {
            "ConfigMap": (self.core.patch_namespaced_config_map, {"data": {"LOG_LEVEL": mark}}),
            "Secret": (self.core.patch_namespaced_secret, {"stringData": {"username": mark}}),
            "Service": (self.core.patch_namespaced_service,
                        {"metadata": {"annotations": {"bench.gitopsd.io/revision": mark}}}),
            "Deployment": (self.apps.patch_namespaced_deployment,
                           {"spec": {"replicas": 3 + int(mark) % 5}}),
        }[kind]  # fmt: skip
        call(name, ns, body, field_manager=DRIFTER)

    def _delete(self, kind: str, name: str, ns: str) -> None:
        call = {
            "ConfigMap": self.core.delete_namespaced_config_map,
            "Secret": self.core.delete_namespaced_secret,
            "Service": self.core.delete_namespaced_service,
            "Deployment": self.apps.delete_namespaced_deployment,
        }[kind]
        call(name, ns)


# -- the daemon --------------------------------------------------------------------------


class Daemon:
    """`gitopsd --config FILE` as a subprocess, read through /proc and its HTTP listener."""

    def __init__(
        self,
        config: Path,
        http_port: int,
        log_path: Path,
        env: dict[str, str],
        binary: str | None = None,
    ) -> None:
        binary = binary or shutil.which("gitopsd")
        assert binary, "the gitopsd command is not installed (pip install -e .)"
        self.url = f"http://127.0.0.1:{http_port}"
        self.log_path = log_path
        with log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [binary, "--config", str(config)], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return str(response.read().decode())

    def counters(self) -> tuple[Counter[str], Counter[str]]:
        """Passes by outcome and drift events by action, summed over targets (and kinds)."""
        passes: Counter[str] = Counter()
        drifts: Counter[str] = Counter()
        for line in self.get("/metrics").splitlines():
            match = _METRIC.match(line)
            if match:
                labels = dict(_LABEL.findall(match.group(2)))
                into = passes if match.group(1) == "gitopsd_passes_total" else drifts
                into[labels.get("outcome") or labels.get("action") or "?"] += int(
                    float(match.group(3))
                )
        return passes, drifts

    def cpu_seconds(self) -> float:
        """User plus system CPU time the daemon has used."""
        after_name = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(after_name[11]) + int(after_name[12])) / os.sysconf("SC_CLK_TCK")

    def resources(self) -> tuple[int, int, int]:
        """RSS in KiB, open file descriptors, threads."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        rss = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]
        threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
        return rss, len(os.listdir(f"/proc/{self.pid}/fd")), threads

    def wait_http(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"gitopsd exited {self.process.returncode} at start; "
                                   f"see {self.log_path}")  # fmt: skip
            try:
                self.get("/healthz")
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gitopsd's /healthz did not answer in {timeout:.0f}s")

    def terminate(self, timeout: float = 60.0) -> tuple[int, float]:
        """SIGTERM; the exit code and the seconds it took to exit."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        return code, time.monotonic() - began


def _die_with_parent() -> None:
    """The daemon dies with the soak, however the soak ends."""
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


# -- sampling ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    seconds: float
    passes: int
    failed_passes: int
    rss_kib: int
    fds: int
    threads: int
    cpu_s: float
    drifts_made: int
    drift_events: int
    state_kib: int


def state_kib(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            # A temporary file may be renamed away while we walk.
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total // 1024


def take(daemon: Daemon, began: float, drifter: Periodic, state_dir: Path) -> Sample:
    passes, drifts = daemon.counters()
    rss, fds, threads = daemon.resources()
    made = sum(n for what, n in drifter.done.items() if what.startswith(("patched", "deleted")))
    cpu, seconds = round(daemon.cpu_seconds(), 2), round(time.monotonic() - began, 1)
    return Sample(seconds, sum(passes.values()), passes["failed"], rss, fds, threads, cpu,
                  made, sum(drifts.values()), state_kib(state_dir))  # fmt: skip


def soak(daemon: Daemon, total: int, every: int, drifter: Periodic, state_dir: Path,
         on_sample: Callable[[Sample], None], trouble: Counter[str]) -> list[Sample]:  # fmt: skip
    """Sample every `every` passes until `total`; stops early if the daemon dies."""
    began, samples, due = time.monotonic(), [], 0
    while daemon.alive():
        try:
            passes = sum(daemon.counters()[0].values())
            if passes >= due:
                samples.append(take(daemon, began, drifter, state_dir))
                on_sample(samples[-1])
                if passes >= total:
                    break
                due = (passes // every + 1) * every
        except OSError as error:  # a slow or refused /metrics is a finding, not the end
            trouble[f"/metrics: {type(error).__name__}: {str(error)[:80]}"] += 1
        time.sleep(0.2)
    return samples


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y on x (0 for fewer than two distinct x)."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def slopes(samples: list[Sample], total: int) -> dict[str, float]:
    """Per 1,000 passes, over the samples of the second half of the run."""
    late = [s for s in samples if s.passes >= total / 2]
    return {name: slope([(s.passes / 1000, float(getattr(s, name))) for s in late])
            for name in ("rss_kib", "fds", "threads", "state_kib")}  # fmt: skip


# -- the end: convergence, log, report ----------------------------------------------------


def converged(daemon: Daemon, world: World, targets: int, timeout: float = 120.0) -> str:
    """After the writers stop: every target's next passes end in sync, nothing missing."""
    start = sum(daemon.counters()[0].values())
    deadline = time.monotonic() + timeout
    while sum(daemon.counters()[0].values()) < start + 3 * targets:
        if time.monotonic() > deadline or not daemon.alive():
            return "no: the daemon stopped passing"
        time.sleep(0.5)
    status = json.loads(daemon.get("/status"))
    entries = status.get("targets", status) if isinstance(status, dict) else status
    out = [name for name, entry in _by_name(entries).items() if entry.get("in_sync") is not True]
    missing = _missing_objects(world)
    if out or missing:
        return f"no: not in sync {out}; missing {missing[:10]}"
    return "yes: every target in sync, every declared object present"


def _by_name(entries: Any) -> dict[str, dict[str, Any]]:
    if isinstance(entries, dict):
        return {str(k): v for k, v in entries.items()}
    return {str(e.get("name") or e.get("target")): e for e in entries}


def _missing_objects(world: World) -> list[str]:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(world.plane.kubeconfig))
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    listers = {"ConfigMap": core.list_namespaced_config_map, "Secret": core.list_namespaced_secret,
               "Service": core.list_namespaced_service,
               "Deployment": apps.list_namespaced_deployment}  # fmt: skip
    missing = []
    for workload in world.workloads:
        for kind, lister in listers.items():
            live = {item.metadata.name for ns in workload.namespaces
                    for item in lister(ns).items}  # fmt: skip
            missing += [f"{workload.namespace(i)}/{workload.name(i)}"
                        for i in range(workload.objects)
                        if workload.kind(i) == kind and workload.name(i) not in live]  # fmt: skip
    return missing


def read_log(text: str) -> dict[str, Any]:
    """Lines by level, warning and error events by name, lines that are not JSON."""
    levels: Counter[str] = Counter()
    loud: Counter[str] = Counter()
    other: list[str] = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            other.append(line)
            continue
        level, name = str(event.get("level", "?")), str(event.get("event"))
        levels[level] += 1
        # drift_detected is the expected answer to the drifter; the rest is worth reading.
        if level in ("warning", "error", "critical") and name != "drift_detected":
            # Library messages (APScheduler's) carry times and ids: group them without.
            loud[f"{level} {re.sub(r'[0-9][0-9:. -]*', 'N', name)[:110]}"] += 1
    return {"levels": dict(levels), "loud": dict(loud.most_common(10)),
            "not_json": len(other), "not_json_head": other[:5]}  # fmt: skip


def _cpu_per_pass(a: Sample, b: Sample) -> str:
    if b.passes <= a.passes:
        return "n/a"
    return f"{1000 * (b.cpu_s - a.cpu_s) / (b.passes - a.passes):.1f} ms"


def _log_line(name: str, facts: dict[str, Any]) -> str:
    head = f" {facts['not_json_head']}" if facts["not_json"] else ""
    return (f"- Log {name}: lines by level {facts['levels']}; warnings and errors other than "
            f"drift_detected: {facts['loud'] or 'none'}; lines that are not JSON: "
            f"{facts['not_json']}{head}.")  # fmt: skip


def write_csv(samples: list[Sample], path: Path) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([f.name for f in fields(Sample)])
        writer.writerows(list(asdict(s).values()) for s in samples)


def summary(facts: dict[str, Any], samples: list[Sample], found: dict[str, float]) -> str:
    first, last = samples[0], samples[-1]
    half = next((s for s in samples if s.passes >= facts["passes"] / 2), last)
    row = lambda name, unit: (  # noqa: E731
        f"| {name} | {getattr(first, name)} | {getattr(half, name)} | {getattr(last, name)} | "
        f"{min(getattr(s, name) for s in samples)} | {max(getattr(s, name) for s in samples)} | "
        f"{found[name]:+.2f} {unit} |"
    )
    lines = [
        f"# Soak, {facts['date']}", "",
        f"`{facts['command']}`", "",
        f"gitopsd {facts['gitopsd']}; Kubernetes {facts['kubernetes']}; {facts['cpus']} CPUs "
        f"(shared); load average at the end {facts['load']}.", "",
        f"{facts['targets']} targets x {facts['objects']} objects (+1 Namespace each), interval "
        f"{facts['interval']}, one repository over smart HTTP; a drift every "
        f"{facts['drift_every']} (25% deletions), a commit every {facts['commit_every']}.", "",
        f"- Duration: {last.seconds:.0f} s for {last.passes} passes "
        f"({last.passes / max(last.seconds, 1):.1f} passes/s); failed passes: "
        f"{last.failed_passes}.",
        f"- Passes by outcome: {facts['outcomes']}; daemon CPU per pass: "
        f"{_cpu_per_pass(first, half)} in the first half, {_cpu_per_pass(half, last)} in the "
        "second.",
        f"- Drifts made: {facts['drifts']}; commits pushed: {facts['commits']}.",
        f"- Drift events the daemon recorded, by action: {facts['drift_events']}.",
        f"- After the writers stopped, converged: {facts['converged']}.",
        f"- SIGTERM: exit {facts['exit'][0]} after {facts['exit'][1]:.1f} s.",
        f"- The harness's own /metrics polls that failed: {facts['trouble'] or 'none'}.",
        _log_line("until SIGTERM", facts["log"]),
        _log_line("after SIGTERM", facts["shutdown_log"]), "",
        f"Slopes by least squares over the {sum(s.passes >= facts['passes'] / 2 for s in samples)}"
        f" samples of the second half (passes >= {facts['passes'] // 2}):", "",
        "| measure | first sample | at half | last | min | max | slope per 1,000 passes |",
        "|---|---|---|---|---|---|---|",
        row("rss_kib", "KiB"), row("fds", "FDs"), row("threads", "threads"),
        row("state_kib", "KiB (state directory on disk)"),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


# -- main --------------------------------------------------------------------------------


def main() -> int:
    args = _parser().parse_args()
    # A background job started by a non-interactive shell ignores SIGINT: let SIGTERM stop
    # the soak through the same clean-up (daemon, cluster and Git server stopped).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="gitopsd-soak-"))
    log(f"work directory {root}; starting the cluster and the Git server")
    world = World(root, args.targets, args.objects)
    world.start()
    rng = random.Random(args.seed)
    try:
        facts, samples = _run(world, args, rng, root)
    finally:
        world.stop()
    found = slopes(samples, args.passes)
    text = summary(facts, samples, found)
    stem = f"soak-{facts['date']}-t{args.targets}-p{args.passes}"
    RESULTS.mkdir(exist_ok=True)
    write_csv(samples, RESULTS / f"{stem}.csv")
    (RESULTS / f"{stem}.md").write_text(text)
    print(text)
    log(f"wrote {RESULTS / stem}.csv and .md; daemon log kept in {root}")
    return 0 if samples[-1].passes >= args.passes else 1


def _run(world: World, args: argparse.Namespace, rng: random.Random,
         root: Path) -> tuple[dict[str, Any], list[Sample]]:  # fmt: skip
    port, state_dir = free_port(), root / "state"
    config = world.config(state_dir, args.interval, port)
    env = {**os.environ, PASSWORD_ENV: world.password}
    env.pop("KUBECONFIG", None)
    daemon = Daemon(config, port, root / "gitopsd.log", env)
    daemon.wait_http(60)
    drifter = Periodic("drifter", args.drift_every, Drifter(world, rng).step)
    committer = Periodic("committer", args.commit_every or 1e9, lambda: world.commit_change(rng))
    drifter.start()
    if args.commit_every:
        committer.start()

    taken = Counter[str]()

    def progress(s: Sample) -> None:
        world.server.clear_log()  # the harness's own request log would grow for ever
        if taken["samples"] % 10 == 0:
            log(
                f"{s.passes} passes, {s.seconds:.0f} s: RSS {s.rss_kib} KiB, {s.fds} FDs, "
                f"{s.threads} threads, {s.drifts_made} drifts, {s.failed_passes} failed"
            )
        taken["samples"] += 1

    trouble = Counter[str]()
    try:
        samples = soak(daemon, args.passes, args.sample_every, drifter, state_dir, progress,
                       trouble)  # fmt: skip
    except BaseException:
        daemon.terminate()
        raise
    finally:
        drifter.stop()
        committer.stop()
    if not daemon.alive():
        log(f"gitopsd exited {daemon.process.returncode} during the soak; see {daemon.log_path}")
    settled = converged(daemon, world, args.targets) if daemon.alive() else "no: daemon died"
    passes, drift_events = daemon.counters() if daemon.alive() else (Counter(), Counter())
    before = daemon.log_path.stat().st_size
    exit_info = daemon.terminate() if daemon.alive() else (daemon.process.returncode, 0.0)
    text = daemon.log_path.read_bytes()
    facts = _facts(args, world, passes, drift_events, drifter, committer, settled, exit_info,
                   read_log(text[:before].decode(errors="replace")))  # fmt: skip
    facts["shutdown_log"] = read_log(text[before:].decode(errors="replace"))
    facts["trouble"] = dict(trouble)
    return facts, samples


def _facts(args: argparse.Namespace, world: World, passes: Counter[str],
           drift_events: Counter[str], drifter: Periodic, committer: Periodic, settled: str,
           exit_info: tuple[int, float], log_facts: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    from bench.__main__ import _gitopsd_source

    source = _gitopsd_source()
    return {
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python -m bench.soak", *sys.argv[1:]]),
        "gitopsd": source.get("commit", source["path"]),
        "kubernetes": world.binaries.name,
        "cpus": len(os.sched_getaffinity(0)),
        "load": Path("/proc/loadavg").read_text().split()[:3],
        "targets": args.targets, "objects": args.objects, "passes": args.passes,
        "interval": f"{args.interval:g}s", "drift_every": f"{args.drift_every:g}s",
        "commit_every": f"{args.commit_every:g}s" if args.commit_every else "never",
        "outcomes": dict(passes), "drift_events": dict(drift_events),
        "drifts": dict(drifter.done), "commits": sum(committer.done.values()),
        "converged": settled, "exit": exit_info, "log": log_facts,
    }  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--targets", type=int, default=10, help="targets in the daemon's configuration")
    add("--objects", type=int, default=12, help="objects per target (plus its Namespace)")
    add("--interval", type=duration, default=1.0, help="every target's interval (1s)")
    add("--passes", type=int, default=10_000, help="stop after this many passes in all")
    add("--sample-every", type=int, default=100, help="sample every this many passes")
    add("--drift-every", type=duration, default=0.5, help="one drift this often (500ms)")
    add("--commit-every", type=duration, default=60.0, help="a new commit this often; 0: none")
    add("--seed", type=int, default=10, help="seed of the writers' choices")
    return parser


if __name__ == "__main__":
    sys.exit(main())
