"""Three real gitopsd replicas sharing nine targets through Leases on the real API server."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from gitopsd.clock import SYSTEM_CLOCK
from gitopsd.leases import assignment
from tests.daemon.receivers import Receiver, serving
from tests.e2e.conftest import Gitopsd, wait_for
from tests.e2e.replicas import FENCE_WINDOW, LEASE_DURATION, RETRY_PERIOD, Replicas
from tests.support.tcp_proxy import TcpProxy
from tests.support.tools import KUSTOMIZE, build_tool

NAMES = ("r0", "r1", "r2")


@pytest.fixture
def replicas(gitopsd: Gitopsd, api_client: object) -> Replicas:
    return Replicas(gitopsd, api_client, count=9)


def _started(replicas: Replicas, names: tuple[str, ...] = NAMES) -> dict[str, list[str]]:
    """Start `names` (the others are started already); once each of the three replicas holds
    three targets and all converged, who holds what."""
    for name in names:
        replicas.start(name)

    def balanced() -> dict[str, list[str]] | None:
        holders = replicas.holders()
        shares = {name: replicas.held_by(name) for name in NAMES}
        if set(holders.values()) == set(NAMES) and all(len(s) == 3 for s in shares.values()):
            return shares
        return None

    shares = wait_for(balanced, timeout=60)
    wait_for(replicas.converged, timeout=60)
    return shares


def test_three_replicas_share_nine_targets_and_no_object_is_written_twice(
    replicas: Replicas,
) -> None:
    shares = _started(replicas)
    for name in NAMES:  # /status agrees with the Leases
        status = wait_for(lambda n=name: replicas.status(n)["ha"], timeout=10)
        assert sorted(status["replicas"]) == list(NAMES)
        owned = sorted(t for t, s in status["targets"].items() if s["owned"])
        assert owned == sorted(shares[name])
        assert all(status["targets"][t]["holder"] == name for t in owned)
    metrics = replicas.metrics("r0")
    assert metrics["gitopsd_ha_live_replicas"] == {(): 3.0}
    held = metrics["gitopsd_lease_held"]
    assert {dict(k)["target"] for k, v in held.items() if v == 1.0} == set(shares["r0"])
    # Idle, Lease requests do not grow with the targets held: a list and a heartbeat update
    # per retry_period (renewing the three target Leases too would make five).
    began, first = time.monotonic(), replicas.lease_requests("r0")
    wait_for(lambda: replicas.lease_requests("r0") >= first + 20, timeout=60, every=0.5)
    rate = (replicas.lease_requests("r0") - first) / (time.monotonic() - began)
    assert rate < 2.5 / RETRY_PERIOD, rate
    writers: dict[str, set[str]] = {}
    for name in NAMES:
        for target, _, _ in replicas.writes(name):
            writers.setdefault(target, set()).add(name)
    assert all(len(w) == 1 for w in writers.values()), writers
    assert set(writers) == set(replicas.targets)  # every target created, by one replica
    for target, names in writers.items():  # and only after acquiring its Lease
        (writer,) = names
        assert any(e["target"] == target for e in replicas.events(writer, "lease_acquired"))


def test_sigkill_takeover_within_a_lease_duration_and_a_pass(replicas: Replicas) -> None:
    shares = _started(replicas)
    victim = replicas.processes["r2"]
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    killed = time.monotonic()
    orphans = shares["r2"]
    wait_for(lambda: all(replicas.holders()[t] in ("r0", "r1") for t in orphans), timeout=30)
    took = time.monotonic() - killed
    assert took < LEASE_DURATION + 2 * RETRY_PERIOD + 3.0, took
    replicas.drift(orphans[0], "drifted")
    wait_for(lambda: replicas.data(orphans[0]) == {"v": "1"}, timeout=15)
    # Bounded loads may move a target between the two survivors too: its Lease is free ("")
    # for a retry period between one releasing it and the other acquiring it.
    survivors = assignment(replicas.targets, NAMES[:2])
    wait_for(lambda: replicas.holders() == survivors, timeout=LEASE_DURATION)
    assert sorted(Counter(survivors.values()).values()) == [4, 5]


def test_sigterm_hands_over_within_one_retry_period(replicas: Replicas) -> None:
    shares = _started(replicas)
    leaving = replicas.processes["r1"]
    asked = time.time()
    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(30) == 0
    stopped = time.monotonic()
    wait_for(
        lambda: all(replicas.holders()[t] in ("r0", "r2") for t in shares["r1"]),
        timeout=LEASE_DURATION,
        every=0.1,
    )
    # A retry_period for the others' next round, plus their list and update on this busy
    # machine: well before the lease_duration that an expiry would take.
    assert time.monotonic() - stopped < RETRY_PERIOD + 3.0 < LEASE_DURATION
    released = {e["target"] for e in replicas.events("r1", "lease_released") if e["time"] >= asked}
    assert released == set(shares["r1"])


def test_a_paused_replica_is_fenced_and_does_not_write_after_resuming(
    replicas: Replicas,
) -> None:
    with serving(Receiver(SYSTEM_CLOCK)) as hook:
        replicas.notify = (
            f"notify:\n  - {{name: ops, type: webhook, url: '{hook.url}/ops', "
            "events: [lease_lost]}\n"
        )
        shares = _paused_and_resumed(replicas)

        def told() -> set[str]:  # the targets r0 said it lost, in webhook bodies
            bodies = [r.json() for r in list(hook.requests)]
            return {b["target"] for b in bodies if b["reason"].startswith("r0: ")}

        wait_for(lambda: told() >= set(shares["r0"]), timeout=15)
    assert {r.json()["event"] for r in hook.requests} == {"lease_lost"}


def _paused_and_resumed(replicas: Replicas) -> dict[str, list[str]]:
    """SIGSTOP the replica r0 until the others hold its targets, drift them, resume it:
    it writes nothing, journals each target lost and takes its share back; the shares."""
    shares = _started(replicas)
    paused = replicas.processes["r0"]
    paused.send_signal(signal.SIGSTOP)
    stopped_at = time.time()
    try:
        wait_for(
            lambda: all(replicas.holders()[t] in ("r1", "r2") for t in shares["r0"]),
            timeout=30,
        )
        # Drift, then resume at once: r0's passes are overdue and fire before the new
        # holders' next interval, so an unfenced r0 would be the one to write.
        for target in shares["r0"]:
            replicas.drift(target, "drifted")
    finally:
        paused.send_signal(signal.SIGCONT)
    wait_for(lambda: all(replicas.data(t) == {"v": "1"} for t in shares["r0"]), timeout=15)
    wait_for(
        lambda: {e["target"] for e in replicas.events("r0", "lease_lost")} >= set(shares["r0"]),
        timeout=15,
    )
    # It rejoins as a member: the others see its heartbeat again and hand targets back.
    wait_for(lambda: sorted(replicas.status("r1")["ha"]["replicas"]) == list(NAMES), timeout=20)
    wait_for(lambda: len(replicas.held_by("r0")) == 3, timeout=30)
    regained: dict[str, float] = {}
    for event in replicas.events("r0", "lease_acquired"):
        if event["time"] > stopped_at:
            regained.setdefault(event["target"], event["time"])
    for target, _, ended in replicas.writes("r0"):
        if target in shares["r0"] and ended > stopped_at:
            assert target in regained and regained[target] <= ended, (target, ended, regained)
    return shares


def test_a_joining_replica_takes_about_a_third_each_moved_once(replicas: Replicas) -> None:
    for name in NAMES[:2]:
        replicas.start(name)
    before = assignment(replicas.targets, NAMES[:2])
    wait_for(lambda: replicas.holders() == before, timeout=60)
    wait_for(replicas.converged, timeout=30)
    joined = time.time()
    replicas.start("r2")
    after = assignment(replicas.targets, NAMES)
    wait_for(lambda: replicas.holders() == after, timeout=60)
    moved = [t for t in replicas.targets if after[t] != before[t]]
    assert [t for t in moved if after[t] == "r2"] == replicas.held_by("r2")
    assert len(replicas.held_by("r2")) == 3 and len(moved) <= 4  # at most one cascade
    for target in moved:  # each handed over once: released by the old, taken by the new
        for holder, event in (
            (before[target], "lease_released"),
            (after[target], "lease_acquired"),
        ):
            times = [
                e["time"]
                for e in replicas.events(holder, event)
                if e["target"] == target and e["time"] >= joined
            ]
            assert len(times) == 1, (target, holder, event, times)


def test_a_webhook_at_a_replica_that_does_not_own_the_target_is_answered_202(
    replicas: Replicas,
) -> None:
    shares = _started(replicas)
    target = shares["r1"][0]
    # r0's view of the Leases may be a round behind the API server's.
    code, body = wait_for(
        lambda: (answer := replicas.webhook("r0", target))[1].endswith("r1\n") and answer,
        timeout=10,
    )
    assert (code, body.strip()) == (202, "not owner, owned by r1")
    code, body = replicas.webhook("r1", target)
    assert code == 202 and target in body  # the owner runs it


def test_two_concurrent_once_runs_reconcile_each_target_exactly_once(
    replicas: Replicas, tmp_path: Path
) -> None:
    # The runs must overlap: on a loaded machine one could finish (and release its Leases)
    # before the other started. Each target renders through a kustomize that waits for
    # `go`, so a run holds its Leases until both runs are done taking theirs: a run has
    # taken all it will once it renders (it takes them before any pass) or has exited.
    go, calls = tmp_path / "go", tmp_path / "calls"
    wrapper = tmp_path / "kustomize"
    wrapper.write_text(
        f"#!/bin/sh\necho $PPID >> {calls}\n"
        f"i=0; while [ ! -e {go} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n"
        f'exec {build_tool(KUSTOMIZE)} "$@"\n'
    )
    wrapper.chmod(0o755)
    replicas.gitopsd.remote.commit(
        {f"manifests/{t}/kustomization.yaml": "resources: [cm.yaml]\n" for t in replicas.targets}
    )
    tools = {"kustomize": str(wrapper)}
    runs = {name: replicas.once(name, tools=tools) for name in ("cron-a", "cron-b")}

    def rendering_or_done(run: subprocess.Popen[str]) -> bool:
        started = calls.read_text().split() if calls.exists() else []
        return run.poll() is not None or str(run.pid) in started

    wait_for(lambda: all(rendering_or_done(run) for run in runs.values()), timeout=60)
    go.touch()
    outputs = {name: run.communicate(timeout=120) for name, run in runs.items()}
    for name, run in runs.items():
        assert run.returncode == 0, outputs[name]
    assert replicas.converged()
    reconciled = Counter(row["target"] for name in runs for row in replicas.journal(name, "passes"))
    assert reconciled == Counter(replicas.targets), reconciled
    for name, (stdout, _) in outputs.items():
        ran = {row["target"] for row in replicas.journal(name, "passes")}
        other = next(n for n in runs if n != name)
        for target in set(replicas.targets) - ran:
            assert f"target {target}: skipped, its Lease is held by {other}" in stdout, stdout
    assert all(holder == "" for holder in replicas.holders().values())  # released at the end


def test_a_replica_cut_off_from_the_leases_stops_writing_and_is_taken_over(
    replicas: Replicas, tmp_path: Path
) -> None:
    kubeconfig = replicas.gitopsd.kubeconfig
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    upstream = urlsplit(server)
    proxy = TcpProxy((upstream.hostname or "127.0.0.1", upstream.port or 443))
    try:
        # r0 reaches the Leases through the proxy; its targets' cluster stays reachable, so
        # only the fence keeps it from writing once the proxy stops forwarding.
        behind = tmp_path / "lease-kubeconfig"
        behind.write_text(kubeconfig.read_text().replace(server, f"https://127.0.0.1:{proxy.port}"))
        replicas.start("r0", interval="1s", lease_kubeconfig=behind)  # first to see a drift
        shares = _started(replicas, NAMES[1:])
        proxy.cut()
        cut_at = time.time()
        wait_for(
            lambda: all(replicas.holders()[t] in ("r1", "r2") for t in shares["r0"]),
            timeout=LEASE_DURATION + 30,
        )
        for target in shares["r0"]:
            replicas.drift(target, "drifted")
        wait_for(lambda: all(replicas.data(t) == {"v": "1"} for t in shares["r0"]), timeout=20)
        late = [
            (t, start) for t, start, _ in replicas.writes("r0") if start > cut_at + FENCE_WINDOW
        ]
        assert late == [], late
        lost = {e["target"] for e in replicas.events("r0", "lease_lost")}
        assert lost >= set(shares["r0"])
    finally:
        proxy.close()
