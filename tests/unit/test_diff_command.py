"""`gitopsd diff` with the source and the pass replaced: options, lock, exit codes, output.

The real fetch and pass run in tests/e2e/test_diff_*.py; here GitSource and preview_pass
are stand-ins, so what the command does around them is checked exactly.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gitopsd import cli, diffcommand
from gitopsd.config import TargetSettings
from gitopsd.errors import LockError, RefNotFoundError
from gitopsd.lock import StateLock
from gitopsd.model import ChangeSet, Plan, PlanStep, ResourceKey, Revision, SourceFile, StepKind
from gitopsd.passresult import ObjectPreview, PassOutcome, PassResult
from gitopsd.source.snapshot import Origin, Snapshot

COMMIT = "0123456789abcdef0123456789abcdef01234567"
KEY = ResourceKey("", "ConfigMap", "default", "app")
DIFF = "--- live/ConfigMap default/app\n+++ desired/ConfigMap default/app\n-  a: 1\n"


@dataclass
class Fakes:
    """What the stand-ins return, and what they were given."""

    changes: bool = True
    refusal: str | None = None
    fetch_error: Exception | None = None
    state_dirs: list[Path] = field(default_factory=list)
    refs: list[str | None] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    lock_free_during_pass: list[bool] = field(default_factory=list)
    config_state: Path | None = None


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch, config_file: Path) -> Fakes:
    fakes = Fakes(config_state=config_file.parent / "state")

    class FakeSource:
        def __init__(self, name: str, settings: object, state_dir: Path) -> None:
            fakes.state_dirs.append(state_dir)
            assert state_dir.is_dir()

        def snapshot(self, ref: str | None = None) -> Snapshot:
            fakes.refs.append(ref)
            if fakes.fetch_error is not None:
                raise fakes.fetch_error
            revision = Revision(COMMIT, ref or "refs/heads/main", "change")
            return Snapshot(revision, (), refusal=fakes.refusal)

    def fake_pass(target: TargetSettings, snapshot: Snapshot) -> tuple[PassResult, Any]:
        fakes.snapshots.append(snapshot)
        assert fakes.config_state is not None
        try:
            with StateLock(fakes.config_state) as lock:
                lock.acquire()
            fakes.lock_free_during_pass.append(True)
        except LockError:
            fakes.lock_free_during_pass.append(False)
        steps = (PlanStep(StepKind.DELETE, KEY, None, reason="not declared"),)
        result = PassResult(
            target=target.name,
            outcome=PassOutcome.WOULD_CHANGE if fakes.changes else PassOutcome.IN_SYNC,
            revision=snapshot.revision,
            changes=ChangeSet(),
            plan=Plan(steps=steps if fakes.changes else ()),
            error=None,
            started_at=time.time(),
            duration_seconds=0.0,
            previews=(ObjectPreview(KEY, DIFF),) if fakes.changes else (),
        )
        return result, {}

    monkeypatch.setattr(diffcommand, "GitSource", FakeSource)
    monkeypatch.setattr(diffcommand, "preview_pass", fake_pass)
    return fakes


def run(config_file: Path, *args: str) -> int:
    return cli.main(["diff", "--config", str(config_file), *args])


def test_text_output_and_exit_3_the_lock_released_before_the_pass(
    fakes: Fakes, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(config_file, "--target", "web", "--ref", "refs/pull/42/head") == cli.EXIT_CHANGES
    assert capsys.readouterr().out == DIFF
    assert fakes.refs == ["refs/pull/42/head"]
    assert fakes.state_dirs == [config_file.parent / "state"]
    assert fakes.lock_free_during_pass == [True]


def test_in_sync_exits_0_and_without_ref_previews_the_configured_one(
    fakes: Fakes, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fakes.changes = False
    assert run(config_file) == cli.EXIT_OK
    assert capsys.readouterr().out == ""
    assert fakes.refs == [None, None]  # both targets, each at its configured ref


def test_beside_a_lock_holder_fetches_into_a_scratch_state_dir(
    fakes: Fakes, config_file: Path
) -> None:
    with StateLock(config_file.parent / "state") as held:
        held.acquire()
        assert run(config_file, "--target", "web") == cli.EXIT_CHANGES
    (scratch,) = fakes.state_dirs
    assert scratch != config_file.parent / "state"
    assert not scratch.exists()  # removed once the revision was read


def test_a_refused_signature_is_previewed_and_exits_1(
    fakes: Fakes, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fakes.refusal = "target web, remote https://git.example.com/infra.git: commit 0123: unsigned"
    assert run(config_file, "--target", "web", "--ref", "feature", "--output", "json") == 1
    captured = capsys.readouterr()
    (target,) = json.loads(captured.out)["targets"]
    assert target["refusal"] == fakes.refusal and len(target["objects"]) == 1
    assert f"gitopsd: would be refused on merge: {fakes.refusal}\n" in captured.err


def test_a_failed_fetch_exits_1_naming_the_target_and_skips_its_pass(
    fakes: Fakes, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fakes.fetch_error = RefNotFoundError("target web, remote x: ref 'nope' not found")
    assert run(config_file, "--target", "web", "--ref", "nope", "--output", "markdown") == 1
    captured = capsys.readouterr()
    assert "gitopsd: target web, remote x: ref 'nope' not found" in captured.err
    assert "**Refused, nothing would be applied:**" in captured.out
    assert fakes.snapshots == []


def test_path_reads_the_directory_for_one_target(
    fakes: Fakes, config_file: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "app.yaml").write_text("kind: ConfigMap\n")
    assert run(config_file, "--target", "api", "--path", str(work)) == cli.EXIT_CHANGES
    (snapshot,) = fakes.snapshots
    assert snapshot.origin is Origin.PATH
    assert snapshot.files == (SourceFile("app.yaml", b"kind: ConfigMap\n"),)
    assert fakes.state_dirs == []  # no fetch, no lock


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--path", "."], "--path is the source of one target: add --target (web, api)"),
        (["--ref", "a", "--path", "."], "not allowed with argument --ref"),
        (["--ref", "a:b"], "contains ':'"),
        (["--ref", "feature..x"], "'..'"),
        (["--output", "html"], "invalid choice: 'html'"),
    ],
)
def test_usage_errors_exit_2(
    fakes: Fakes,
    config_file: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    try:
        code = run(config_file, *args)
    except SystemExit as exit:
        code = int(str(exit.code))
    assert code == cli.EXIT_USAGE
    assert message in capsys.readouterr().err
    assert fakes.refs == [] and fakes.snapshots == []
