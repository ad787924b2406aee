"""The daemon: lifecycle, signals, reload and watchdog, around one scheduled job per target.

This is the only module that imports APScheduler. Each target's passes run on
a worker of its own, so a hung pass holds up only its target; the main thread
waits for signals, reloads the configuration and pings systemd's watchdog
while the scheduler is healthy. The rules (what runs when) are in schedule.py,
the answers to HTTP probes in backend.py.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from gitopsd import __version__, logs
from gitopsd.backend import Backend
from gitopsd.clock import SYSTEM_CLOCK, Clock
from gitopsd.config import Config, TargetSettings, load_config
from gitopsd.errors import ConfigError, GitopsdError, NotOwnerError
from gitopsd.metrics import Metrics
from gitopsd.notifications import Event, lease_lost_event
from gitopsd.notify import Notifier
from gitopsd.ordered import DependencyTracker
from gitopsd.passresult import PassResult
from gitopsd.retention import JournalPruner
from gitopsd.schedule import RunnerFactory, Slot, TargetEntry, plan_reload
from gitopsd.sinks import Outbox, SinkSpec, read_specs
from gitopsd.status import StatusBoard

if TYPE_CHECKING:
    from gitopsd.coordinator import Coordinator
    from gitopsd.http import HttpListener
    from gitopsd.journal import Journal
    from gitopsd.watching import WatchHub

log = structlog.get_logger(__name__)

_TICK = 5.0  # how often the main thread looks at the scheduler without a watchdog


class _Jobs:
    """APScheduler behind a few verbs: one job and one worker per target, times from `clock`."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._workers: dict[str, ThreadPoolExecutor] = {}

    def put(self, name: str, run: Callable[[str], None], interval: float) -> None:
        """(Re)schedule `run(name)` every `interval` seconds, the first time now."""
        alias = f"target:{name}"
        if name not in self._workers:
            self._workers[name] = ThreadPoolExecutor(max_workers=1)
            self._scheduler.add_executor(self._workers[name], alias=alias)
        self._scheduler.add_job(
            run,
            "interval",
            args=[name],
            id=name,
            name=f"pass {name}",
            executor=alias,
            seconds=interval,
            jitter=min(interval * 0.1, 30.0),  # spread targets so they do not hit Git at once
            next_run_time=self._at(0.0),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            replace_existing=True,
        )

    def drop(self, name: str) -> None:
        """Unschedule `name`; a pass it runs finishes on its worker, which then ends."""
        with contextlib.suppress(JobLookupError):  # never scheduled, or already gone
            self._scheduler.remove_job(name)
        worker = self._workers.pop(name, None)
        if worker is not None:
            self._scheduler.remove_executor(f"target:{name}", shutdown=False)
            worker.shutdown(wait=False)

    def run_in(self, name: str, delay: float) -> None:
        with contextlib.suppress(JobLookupError):  # removed by a reload meanwhile
            self._scheduler.modify_job(name, next_run_time=self._at(delay))

    def next_run_at(self, name: str) -> float | None:
        job = self._scheduler.get_job(name)
        when = job.next_run_time if job is not None else None
        return when.timestamp() if when is not None else None

    def alive(self) -> bool:
        # APScheduler exposes no public liveness check; its thread attribute is the truth.
        thread = getattr(self._scheduler, "_thread", None)
        return bool(self._scheduler.running and thread is not None and thread.is_alive())

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        self._scheduler.shutdown(wait=False)  # passes running are waited for by the daemon

    def _at(self, delay: float) -> datetime:
        return datetime.fromtimestamp(self._clock.time() + delay, UTC)


class Daemon:
    """Runs every target on its interval until SIGTERM or SIGINT."""

    def __init__(
        self,
        config: Config,
        *,
        runner_factory: RunnerFactory,
        journal: Journal,
        board: StatusBoard | None = None,
        notifier: Notifier | None = None,
        clock: Clock = SYSTEM_CLOCK,
        dry_run: bool = False,
        log_level_fixed: bool = False,
        watches: WatchHub | None = None,
    ) -> None:
        self.config = config
        self.board = board if board is not None else StatusBoard(Metrics(), clock)
        self.backend = Backend(
            self.board, self, config_path=config.path, dry_run=dry_run, journal=journal
        )
        self._factory = runner_factory
        self._journal = journal
        self._notifier = notifier or Notifier()
        self._clock = clock
        self._dry_run = dry_run
        self._log_level_fixed = log_level_fixed
        # Event-triggered passes: a drift seen by a watch asks for its target's pass.
        self._watches = watches
        if watches is not None:
            watches.attach(self.trigger, self.board.metrics.registry, self.publish)
            self.backend.watches = watches
        self._jobs = _Jobs(clock)
        self._dependencies = DependencyTracker(config.targets, gated=not dry_run)
        self.backend.require_healthy = _requires_healthy(config)
        self._lock = threading.Lock()  # guards _entries (each entry guards itself)
        self._entries: dict[str, TargetEntry] = {}  # kept when removed: a pass may still run
        self._wake = threading.Event()
        self._halt = threading.Event()  # set at shutdown: passes end after writes in flight
        self._stop_requested = threading.Event()
        self._reload_requested = threading.Event()
        self._stopping = threading.Event()
        self.outbox = Outbox((), config, self.board.metrics, clock)  # the real one at run()
        self._ha: Coordinator | None = None  # with `ha:`: which targets this replica holds

    # -- lifecycle -------------------------------------------------------------

    def run(self) -> int:
        """Serve until asked to stop; the exit code (0)."""
        self.backend.secret = self._read_secret(self.config)
        self.outbox = Outbox(read_specs(self.config), self.config, self.board.metrics, self._clock)
        self.outbox.start()
        pruner = JournalPruner(self._journal, self.config.journal_retention_seconds, self._clock)
        pruner.start()  # in its own thread: passes wait for one small batch at most
        listener = self._start_http()  # a port in use fails the start before any pass
        self._start_ha()
        self._install_signals()
        for target in self.config.targets:
            self._start_target(target, self.config)
        self._jobs.start()
        self._notifier.ready(self.board.summary())
        log.info("daemon_started", version=__version__, targets=len(self.config.targets))
        try:
            self._main_loop()
        finally:
            pruner.stop()
            if listener is not None:
                listener.stop()
        return self._shutdown()

    def _main_loop(self) -> None:
        tick = min(_TICK, self._notifier.watchdog_seconds or _TICK)
        while not self._stop_requested.is_set():
            # Real time, not the clock: systemd counts the watchdog in real seconds.
            self._wake.wait(tick)
            self._wake.clear()
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self.reload()
            if self.backend.healthy():
                self._notifier.watchdog()
                self._notifier.status(self.board.summary())

    def _shutdown(self) -> int:
        log.info("daemon_stopping")
        self._notifier.stopping()
        self._stopping.set()
        self._jobs.stop()  # no new passes
        self._halt.set()  # passes running finish their writes in flight, then end
        deadline = self._clock.monotonic() + self.config.stop_timeout_seconds
        entries = self._all_entries()
        unfinished = [e.name for e in entries if not e.stop(deadline - self._clock.monotonic())]
        if unfinished:
            # A write hung past stop_timeout: the process must still end in bounded time.
            # Each object write is atomic; the pass's inventory update may be lost, so
            # this is reported as a failure.
            log.error("stop_timeout_passes_abandoned", targets=unfinished)
            os._exit(1)
        if self._ha is not None:  # passes are over: hand the targets over at once
            self._ha.stop()
            self._ha.release_all()
        for entry in entries:
            slot = entry.slot
            if slot is not None:
                slot.close()
        self.outbox.close()
        if self._watches is not None:
            self._watches.close()
        log.info("daemon_stopped")
        return 0

    def request_stop(self) -> None:
        self._stop_requested.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_requested.set()
        self._wake.set()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # embedded (tests): the owner calls request_stop() and request_reload()

        def on_stop(signum: int, frame: FrameType | None) -> None:
            self.request_stop()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self.request_reload()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    def _start_ha(self) -> None:
        """With `ha:`, passes run only on targets whose Lease this replica holds."""
        if self.config.ha is None:
            return
        from gitopsd.replicas import fenced_factory, open_coordinator

        def busy(name: str) -> bool:
            with self._lock:
                entry = self._entries.get(name)
            return entry is not None and entry.busy

        def acquired(name: str) -> None:
            # Not scheduled yet or removed by a reload; or lost again since (a slow round).
            with contextlib.suppress(KeyError, NotOwnerError):
                self.trigger(name)

        identity = self.config.ha.identity

        def lost(name: str, reason: str) -> None:
            self.publish(lease_lost_event(name, self._clock.time(), identity, reason))

        self._ha = open_coordinator(
            self.config.ha,
            (t.name for t in self.config.targets),
            self._journal,
            registry=self.board.metrics.registry,
            on_acquired=acquired,
            busy=busy,
            on_lost=lost,
            clock=self._clock,
        )
        self._factory = fenced_factory(self._factory, self._ha)
        self.backend.ha = self._ha
        self._ha.start()

    def _start_http(self) -> HttpListener | None:
        if self.config.http is None:
            return None
        from gitopsd.http import HttpListener

        listener = HttpListener(self.backend, self.config.http.address, self.config.http.port)
        listener.start()
        return listener

    # -- targets and their passes ----------------------------------------------

    def _start_target(self, target: TargetSettings, config: Config) -> None:
        slot = Slot(target, config)
        self.board.track(target.name, slot.interval)
        with self._lock:
            entry = self._entries.get(target.name)
            if entry is None:
                move = functools.partial(self._move, target.name)
                entry = self._entries[target.name] = TargetEntry(target.name, move)
        idle = entry.assign(slot)  # a pass on the old slot closes it and runs again at once
        if idle is not None:
            idle.close()
        self._jobs.put(target.name, self._run_pass, slot.interval)

    def _remove_target(self, name: str) -> None:
        self._jobs.drop(name)
        with self._lock:
            entry = self._entries.get(name)
        idle = entry.assign(None) if entry is not None else None
        if idle is not None:
            idle.close()  # idle: close now; a running pass closes it when it ends
        self.board.forget(name)

    def _move(self, name: str, delay: float) -> None:
        if not self._stopping.is_set():
            self._jobs.run_in(name, delay)

    def _run_pass(self, name: str) -> None:
        with self._lock:
            entry = self._entries.get(name)
        if self._ha is not None and not self._ha.owns(name):
            return  # held by another replica, or by none yet (acquiring it triggers a pass)
        slot = entry.begin() if entry is not None else None
        if entry is None or slot is None:
            return
        self.board.started(name)
        waiting = self._dependencies.begin(name)  # depends_on: a dependency not ready yet
        if waiting is None:
            result = self._pass_with(name, slot)
        else:
            result = PassResult.waiting(name, waiting, self._clock.time())
        if isinstance(result.error, NotOwnerError):  # `ha:`: moved mid-pass; the holder reports
            self.board.forget(name)
            self.board.track(name, slot.interval)
        else:
            change = self.board.record(result)
            self.outbox.publish(result, change, dry_run=self._dry_run)  # queued, never sent here
        retired = entry.finish(slot, result, self.config.backoff_max_seconds)
        if retired is not None:
            retired.close()
        for dependent in self._dependencies.end(result):  # they waited for this one
            # Removed by a reload meanwhile, or (with `ha:`) now held by another replica.
            with contextlib.suppress(KeyError, NotOwnerError):
                self.trigger(dependent)

    def _pass_with(self, name: str, slot: Slot) -> PassResult:
        started = self._clock.time()
        try:
            runner = slot.runner_for(self._factory, self._journal)
            return runner.run_pass(dry_run=self._dry_run, stop=self._halt)
        except Exception as exc:
            if not isinstance(exc, GitopsdError):  # a bug must not end the target's schedule
                log.exception("pass_crashed", target=name)
            duration = self._clock.time() - started
            return PassResult.failed(name, _as_gitopsd_error(exc), started, duration)

    def _all_entries(self) -> list[TargetEntry]:
        with self._lock:
            return list(self._entries.values())

    # -- reload ----------------------------------------------------------------

    def reload(self) -> bool:
        """Load the configuration file again; keep the old one when the new one is refused."""
        old = self.config
        try:
            new = load_config(old.path)
            secret = self._read_secret(new)
            specs = read_specs(new)
            if new.state_dir != old.state_dir:
                raise ConfigError(f"{new.path}: state_dir: cannot change without a restart")
        except ConfigError as exc:
            log.error("config_reload_refused", error=str(exc), keeping="the running configuration")
            return False
        if new.http != old.http:
            log.warning("config_reload_http_needs_restart")
        if new.ha != old.ha:
            log.warning("config_reload_ha_needs_restart")
        plan = plan_reload(old, new)
        for name in plan.removed:
            self._remove_target(name)
        started = [t for t in new.targets if t.name in plan.restarted + plan.added]
        for target in started:
            self._start_target(target, new)
        self.config, self.backend.secret = new, secret
        self._dependencies.retarget(new.targets)
        self.backend.require_healthy = _requires_healthy(new)
        if self._ha is not None:
            self._ha.set_targets(t.name for t in new.targets)
        self._renew_outbox(specs, new)
        if not self._log_level_fixed:
            logs.set_level(new.log_level)
        changed = [*plan.removed, *(t.name for t in started)]
        log.info("config_reloaded", targets=[t.name for t in new.targets], changed=changed)
        return True

    def _renew_outbox(self, specs: tuple[SinkSpec, ...], config: Config) -> None:
        """New sinks when their settings or secrets changed; otherwise the queues live on."""
        if specs == self.outbox.specs:
            self.outbox.retarget(config)
            return
        old, self.outbox = self.outbox, Outbox(specs, config, self.board.metrics, self._clock)
        self.outbox.start()
        old.close()

    def _read_secret(self, config: Config) -> str | None:
        return config.webhook.secret.read() if config.webhook is not None else None

    # -- the schedule, as the backend sees it ----------------------------------

    def alive(self) -> bool:
        return self._jobs.alive()

    def stopping(self) -> bool:
        return self._stopping.is_set()

    def next_run_at(self, name: str) -> float | None:
        return self._jobs.next_run_at(name)

    def publish(self, event: Event) -> None:
        """Queue, for the sinks of the configuration in force, an event no pass produced."""
        self.outbox.publish_event(event)

    def trigger(self, target: str | None) -> list[str]:
        """Run `target` (every target when None) as soon as possible; KeyError if unknown."""
        configured = {e.name: e for e in self._all_entries() if e.slot is not None}
        names = [target] if target is not None else list(configured)
        if any(name not in configured for name in names):
            raise KeyError(target)
        if self._ha is not None:
            names = self._ha.owned(names, single=target is not None)  # NotOwnerError if single
        for name in names:
            configured[name].request()  # now, or right after the pass in progress
        return names


def _requires_healthy(config: Config) -> bool:
    """`http.ready_requires_healthy`: /readyz fails while a workload is not up."""
    return config.http is not None and config.http.ready_requires_healthy


def _as_gitopsd_error(exc: Exception) -> GitopsdError:
    """A crash as the failure of its pass, its message unchanged (the bug is logged above)."""
    if isinstance(exc, GitopsdError):
        return exc
    error = GitopsdError(str(exc) or type(exc).__name__)
    error.__cause__ = exc
    return error
