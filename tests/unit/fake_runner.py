"""An in-memory TargetRunner for the CLI and daemon unit tests: outcomes chosen by the test."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from gitopsd.config import Config, TargetSettings
from gitopsd.errors import GitopsdError
from gitopsd.journal import Journal
from gitopsd.model import Action, ChangeSet, ChangeSetEntry, DriftReport, ResourceKey, Revision
from gitopsd.passresult import ObjectPreview, PassOutcome, PassResult

COMMIT = "0123456789abcdef0123456789abcdef01234567"
KEY = ResourceKey("", "ConfigMap", "default", "app")


@dataclass
class Script:
    """What each target's passes return, and what the fakes saw."""

    outcomes: dict[str, PassOutcome] = field(default_factory=dict)
    errors: dict[str, GitopsdError] = field(default_factory=dict)
    pass_seconds: float = 0.0
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dry_runs: list[bool] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    passed: threading.Condition = field(default_factory=threading.Condition)

    def factory(self, config: Config, target: TargetSettings, journal: Journal) -> FakeRunner:
        return FakeRunner(self, target.name)

    def wait_calls(self, name: str, count: int, timeout: float = 10.0) -> bool:
        with self.passed:
            return self.passed.wait_for(lambda: self.calls[name] >= count, timeout)


class FakeRunner:
    def __init__(self, script: Script, name: str) -> None:
        self.script, self.name = script, name

    def run_pass(
        self,
        *,
        dry_run: bool = False,
        previews: bool = False,
        stop: threading.Event | None = None,
    ) -> PassResult:
        started = time.time()
        time.sleep(self.script.pass_seconds)
        outcome = self.script.outcomes.get(self.name, PassOutcome.IN_SYNC)
        error = self.script.errors.get(self.name) if outcome is PassOutcome.FAILED else None
        entries: tuple[ChangeSetEntry, ...] = ()
        if outcome in (PassOutcome.CONVERGED, PassOutcome.WOULD_CHANGE):
            entries = (ChangeSetEntry(KEY, Action.CORRECTED, DriftReport(KEY, missing=False)),)
        shown = (ObjectPreview(KEY, "-  a: 1\n+  a: 2\n"),) if previews and entries else ()
        result = PassResult(
            target=self.name, outcome=outcome, revision=Revision(COMMIT, "refs/heads/main"),
            changes=ChangeSet(entries), plan=None, error=error, started_at=started,
            duration_seconds=time.time() - started, previews=shown,
        )  # fmt: skip
        with self.script.passed:
            self.script.calls[self.name] += 1
            self.script.dry_runs.append(dry_run)
            self.script.passed.notify_all()
        return result

    def validate(self) -> int:
        if self.name in self.script.errors:
            raise self.script.errors[self.name]
        return 3

    def close(self) -> None:
        self.script.closed.append(self.name)
