"""An in-memory TargetRunner for the CLI and daemon tests: outcomes chosen by the test.

A test can hold a target's passes at a gate (`hold`) to act while a pass is in
progress, and read the order in which passes started and ended (`events`).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

from gitopsd.clock import SYSTEM_CLOCK, Clock
from gitopsd.config import Config, TargetSettings
from gitopsd.errors import GitopsdError
from gitopsd.journal import Journal
from gitopsd.model import Action, ChangeSet, ChangeSetEntry, DriftReport, ResourceKey, Revision
from gitopsd.passresult import ObjectPreview, PassOutcome, PassResult

COMMIT = "0123456789abcdef0123456789abcdef01234567"
KEY = ResourceKey("", "ConfigMap", "default", "app")
GATE_TIMEOUT = 30.0  # a held pass goes on by itself after this, so a failed test cannot hang


@dataclass
class Script:
    """What each target's passes return, and what the fakes saw."""

    outcomes: dict[str, PassOutcome] = field(default_factory=dict)
    errors: dict[str, GitopsdError] = field(default_factory=dict)
    clock: Clock = SYSTEM_CLOCK
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    started: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    events: list[tuple[str, str, int]] = field(default_factory=list)  # (start|end, target, n)
    dry_runs: list[bool] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    gates: dict[str, threading.Event] = field(default_factory=dict)
    passed: threading.Condition = field(default_factory=threading.Condition)

    def factory(self, config: Config, target: TargetSettings, journal: Journal) -> FakeRunner:
        return FakeRunner(self, target.name)

    def hold(self, name: str) -> threading.Event:
        """Passes of `name` that start from now on wait until the returned event is set."""
        gate = self.gates[name] = threading.Event()
        return gate

    def release_all(self) -> None:
        for gate in self.gates.values():
            gate.set()

    def wait_calls(self, name: str, count: int, timeout: float = 10.0) -> bool:
        """Whether `count` passes of `name` have ended within `timeout`."""
        with self.passed:
            return self.passed.wait_for(lambda: self.calls[name] >= count, timeout)

    def wait_started(self, name: str, count: int, timeout: float = 10.0) -> bool:
        """Whether `count` passes of `name` have started within `timeout`."""
        with self.passed:
            return self.passed.wait_for(lambda: self.started[name] >= count, timeout)

    def _note(self, event: str, name: str, counter: dict[str, int]) -> None:
        with self.passed:
            counter[name] += 1
            self.events.append((event, name, counter[name]))
            self.passed.notify_all()


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
        started = self.script.clock.time()
        self.script._note("start", self.name, self.script.started)
        gate = self.script.gates.get(self.name)
        if gate is not None:
            gate.wait(GATE_TIMEOUT)
        outcome = self.script.outcomes.get(self.name, PassOutcome.IN_SYNC)
        error = self.script.errors.get(self.name) if outcome is PassOutcome.FAILED else None
        entries: tuple[ChangeSetEntry, ...] = ()
        if outcome in (PassOutcome.CONVERGED, PassOutcome.WOULD_CHANGE):
            entries = (ChangeSetEntry(KEY, Action.CORRECTED, DriftReport(KEY, missing=False)),)
        shown = (ObjectPreview(KEY, "-  a: 1\n+  a: 2\n"),) if previews and entries else ()
        result = PassResult(
            target=self.name,
            outcome=outcome,
            revision=Revision(COMMIT, "refs/heads/main"),
            changes=ChangeSet(entries),
            plan=None,
            error=error,
            started_at=started,
            duration_seconds=self.script.clock.time() - started,
            previews=shown,
        )
        with self.script.passed:
            self.script.dry_runs.append(dry_run)
        self.script._note("end", self.name, self.script.calls)
        return result

    def validate(self) -> tuple[int, str]:
        if self.name in self.script.errors:
            raise self.script.errors[self.name]
        return 3, "plain"

    def close(self) -> None:
        self.script.closed.append(self.name)
