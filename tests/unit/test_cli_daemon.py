"""The daemon with an in-memory runner: scheduling, backoff, webhook, probes, reload, notify."""

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

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gitopsd.config import load_config
from gitopsd.daemon import Daemon
from gitopsd.errors import RemoteUnreachableError
from gitopsd.journal import Journal
from gitopsd.metrics import Metrics
from gitopsd.model import ChangeSet, Revision
from gitopsd.notify import Notifier
from gitopsd.passresult import PassOutcome, PassResult
from gitopsd.schedule import backoff_seconds
from gitopsd.status import StatusBoard, TargetStatus
from tests.support.git_remotes import free_port
from tests.unit.fake_runner import COMMIT, Script

SECRET = "hook-secret-value"


def config_text(port: int, *targets: str, interval: str = "1h") -> str:
    lines = "".join(
        f"  - {{name: {name}, repo: https://git.example.com/i.git, branch: main}}\n"
        for name in targets
    )
    return (
        textwrap.dedent(
            f"""\
        state_dir: state
        interval: {interval}
        stop_timeout: 5s
        http: {{port: {port}}}
        webhook: {{secret_file: hook-secret}}
        targets:
        """
        )
        + lines
    )


class Running:
    """A daemon serving in a background thread, and how to talk to it."""

    def __init__(self, daemon: Daemon, port: int, script: Script, path: Path) -> None:
        self.daemon, self.port, self.script, self.path = daemon, port, script, path
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

    def metrics_text(self) -> str:
        return self.daemon.metrics().decode()

    def post(self, path: str, headers: dict[str, str], body: bytes = b"{}") -> int:
        url = f"http://127.0.0.1:{self.port}{path}"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code


Start = Callable[..., Running]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    started: list[Running] = []

    def make(*targets: str, script: Script | None = None, interval: str = "1h") -> Running:
        script = script or Script()
        port = free_port()
        (tmp_path / "hook-secret").write_text(SECRET + "\n")
        path = tmp_path / "gitopsd.yaml"
        path.write_text(config_text(port, *targets, interval=interval))
        config = load_config(path)
        journal = Journal.open(config.state_dir)
        daemon = Daemon(config, runner_factory=script.factory, journal=journal)
        running = Running(daemon, port, script, path)
        running.thread.start()
        started.append(running)
        for name in targets:
            assert script.wait_calls(name, 1), f"no first pass for {name}"
        return running

    yield make
    for running in started:
        running.daemon.request_stop()
        running.thread.join(10)
        assert running.exit_code == 0


def test_first_pass_at_once_then_probes(start: Start) -> None:
    running = start("web", "api")
    assert running.get("/healthz") == (200, "ok\n")
    assert running.get("/readyz") == (200, "ready\n")
    code, body = running.get("/metrics")
    assert code == 200
    families = {f.name: f for f in text_string_to_metric_families(body)}
    passes = {s.labels["target"]: s.value for s in families["gitopsd_passes"].samples
              if s.name == "gitopsd_passes_total"}  # fmt: skip
    assert passes == {"web": 1.0, "api": 1.0}
    revisions = [s.labels for s in families["gitopsd_revision"].samples]
    assert {"target": "web", "revision": COMMIT} in revisions
    code, body = running.get("/status")
    assert code == 200 and '"in_sync": true' in body and '"revision": "' + COMMIT in body


def test_failed_target_makes_readyz_unready_and_backs_off(start: Start) -> None:
    script = Script(outcomes={"web": PassOutcome.FAILED})
    script.errors["web"] = RemoteUnreachableError("target web, remote r: did not answer")
    running = start("web", "api", script=script, interval="1s")
    assert script.wait_calls("web", 2)
    code, body = running.get("/readyz")
    assert code == 503 and "target web, remote r: did not answer" in body
    assert running.daemon.readiness() == ["target web, remote r: did not answer"]
    assert script.wait_calls("api", 4)  # the healthy target keeps its pace
    assert script.calls["web"] <= 3  # 1s, 2s, 4s... between attempts


def test_webhook_runs_a_pass_at_once(start: Start) -> None:
    running = start("web", "api")
    assert running.post("/hooks/sync?target=web", {"X-Gitopsd-Secret": SECRET}) == 202
    assert running.script.wait_calls("web", 2, timeout=5)
    body = b'{"ref": "refs/heads/main"}'
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert running.post("/hooks/sync", {"X-Hub-Signature-256": signature}, body) == 202
    assert running.script.wait_calls("web", 3, timeout=5)
    assert running.script.wait_calls("api", 2, timeout=5)


def test_webhook_refuses_bad_secret_and_unknown_target(start: Start) -> None:
    running = start("web")
    assert running.post("/hooks/sync?target=web", {"X-Gitopsd-Secret": "wrong"}) == 401
    assert running.post("/hooks/sync?target=web", {}) == 401
    assert running.post("/hooks/sync?target=nope", {"X-Gitopsd-Secret": SECRET}) == 404
    time.sleep(0.3)
    assert running.script.calls["web"] == 1


def test_webhook_during_a_pass_runs_again_after_it(start: Start) -> None:
    script = Script(pass_seconds=0.5)
    running = start("web", script=script)
    time.sleep(0.6)
    assert running.post("/hooks/sync?target=web", {"X-Gitopsd-Secret": SECRET}) == 202
    assert running.post("/hooks/sync?target=web", {"X-Gitopsd-Secret": SECRET}) == 202
    assert script.wait_calls("web", 2, timeout=5)


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


def test_target_removed_by_reload_during_its_pass(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    script = Script(pass_seconds=0.5)
    running = start("web", "api", script=script)
    board = running.daemon.board
    running.daemon.trigger("web")
    assert _eventually(lambda: getattr(board.get("web"), "running_since", None) is not None)
    good = running.path.read_text()
    running.path.write_text(good.replace("  - {name: web,", "  - {name: gone,"))
    assert running.daemon.reload() is True
    assert script.wait_calls("web", 2)  # the pass in progress finished...
    assert _eventually(lambda: "web" in script.closed)  # ...and its runner was closed
    assert set(running.daemon.status()["targets"]) == {"api", "gone"}
    gauges = [line for line in running.metrics_text().splitlines() if 'target="web"' in line]
    assert not [
        line
        for line in gauges
        if line.startswith(("gitopsd_revision", "gitopsd_target", "gitopsd_last"))
    ]
    assert not [r for r in caplog.records if r.exc_info], "a pass raised"


class _ReloadingBoard(StatusBoard):
    """A board whose next `get` of a target lets a reload run first, as if SIGHUP came then."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(metrics)
        self.reload_before: dict[str, Callable[[], object]] = {}

    def get(self, name: str) -> TargetStatus | None:
        reload = self.reload_before.pop(name, None)
        if reload is not None:
            reload()
        return super().get(name)


def test_target_removed_by_reload_as_its_pass_is_scheduled_again(
    start: Start, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gitopsd.daemon.StatusBoard", _ReloadingBoard)
    script = Script()
    running = start("web", "api", script=script)
    board = running.daemon.board
    assert isinstance(board, _ReloadingBoard)
    good = running.path.read_text()
    running.path.write_text(good.replace("  - {name: web,", "  - {name: gone,"))
    board.reload_before["web"] = running.daemon.reload
    running.daemon.trigger("web")
    assert _eventually(lambda: "web" in script.closed)
    assert _eventually(lambda: not board.reload_before and board.get("web") is None)
    running.daemon.trigger("api")  # the scheduler still runs passes
    assert script.wait_calls("api", 2)
    assert set(running.daemon.status()["targets"]) == {"api", "gone"}
    assert not [r for r in caplog.records if r.exc_info], "a pass raised"


def test_board_ignores_a_pass_of_a_forgotten_target() -> None:
    board = StatusBoard(Metrics())
    board.track("web", 60.0)
    board.started("web")
    board.forget("web")
    board.started("web")
    board.record(PassResult("web", PassOutcome.IN_SYNC, Revision(COMMIT, "refs/heads/main"),
                            ChangeSet(), None, None, time.time(), 0.1))  # fmt: skip
    assert board.as_dict(lambda _name: None) == {}
    assert b'target="web"' not in board.metrics.render()  # no pass counted, no gauge set


def _eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_seconds(n, 60, 300) for n in (1, 2, 3, 4, 10)] == [60, 120, 240, 300, 300]
    assert backoff_seconds(3, 600, 300) == 600  # never faster than the interval


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
    assert Notifier({}).enabled is False
    assert Notifier({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_seconds is None
