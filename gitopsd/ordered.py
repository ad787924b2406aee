"""Carrying out `depends_on`: `--once` starts each target once its dependencies ended, and
the daemon holds a pass back while a dependency is not ready, then runs it when it is.

Independent targets still run concurrently; a target whose dependency is not ready is not
run and gets a WAITING result. What "ready" means is gitopsd.dependencies' (pure) call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import structlog

from gitopsd.config import TargetSettings
from gitopsd.dependencies import READY, blocked, dependents
from gitopsd.passresult import PassOutcome, PassResult

log = structlog.get_logger("gitopsd.daemon")

Run = Callable[[TargetSettings], PassResult | None]  # None: skipped (shutdown)


def run_in_order(
    targets: Sequence[TargetSettings], run: Run, *, workers: int = 4, gated: bool = True
) -> list[PassResult]:
    """One `run` per target, in dependency order; results in the order of `targets`.

    A dependency outside `targets` is not waited for. `gated=False` (a dry run, which
    writes nothing) orders nothing: every target runs at once."""
    names = {t.name for t in targets}
    needs = {t.name: [d for d in t.depends_on if d in names] if gated else [] for t in targets}
    ended: dict[str, PassResult | None] = {}
    pending = list(targets)
    running: dict[Future[PassResult | None], str] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while pending or running:
            while ready := [t for t in pending if all(d in ended for d in needs[t.name])]:
                for target in ready:  # a target left waiting may free its dependents
                    pending.remove(target)
                    why = blocked(needs[target.name], ended)
                    if why is not None:
                        ended[target.name] = PassResult.waiting(target.name, why, time.time())
                    else:
                        running[pool.submit(run, target)] = target.name
            if not running:  # only with a cycle, which load_config refuses
                for target in pending:
                    ended[target.name] = PassResult.waiting(target.name, "cycle", time.time())
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                ended[running.pop(future)] = future.result()
    found = (ended.get(t.name) for t in targets)
    return [result for result in found if result is not None]


class DependencyTracker:
    """The daemon's side of `depends_on`: each target's last pass and the passes running,
    so a pass can be held back (WAITING) and its dependents run once it ends ready."""

    def __init__(self, targets: Sequence[TargetSettings], *, gated: bool = True) -> None:
        self._lock = threading.Lock()
        self._gated = gated  # a dry-run daemon writes nothing: nothing to wait for
        self._needs: dict[str, tuple[str, ...]] = {}
        self._last: dict[str, PassResult | None] = {}
        self._running: set[str] = set()
        self.retarget(targets)

    def retarget(self, targets: Sequence[TargetSettings]) -> None:
        """Take in a reloaded configuration (its graph was checked by load_config)."""
        with self._lock:
            self._needs = {t.name: t.depends_on for t in targets}
            self._last = {name: r for name, r in self._last.items() if name in self._needs}

    def begin(self, name: str) -> str | None:
        """Why `name` must wait now (its pass does not run), or None: it runs, marked so."""
        with self._lock:
            why = blocked(self._needs.get(name, ()), self._last, self._running)
            if why is None or not self._gated:
                self._running.add(name)
                return None
        log.info("pass_waiting", target=name, reason=why)
        return why

    def end(self, result: PassResult) -> list[str]:
        """Record a finished (or waiting) pass; the dependents that wait for it and may run
        now that it ended ready."""
        name = result.target
        with self._lock:
            self._running.discard(name)
            self._last[name] = result
            if result.outcome not in READY:
                return []
            return [
                d
                for d in dependents(name, self._needs)
                if (last := self._last.get(d)) is not None and last.outcome is PassOutcome.WAITING
            ]
