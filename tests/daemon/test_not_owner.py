"""With `ha:`, a pass stopped because the target moved to another replica is not a failure here."""

from __future__ import annotations

from pathlib import Path

from gitopsd.config import load_config
from gitopsd.daemon import Daemon
from gitopsd.errors import NotOwnerError, RenderError
from gitopsd.journal import Journal
from gitopsd.passresult import PassOutcome
from tests.daemon.test_daemon import Running, config_text
from tests.support.fake_runner import Script
from tests.support.git_remotes import free_port
from tests.support.waiting import wait_until


def test_a_pass_ended_by_a_lost_lease_leaves_the_replica_ready(tmp_path: Path) -> None:
    script = Script(
        outcomes={"web": PassOutcome.FAILED, "api": PassOutcome.FAILED},
        errors={
            "web": NotOwnerError("target web: this replica (a) is handing its Lease over"),
            "api": RenderError("api: bad manifest"),  # a real failure, for contrast
        },
    )
    port = free_port()
    (tmp_path / "hook-secret").write_text("secret\n")
    path = tmp_path / "gitopsd.yaml"
    path.write_text(config_text(port, "web", "api"))
    config = load_config(path)
    journal = Journal.open(config.state_dir)
    daemon = Daemon(config, runner_factory=script.factory, journal=journal)
    running = Running(daemon, port, script, path, daemon._clock)
    running.thread.start()
    try:
        assert script.wait_calls("web", 1) and script.wait_calls("api", 1)
        wait_until(lambda: daemon.backend.readiness(), "api failing", 5)
        reasons = daemon.backend.readiness()
        assert len(reasons) == 1 and "api" in reasons[0], reasons
        web = running.target("web")  # reset: the holder reports the target
        assert (web["last_pass"], web["last_error"], web["consecutive_failures"]) == (None, None, 0)
        assert 'gitopsd_passes_total{outcome="failed",target="web"}' not in running.metrics_text()
    finally:
        daemon.request_stop()
        running.thread.join(10)
        journal.close()
