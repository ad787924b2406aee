"""The command line with an in-memory runner: options, exit codes, lock, diff, history."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from gitopsd import cli
from gitopsd.errors import RemoteUnreachableError, RenderError
from gitopsd.journal import Journal
from gitopsd.lock import StateLock
from gitopsd.model import Action, ChangeSetEntry, DriftReport, FieldChange, FieldOwner
from gitopsd.passresult import PassOutcome
from tests.support.fake_runner import COMMIT, KEY, Script


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Script:
    script = Script()
    monkeypatch.setattr(cli, "runner_factory", lambda: script.factory)
    return script


def run(*args: str | Path) -> int:
    return cli.main([str(a) for a in args])


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        run("--version")
    assert caught.value.code == 0
    assert capsys.readouterr().out.strip() == "gitopsd 0.1.0"


def test_unknown_option_is_a_usage_error(config_file: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        run("--config", config_file, "--frobnicate")
    assert caught.value.code == cli.EXIT_USAGE


def test_config_typo_exits_2_with_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("targets:\n  - {name: web, repo: r, brnach: main}\n")
    assert run("--config", path, "--once") == cli.EXIT_USAGE
    assert "targets[0].brnach: unknown key; did you mean 'branch'?" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("outcomes", "code"),
    [
        ({}, cli.EXIT_OK),
        ({"web": PassOutcome.CONVERGED}, cli.EXIT_OK),
        ({"web": PassOutcome.FAILED}, cli.EXIT_FAILED),
        ({"web": PassOutcome.WOULD_CHANGE}, cli.EXIT_CHANGES),
        ({"web": PassOutcome.WOULD_CHANGE, "api": PassOutcome.FAILED}, cli.EXIT_FAILED),
    ],
)
def test_once_exit_codes(
    script: Script, config_file: Path, outcomes: dict[str, PassOutcome], code: int
) -> None:
    script.outcomes.update(outcomes)
    script.errors["web"] = RenderError("bad.yaml#0: kind is missing")
    assert run("--config", config_file, "--once") == code
    assert dict(script.calls) == {"web": 1, "api": 1}
    assert sorted(script.closed) == ["api", "web"]


def test_once_dry_run_asks_runner_not_to_write(script: Script, config_file: Path) -> None:
    assert run("--once", "--dry-run", "--config", config_file) == cli.EXIT_OK
    assert script.dry_runs == [True, True]


def test_failed_target_is_named_on_stderr(
    script: Script, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script.outcomes["api"] = PassOutcome.FAILED
    script.errors["api"] = RemoteUnreachableError("target api, remote r: did not answer")
    script.outcomes["web"] = PassOutcome.FAILED
    script.errors["web"] = RenderError("bad.yaml document 1: kind is missing")
    assert run("--config", config_file, "--once") == cli.EXIT_FAILED
    err = capsys.readouterr().err.splitlines()
    # Source and reconcile errors name their target already; it is not repeated.
    assert "gitopsd: target api, remote r: did not answer" in err
    assert "gitopsd: target web: bad.yaml document 1: kind is missing" in err


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (
            "tag: 1.10",
            "targets[0].tag: YAML reads the unquoted value as a number (1.1), not as text",
        ),
        ('semver: ">=foo"', "targets[0].semver: '>=foo' is not a semver range"),
        ("branch: main, path: ../../etc", "targets[0].path: '../../etc' is not a folder inside"),
        ("branch: 'a b'", "targets[0].branch: 'a b' contains ' '"),
    ],
)
def test_bad_ref_or_path_exits_2_before_any_pass(
    tmp_path: Path, script: Script, capsys: pytest.CaptureFixture[str], line: str, shown: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"state_dir: state\ntargets:\n  - {{name: web, repo: r, {line}}}\n")
    assert run("--config", path, "--once") == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"gitopsd: {path}: {shown}")
    assert err.count("\n") == 1
    assert dict(script.calls) == {}


def test_held_lock_exits_4_at_once(
    script: Script, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with StateLock(config_file.parent / "state") as lock:
        lock.acquire()
        started = time.monotonic()
        assert run("--config", config_file, "--once") == cli.EXIT_LOCKED
        assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert "another gitopsd" in err and "--wait-lock" in err
    assert not script.calls


def test_wait_lock_runs_once_the_lock_is_free(script: Script, config_file: Path) -> None:
    lock = StateLock(config_file.parent / "state")
    lock.acquire()
    threading.Timer(0.5, lock.release).start()
    assert run("--config", config_file, "--once", "--wait-lock") == cli.EXIT_OK
    assert dict(script.calls) == {"web": 1, "api": 1}


# `diff` (previews of any ref or a local directory): tests/unit/test_diff_command.py.


def test_unknown_target_suggests_the_closest(
    script: Script, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("diff", "--config", config_file, "--target", "wbe") == cli.EXIT_USAGE
    assert "no target named 'wbe'; did you mean 'web'?" in capsys.readouterr().err


def test_validate_reports_each_target(
    script: Script, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("validate", "--config", config_file) == cli.EXIT_OK
    assert capsys.readouterr().out.splitlines() == [
        "web: ok, 3 objects (plain)",
        "api: ok, 3 objects (plain)",
    ]
    script.errors["api"] = RenderError("deploy.yaml#1: metadata.name is missing")
    assert run("validate", "--config", config_file) == cli.EXIT_FAILED
    assert "api: deploy.yaml#1: metadata.name is missing" in capsys.readouterr().err


def test_subcommands_refuse_daemon_flags(config_file: Path) -> None:
    assert run("--once", "--config", config_file, "diff") == cli.EXIT_USAGE


def test_history_text_and_json(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = Journal.open(config_file.parent / "state")
    drift = DriftReport(
        KEY,
        missing=False,
        changes=(FieldChange("data.a", "2", "1"),),
        owners=(FieldOwner("kubectl-edit", "Update", "2024-01-01T00:00:00Z"),),
    )
    now = time.time()
    journal.record_pass(
        target="web",
        revision=COMMIT,
        outcome="converged",
        started_at=now,
        duration_seconds=0.5,
        writes=1,
        error=None,
        drifts=[(now, ChangeSetEntry(KEY, Action.CORRECTED, drift))],
    )
    journal.record_pass(
        target="api",
        revision=None,
        outcome="failed",
        started_at=now - 7200,
        duration_seconds=0.1,
        writes=0,
        error="remote did not answer",
        drifts=[],
    )
    journal.close()
    assert run("history", "--config", config_file, "--since", "1h") == cli.EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "web" in lines[0] and "pass converged" in lines[0] and COMMIT[:12] in lines[0]
    assert "corrected" in lines[1] and "ConfigMap default/app: data.a" in lines[1]
    assert "kubectl-edit" in lines[1]
    assert run("history", "--config", config_file, "--target", "api", "--json") == cli.EXIT_OK
    document = json.loads(capsys.readouterr().out)
    assert [p["error"] for p in document["passes"]] == ["remote did not answer"]
    assert document["drifts"] == []


def test_history_since_must_be_a_duration(config_file: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        run("history", "--config", config_file, "--since", "yesterday")
    assert caught.value.code == cli.EXIT_USAGE
