"""The six scenarios of issue 6. Each runs gitopsd and its peer(s) R times on
equivalent state, alternating which tool goes first, and checks the outcome.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from bench.env import APPLYSET, GIT_USER, PASSWORD_ENV, BenchEnv
from bench.runner import Run
from bench.workload import Workload, pick
from gitopsd.config import RefKind, SecretRef, SourceSettings
from gitopsd.source import GitSource
from tests.support.git_remotes import GIT_ENV

APPLY = ("apply", "--server-side")
# gitopsd's client-side rate limit (qps 500, burst 1000 by default) lifted, for a second
# cold-sync row that shows what the limit costs.
UNLIMITED = "    qps: 10000\n    burst: 10000\n"
DRIFTER = "bench-drifter"


@dataclass
class Measure:
    tool: str
    runs: list[Run] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # for in-process timings
    checks: list[str] = field(default_factory=list)  # failed outcome checks

    def times(self) -> list[float]:
        return [r.seconds for r in self.runs] or self.seconds


@dataclass
class Scenario:
    number: int
    title: str
    gitopsd: Measure
    peers: list[Measure]
    notes: list[str] = field(default_factory=list)
    variants: list[Measure] = field(default_factory=list)  # other gitopsd settings


class Scenarios:
    def __init__(self, env: BenchEnv, repeat: int, log: Callable[[str], None]) -> None:
        self.env = env
        self.repeat = repeat
        self.log = log
        self.states = env.root / "gitopsd-state"
        self.steady: Path | None = None  # gitopsd's state dir after the cold syncs

    def _cmd(self, args: tuple[str, ...]) -> tuple[str, ...]:
        return (*args, "-R", "-f", str(self.env.kubectl_dir))

    def _pair(self, rep: int, first: Callable[[], None], second: Callable[[], None]) -> None:
        """Alternate which tool runs first, so drift in machine load hits both alike."""
        for step in (first, second) if rep % 2 == 0 else (second, first):
            step()

    # -- 1 ------------------------------------------------------------------------------

    def cold(self) -> Scenario:
        env = self.env
        g, k = Measure("gitopsd --once"), Measure("kubectl apply --server-side")
        fast = Measure("gitopsd --once, qps/burst 10000")
        n = env.gitopsd_workload.objects
        for rep in range(self.repeat):
            env.reset(env.gitopsd_workload)
            env.reset(env.kubectl_workload)
            state = self.states / f"cold-{rep}"

            def run_g(state: Path = state) -> None:
                g.runs.append(env.gitopsd(state))
                _expect(g, env.count_objects(env.gitopsd_workload) == n, "objects after sync")

            def run_k() -> None:
                k.runs.append(env.kubectl_run(*self._cmd(APPLY)))
                _expect(k, env.count_objects(env.kubectl_workload) == n, "objects after apply")

            self._pair(rep, run_g, run_k)
            env.reset(env.gitopsd_workload)
            self.steady = self.states / f"cold-unlimited-{rep}"
            fast.runs.append(env.gitopsd(self.steady, UNLIMITED))
            _expect(fast, env.count_objects(env.gitopsd_workload) == n, "objects after sync")
            self.log(
                f"  1 rep {rep}: gitopsd {g.runs[-1].seconds:.2f}s, "
                f"kubectl {k.runs[-1].seconds:.2f}s, gitopsd unlimited "
                f"{fast.runs[-1].seconds:.2f}s"
            )
        scenario = Scenario(
            1,
            "cold sync",
            g,
            [k],
            [
                "each repetition starts from an empty cluster: both copies' objects, namespaces "
                "and gitopsd's inventory deleted, fresh gitopsd state dir",
                "row 1b: the same cold sync with `qps: 10000, burst: 10000` in the target, run "
                "after its own reset (it leaves the state the later scenarios start from)",
            ],
        )
        scenario.variants.append(fast)
        return scenario

    # -- 2 ------------------------------------------------------------------------------

    def unchanged(self) -> Scenario:
        env, state = self.env, self._steady()
        g = Measure("gitopsd --once")
        diff, apply = Measure("kubectl diff"), Measure("kubectl apply --server-side")
        for rep in range(self.repeat):

            def run_g() -> None:
                g.runs.append(env.gitopsd(state))

            def run_k() -> None:
                diff.runs.append(env.kubectl_run(*self._cmd(("diff", "--server-side")), ok=(0, 1)))
                _expect(diff, diff.runs[-1].returncode == 0, "kubectl diff found differences")
                apply.runs.append(env.kubectl_run(*self._cmd(APPLY)))

            self._pair(rep, run_g, run_k)
            self.log(
                f"  2 rep {rep}: gitopsd {g.runs[-1].seconds:.2f}s, diff "
                f"{diff.runs[-1].seconds:.2f}s, apply {apply.runs[-1].seconds:.2f}s"
            )
        return Scenario(2, "nothing changed", g, [diff, apply])

    # -- 3 ------------------------------------------------------------------------------

    def drifted(self) -> Scenario:
        env, state = self.env, self._steady()
        g = Measure("gitopsd --once")
        k = Measure("kubectl apply --server-side --force-conflicts")
        deployments = [i for i in range(env.gitopsd_workload.objects) if i % 4 == 3]
        for rep in range(self.repeat):
            index = deployments[(rep * 37) % len(deployments)]
            for workload in (env.gitopsd_workload, env.kubectl_workload):
                self._drift(workload, index)

            def run_g(index: int = index) -> None:
                g.runs.append(env.gitopsd(state))
                _expect(g, self._replicas(env.gitopsd_workload, index) == 2, "drift corrected")

            def run_k(index: int = index) -> None:
                k.runs.append(env.kubectl_run(*self._cmd((*APPLY, "--force-conflicts"))))
                _expect(k, self._replicas(env.kubectl_workload, index) == 2, "drift corrected")

            self._pair(rep, run_g, run_k)
            self.log(
                f"  3 rep {rep}: gitopsd {g.runs[-1].seconds:.2f}s, "
                f"kubectl {k.runs[-1].seconds:.2f}s"
            )
        return Scenario(
            3,
            "one object drifted",
            g,
            [k],
            [
                f"before each repetition one Deployment's spec.replicas is changed 2 -> 5 by "
                f"`kubectl patch --field-manager={DRIFTER}` (an update: the field moves to that "
                "manager) in both copies"
            ],
        )

    def _drift(self, workload: Workload, index: int) -> None:
        self.env.kubectl(
            "patch",
            "deployment",
            workload.name(index),
            "-n",
            workload.namespace(index),
            "--type=merge",
            "-p",
            '{"spec":{"replicas":5}}',
            f"--field-manager={DRIFTER}",
        )

    def _replicas(self, workload: Workload, index: int) -> int:
        live = self.env.api(
            "GET",
            f"/apis/apps/v1/namespaces/{workload.namespace(index)}"
            f"/deployments/{workload.name(index)}",
        )
        return int(live["spec"]["replicas"]) if live else -1

    # -- 4 ------------------------------------------------------------------------------

    def changed(self) -> Scenario:
        env, state = self.env, self._steady()
        g, k = Measure("gitopsd --once"), Measure("kubectl apply --server-side")
        for rep in range(self.repeat):
            indexes = pick(env.gitopsd_workload.objects, 0.10, rep)
            env.commit(env.gitopsd_workload.change(indexes), f"change 10% ({rep})")
            env.write_kubectl(env.kubectl_workload.change(indexes))
            probe = indexes[0]

            def run_g(probe: int = probe) -> None:
                g.runs.append(env.gitopsd(state))
                _expect(g, self._applied(env.gitopsd_workload, probe), "change applied")

            def run_k(probe: int = probe) -> None:
                k.runs.append(env.kubectl_run(*self._cmd(APPLY)))
                _expect(k, self._applied(env.kubectl_workload, probe), "change applied")

            self._pair(rep, run_g, run_k)
            self.log(
                f"  4 rep {rep}: gitopsd {g.runs[-1].seconds:.2f}s, "
                f"kubectl {k.runs[-1].seconds:.2f}s ({len(indexes)} changed)"
            )
        return Scenario(
            4,
            "10% changed in a new commit",
            g,
            [k],
            [
                "each repetition changes a different 10% (ConfigMap data, Secret stringData, "
                "Service annotation, Deployment image tag) in one commit / in kubectl's tree"
            ],
        )

    def _applied(self, workload: Workload, index: int) -> bool:
        """Whether object `index` carries its current revision (checked on a ConfigMap)."""
        if workload.kind(index) != "ConfigMap":
            return True
        live = self.env.api(
            "GET",
            f"/api/v1/namespaces/{workload.namespace(index)}/configmaps/{workload.name(index)}",
        )
        return bool(live) and live["data"]["REVISION"] == str(workload.revisions.get(index, 0))

    # -- 5 ------------------------------------------------------------------------------

    def removed(self) -> Scenario:
        env, state = self.env, self._steady()
        prune = (*APPLY, "--prune", f"--applyset=applysets.bench.gitopsd.io/{APPLYSET}")
        g, k = Measure("gitopsd --once"), Measure("kubectl apply --server-side --prune --applyset")
        env.applyset_parent()
        n = env.gitopsd_workload.objects
        for rep in range(self.repeat):
            # Untimed: everything back, and kubectl's applyset current.
            back = env.gitopsd_workload.restore()
            if back:
                env.commit(back, "restore")
                env.gitopsd(state)
            env.write_kubectl(env.kubectl_workload.restore())
            env.kubectl_run(*self._cmd(prune), applyset=True)
            indexes = pick(n, 0.10, rep + 1)
            env.commit(env.gitopsd_workload.remove(indexes), f"remove 10% ({rep})")
            env.write_kubectl(env.kubectl_workload.remove(indexes))
            left = n - len(indexes)

            def run_g(left: int = left) -> None:
                g.runs.append(env.gitopsd(state))
                _expect(g, env.count_objects(env.gitopsd_workload) == left, "pruned")

            def run_k(left: int = left) -> None:
                k.runs.append(env.kubectl_run(*self._cmd(prune), applyset=True))
                _expect(k, env.count_objects(env.kubectl_workload) == left, "pruned")

            self._pair(rep, run_g, run_k)
            self.log(
                f"  5 rep {rep}: gitopsd {g.runs[-1].seconds:.2f}s, "
                f"kubectl {k.runs[-1].seconds:.2f}s ({len(indexes)} removed)"
            )
        return Scenario(
            5,
            "10% removed from Git",
            g,
            [k],
            [
                "kubectl 1.37 refuses `--prune -l` with `--server-side` ('--prune is in alpha and "
                "doesn't currently work on objects created by server-side apply'), so the peer is "
                "the ApplySet prune (alpha, KUBECTL_APPLYSET=true) with a cluster-scoped ApplySet "
                "custom resource as parent (a namespaced parent would need -n, which refuses "
                "objects in several namespaces)",
                "before each repetition, untimed: the removed objects are restored in both copies "
                "and synced (kubectl with the same applyset command, which labels every member)",
            ],
        )

    # -- 6 ------------------------------------------------------------------------------

    def remote_unchanged(self) -> Scenario:
        env = self.env
        rounds = max(self.repeat, 10)
        os.environ[PASSWORD_ENV] = env.password
        structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
        settings = SourceSettings(
            repo=env.git_url(),
            ref_kind=RefKind.BRANCH,
            ref="main",
            path="deploy",
            username=GIT_USER,
            password=SecretRef(env=PASSWORD_ENV),
        )
        source = GitSource("bench", settings, env.root / "source-state")
        source.fetch()
        clone = env.root / "git-clone"
        url = env.git_url().replace("http://", f"http://{GIT_USER}:{env.password}@")
        git_env = {**os.environ, **GIT_ENV}
        subprocess.run(["git", "clone", "-q", "--bare", url, str(clone)], check=True, env=git_env)
        g = Measure("GitSource.fetch() in-process")
        k = Measure("git ls-remote + git fetch")
        g_http: list[int] = []
        k_http: list[int] = []
        for rep in range(rounds):

            def run_g() -> None:
                env.server.clear_log()
                began = time.perf_counter()
                source.fetch()
                g.seconds.append(time.perf_counter() - began)
                g_http.append(len(env.server.log()))
                _expect(g, source.last_transfer is None, "nothing downloaded")

            def run_k() -> None:
                env.server.clear_log()
                began = time.perf_counter()
                for args in (["ls-remote", "origin", "refs/heads/main"], ["fetch", "-q", "origin"]):
                    subprocess.run(
                        ["git", "-C", str(clone), *args],
                        check=True,
                        env=git_env,
                        capture_output=True,
                    )
                k.seconds.append(time.perf_counter() - began)
                k_http.append(len(env.server.log()))

            self._pair(rep, run_g, run_k)
        scenario = Scenario(
            6,
            "remote unchanged",
            g,
            [k],
            [
                f"in-process GitSource.fetch() on a warm mirror vs `git ls-remote` + `git fetch` "
                f"subprocesses on a bare clone, both over smart HTTP with Basic auth; {rounds} "
                f"rounds; requests are HTTP requests to the Git server (median: gitopsd "
                f"{statistics.median(g_http):g}, git {statistics.median(k_http):g}); no API "
                "requests and no separate gitopsd process, so no RSS"
            ],
        )
        scenario.gitopsd.checks = sorted(set(g.checks))
        return scenario

    def _steady(self) -> Path:
        """gitopsd's state dir for the warm scenarios; a first sync if 1 did not run."""
        if self.steady is None:
            self.steady = self.states / "steady"
            for workload in (self.env.gitopsd_workload, self.env.kubectl_workload):
                self.env.reset(workload)
            self.env.gitopsd(self.steady)
            self.env.kubectl_run(*self._cmd(APPLY))
        return self.steady


def _expect(measure: Measure, condition: bool, what: str) -> None:
    if not condition and what not in measure.checks:
        measure.checks.append(what)


def summary(scenario: Scenario) -> dict[str, Any]:
    def block(m: Measure) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tool": m.tool,
            "seconds": [round(t, 4) for t in m.times()],
            "median_seconds": round(statistics.median(m.times()), 4),
        }
        if m.runs:
            verbs = sorted({v for r in m.runs for v in r.requests})
            out["requests_median"] = {
                v: statistics.median(r.requests.get(v, 0) for r in m.runs) for v in verbs
            }
            out["requests_per_run"] = [r.requests for r in m.runs]
            out["lists_by_resource_last_run"] = m.runs[-1].lists_by_resource
            out["peak_rss_mib"] = [round(r.peak_rss_mib, 1) for r in m.runs]
            out["cpu_seconds"] = [round(r.cpu_seconds, 3) for r in m.runs]
            out["median_cpu_seconds"] = round(statistics.median(r.cpu_seconds for r in m.runs), 3)
            out["median_server_cpu_seconds"] = round(
                statistics.median(r.server_cpu_seconds for r in m.runs), 3
            )
        out["failed_checks"] = m.checks
        return out

    g = block(scenario.gitopsd)
    peers = [block(p) for p in scenario.peers]
    for peer in peers:
        peer["ratio_gitopsd_over_peer"] = round(g["median_seconds"] / peer["median_seconds"], 3)
    variants = [block(v) for v in scenario.variants]
    for variant in variants:
        variant["ratio_over_first_peer"] = round(
            variant["median_seconds"] / peers[0]["median_seconds"], 3
        )
    return {
        "scenario": scenario.number,
        "title": scenario.title,
        "gitopsd": g,
        "peers": peers,
        "variants": variants,
        "notes": scenario.notes,
    }


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False)
