"""The daemon in-process with an in-memory runner: scheduling, backoff, webhook, probes, reload.

Its scheduler, worker threads and HTTP listener are real; passes are fakes a
test can hold at a gate, and time that decides delays comes from a clock the
test controls, so delays and orderings are asserted exactly.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gitopsd.clock import SYSTEM_CLOCK, Clock, ManualClock
from gitopsd.config import load_config
from gitopsd.daemon import Daemon
from gitopsd.errors import RemoteUnreachableError, RenderError
from gitopsd.journal import Journal
from gitopsd.metrics import Metrics
from gitopsd.notify import Notifier
from gitopsd.passresult import PassOutcome, PassResult
from gitopsd.status import StatusBoard
from tests.support.fake_runner import COMMIT, Script
from tests.support.git_remotes import free_port
from tests.support.waiting import eventually

SECRET = "hook-secret-value"


def config_text(port: int, *targets: str, interval: str = "1h") -> str:
    return textwrap.dedent(
        f"""\
        state_dir: state
        interval: {interval}
        stop_timeout: 5s
        http: {{port: {port}}}
        webhook: {{secret_file: hook-secret}}
        targets:
        """
    ) + "".join(target_line(name) for name in targets)


def target_line(name: str) -> str:
    return f"  - {{name: {name}, repo: https://git.example.com/i.git, branch: main}}\n"


class Running:
    """A daemon serving in a background thread, and how to talk to it."""

    def __init__(self, daemon: Daemon, port: int, script: Script, path: Path, clock: Clock):
        self.daemon, self.port, self.script, self.path = daemon, port, script, path
        self.clock = clock
        self.exit_code: int | None = None
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        self.exit_code = self.daemon.run()

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def post(self, path: str, headers: dict[str, str], body: bytes = b"{}") -> int:
        url = f"http://127.0.0.1:{self.port}{path}"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def target(self, name: str) -> dict[str, Any]:
        entry: dict[str, Any] = self.daemon.backend.status()["targets"][name]
        return entry

    def next_run_in(self, name: str) -> float | None:
        """Seconds from the clock's now to the target's next pass."""
        at = self.target(name)["next_run_at"]
        return None if at is None else at - self.clock.time()

    def metrics_text(self) -> str:
        return self.daemon.backend.metrics().decode()


Start = Callable[..., Running]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    started: list[Running] = []

    def make(
        *targets: str,
        script: Script | None = None,
        interval: str = "1h",
        clock: Clock = SYSTEM_CLOCK,
        board: StatusBoard | None = None,
    ) -> Running:
        script = script or Script(clock=clock)
        port = free_port()
        (tmp_path / "hook-secret").write_text(SECRET + "\n")
        path = tmp_path / "gitopsd.yaml"
        path.write_text(config_text(port, *targets, interval=interval))
        config = load_config(path)
        journal = Journal.open(config.state_dir)
        daemon = Daemon(
            config, runner_factory=script.factory, journal=journal, board=board, clock=clock
        )
        running = Running(daemon, port, script, path, clock)
        running.thread.start()
        started.append(running)
        for name in targets:
            assert script.wait_calls(name, 1), f"no first pass for {name}"
        return running

    yield make
    for running in started:
        running.script.release_all()  # a held pass would outlive stop_timeout: os._exit
        running.daemon.request_stop()
        running.thread.join(10)
        assert running.exit_code == 0


def _eventually(condition: Callable[[], object], timeout: float = 5.0) -> bool:
    return eventually(condition, timeout)


def test_first_pass_at_once_then_probes(start: Start) -> None:
    running = start("web", "api")
    assert running.get("/healthz") == (200, "ok\n")
    assert running.get("/readyz") == (200, "ready\n")
    code, body = running.get("/metrics")
    assert code == 200
    families = {f.name: f for f in text_string_to_metric_families(body)}
    passes = {
        s.labels["target"]: s.value
        for s in families["gitopsd_passes"].samples
        if s.name == "gitopsd_passes_total"
    }
    assert passes == {"web": 1.0, "api": 1.0}
    revisions = [s.labels for s in families["gitopsd_revision"].samples]
    assert {"target": "web", "revision": COMMIT} in revisions
    code, body = running.get("/status")
    assert code == 200 and '"in_sync": true' in body and '"revision": "' + COMMIT in body


def test_retryable_failures_back_off_doubling_to_the_cap(start: Start) -> None:
    # Frozen at a whole second: every delay the daemon asks for is exact, and lies in the
    # real future, so no retry runs unless the test triggers it.
    clock = ManualClock(float(int(time.time())))
    script = Script(outcomes={"web": PassOutcome.FAILED}, clock=clock)
    script.errors["web"] = RemoteUnreachableError("target web, remote r: did not answer")
    running = start("web", "api", script=script, interval="60s", clock=clock)
    for attempt, delay in enumerate([60.0, 120.0, 240.0, 300.0, 300.0], start=1):
        if attempt > 1:
            running.daemon.trigger("web")  # the retry, run now instead of after the delay
        assert _eventually(lambda n=attempt: running.target("web")["consecutive_failures"] == n)
        assert _eventually(lambda d=delay: running.next_run_in("web") == d), (
            attempt,
            running.next_run_in("web"),
        )
    code, body = running.get("/readyz")
    assert code == 503 and body == "target web, remote r: did not answer\n"
    # The healthy target keeps its interval (plus jitter of up to 10%).
    assert 60.0 <= (running.next_run_in("api") or 0.0) <= 66.0
    assert script.calls["api"] == 1
    # A failure a retry cannot fix (here a render error) waits for the interval instead.
    script.errors["web"] = RenderError("bad.yaml#0: kind is missing")
    running.daemon.trigger("web")
    assert _eventually(lambda: running.target("web")["consecutive_failures"] == 6)
    assert _eventually(lambda: 60.0 <= (running.next_run_in("web") or 0.0) <= 66.0)


def test_webhook_runs_a_pass_at_once(start: Start) -> None:
    running = start("web", "api")
    assert running.post("/hooks/sync?target=web", {"X-Gitopsd-Secret": SECRET}) == 202
    assert running.script.wait_calls("web", 2, timeout=5)
    body = b'{"ref": "refs/heads/main"}'
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert running.post("/hooks/sync", {"X-Hub-Signature-256": signature}, body) == 202
    assert running.script.wait_calls("web", 3, timeout=5)
    assert running.script.wait_calls("api", 2, timeout=5)


def test_webhook_refuses_bad_secret_and_unknown_target(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = start("web")
    backend, asked = running.daemon.backend, []
    trigger = backend.trigger
    monkeypatch.setattr(backend, "trigger", lambda target: asked.append(target) or trigger(target))
    planned = running.target("web")["next_run_at"]
    assert running.post("/hooks/sync?target=web", {"X-Gitopsd-Secret": "wrong"}) == 401
    assert running.post("/hooks/sync?target=web", {}) == 401
    # The listener answers after it triggers, so nothing can be under way unseen.
    assert asked == []
    assert running.post("/hooks/sync?target=nope", {"X-Gitopsd-Secret": SECRET}) == 404
    assert asked == ["nope"]
    # A trigger moves the next pass to now before it returns; this one moved nothing.
    assert running.target("web")["next_run_at"] == planned
    assert running.script.calls["web"] == 1


def test_webhook_during_a_pass_runs_again_after_it(start: Start) -> None:
    script = Script()
    running = start("web", script=script)
    gate = script.hold("web")
    hook = {"X-Gitopsd-Secret": SECRET}
    assert running.post("/hooks/sync?target=web", hook) == 202
    assert script.wait_started("web", 2)  # the second pass is in progress, held at the gate
    assert running.post("/hooks/sync?target=web", hook) == 202
    assert running.post("/hooks/sync?target=web", hook) == 202
    assert script.events[-1] == ("start", "web", 2)  # both arrived during the second pass
    gate.set()
    assert script.wait_calls("web", 3)
    assert script.events[:5] == [
        ("start", "web", 1),
        ("end", "web", 1),
        ("start", "web", 2),
        ("end", "web", 2),
        ("start", "web", 3),
    ]


def test_reload_adding_targets_while_a_pass_hangs_runs_them_at_once(start: Start) -> None:
    script = Script()
    running = start("web", script=script)
    script.hold("web")
    running.daemon.trigger("web")
    assert script.wait_started("web", 2)  # hangs until the test ends
    added = ["a1", "a2", "a3", "a4", "a5"]
    for name in added:
        script.hold(name)  # their passes stay in progress too: each needs a worker of its own
    running.path.write_text(running.path.read_text() + "".join(map(target_line, added)))
    running.daemon.request_reload()  # what SIGHUP does
    for name in added:
        assert script.wait_started(name, 1), f"{name} waited behind the passes in progress"
    assert script.calls["web"] == 1


def test_reload_keeps_old_config_when_new_is_broken(start: Start) -> None:
    running = start("web")
    good = running.path.read_text()
    running.path.write_text(good.replace("branch: main", "brnch: main"))
    assert running.daemon.reload() is False
    assert running.daemon.config.target("web")
    for broken in ('semver: ">=foo"', "tag: 1.10", "branch: main, path: ../../etc"):
        running.path.write_text(good.replace("branch: main", broken))
        assert running.daemon.reload() is False, broken
        assert running.daemon.config.target("web").source.ref == "main"
    running.path.write_text(good + "  - {name: api, repo: https://h/i.git, branch: main}\n")
    assert running.daemon.reload() is True
    assert running.script.wait_calls("api", 1)
    assert running.script.calls["web"] == 1  # unchanged target: not restarted


def test_reload_with_new_settings_during_a_pass_runs_them_right_after_it(start: Start) -> None:
    script = Script()
    running = start("web", script=script)
    gate = script.hold("web")
    running.daemon.trigger("web")
    assert script.wait_started("web", 2)
    running.path.write_text(running.path.read_text().replace("i.git", "j.git"))
    assert running.daemon.reload() is True
    assert script.closed == []  # the pass in progress keeps its runner
    gate.set()
    assert script.wait_calls("web", 3)  # at once with the new runner, not after an hour
    assert script.closed == ["web"]
    assert script.events[3:5] == [("end", "web", 2), ("start", "web", 3)]


def _gauges_of(running: Running, target: str) -> list[str]:
    return [
        line
        for line in running.metrics_text().splitlines()
        if f'target="{target}"' in line
        and line.startswith(("gitopsd_revision", "gitopsd_target", "gitopsd_last"))
    ]


def test_target_removed_by_reload_during_its_pass(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    script = Script()
    running = start("web", "api", script=script)
    gate = script.hold("web")
    running.daemon.trigger("web")
    assert script.wait_started("web", 2)
    assert running.target("web")["running"] is True
    good = running.path.read_text()
    running.path.write_text(good.replace("  - {name: web,", "  - {name: gone,"))
    assert running.daemon.reload() is True
    assert "web" not in script.closed  # the pass in progress keeps its runner...
    gate.set()
    assert script.wait_calls("web", 2)
    assert _eventually(lambda: "web" in script.closed)  # ...and closes it when it ends
    assert set(running.daemon.backend.status()["targets"]) == {"api", "gone"}
    assert _gauges_of(running, "web") == []
    assert not [r for r in caplog.records if r.exc_info], "a pass raised"


class _ReloadingBoard(StatusBoard):
    """A board that lets a reload run right after it records a pass, as if SIGHUP came then."""

    def __init__(self) -> None:
        super().__init__(Metrics())
        self.reload_after: dict[str, Callable[[], object]] = {}

    def record(self, result: PassResult) -> None:
        super().record(result)
        reload = self.reload_after.pop(result.target, None)
        if reload is not None:
            reload()


def test_target_removed_by_reload_as_its_pass_is_scheduled_again(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    script, board = Script(), _ReloadingBoard()
    running = start("web", "api", script=script, board=board)
    good = running.path.read_text()
    running.path.write_text(good.replace("  - {name: web,", "  - {name: gone,"))
    board.reload_after["web"] = running.daemon.reload
    running.daemon.trigger("web")
    assert _eventually(lambda: "web" in script.closed)
    assert not board.reload_after and board.get("web") is None
    running.daemon.trigger("api")  # the scheduler still runs passes
    assert script.wait_calls("api", 2)
    assert set(running.daemon.backend.status()["targets"]) == {"api", "gone"}
    assert not [r for r in caplog.records if r.exc_info], "a pass raised"


def test_notifier_sends_datagrams(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "3000000"})
        assert notifier.watchdog_seconds == 1.5
        notifier.ready("2 targets")
        notifier.watchdog()
        assert server.recv(1024) == b"READY=1\nSTATUS=2 targets"
        assert server.recv(1024) == b"WATCHDOG=1"
    Notifier({}).ready()  # not under systemd: nothing to send to, and no error
    assert Notifier({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_seconds is None
