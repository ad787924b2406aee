"""The daemon: one scheduled pass per target, backoff, signals, reload, watchdog.

This is the only module that imports APScheduler. Passes run in the
scheduler's thread pool; the main thread only waits for signals, reloads the
configuration and pings systemd's watchdog while the scheduler is healthy.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from gitopsd import __version__, logs
from gitopsd.config import Config, TargetSettings, load_config
from gitopsd.errors import ConfigError, GitopsdError
from gitopsd.metrics import Metrics
from gitopsd.notify import Notifier
from gitopsd.passresult import PassResult
from gitopsd.schedule import backoff_seconds
from gitopsd.status import StatusBoard

if TYPE_CHECKING:
    from gitopsd.journal import Journal

log = structlog.get_logger(__name__)

_TICK = 5.0  # how often the main thread looks at the scheduler without a watchdog
_STALL_SECONDS = 3600.0  # a pass running longer than this is taken as hung: stop the watchdog


class PassRunner(Protocol):
    def run_pass(
        self,
        *,
        dry_run: bool = False,
        previews: bool = False,
        stop: threading.Event | None = None,
    ) -> PassResult: ...
    def validate(self) -> int: ...
    def close(self) -> None: ...


RunnerFactory = Callable[[Config, TargetSettings, "Journal"], PassRunner]


@dataclass
class _Slot:
    """One target's runner under one configuration; retired when a reload replaces it."""

    settings: TargetSettings
    config: Config
    runner: PassRunner | None = None  # built at the first pass, so a bad kubeconfig fails a pass
    retired: bool = False
    closed: bool = False
    guard: threading.Lock = field(default_factory=threading.Lock)


class Daemon:
    """Runs every target on its interval until SIGTERM or SIGINT."""

    def __init__(
        self,
        config: Config,
        *,
        runner_factory: RunnerFactory,
        journal: Journal,
        notifier: Notifier | None = None,
        dry_run: bool = False,
        log_level_fixed: bool = False,
    ) -> None:
        self.config = config
        self.board = StatusBoard(Metrics())
        self._factory = runner_factory
        self._journal = journal
        self._notifier = notifier or Notifier()
        self._dry_run = dry_run
        self._log_level_fixed = log_level_fixed
        self._lock = threading.Lock()  # guards the dictionaries below
        self._slots: dict[str, _Slot] = {}
        self._busy: dict[str, threading.Lock] = {}
        self._pending: set[str] = set()
        self._secret: str | None = None
        self._wake = threading.Event()
        self._halt = threading.Event()  # set at shutdown: passes end after writes in flight
        self._stop_requested = False
        self._reload_requested = False
        self._stopping = False
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=max(4, len(config.targets)))},
            timezone=UTC,
        )

    # -- lifecycle -------------------------------------------------------------

    def run(self) -> int:
        """Serve until asked to stop; the exit code (0)."""
        self._secret = self._read_secret(self.config)
        listener = self._start_http()  # a port in use fails the start before any pass
        self._install_signals()
        for target in self.config.targets:
            self._start_target(target, self.config)
        self._scheduler.start()
        self._notifier.ready(self.board.summary())
        log.info("daemon_started", version=__version__, targets=len(self.config.targets))
        try:
            self._main_loop()
        finally:
            if listener is not None:
                listener.stop()
        return self._shutdown()

    def _main_loop(self) -> None:
        tick = min(_TICK, self._notifier.watchdog_seconds or _TICK)
        while not self._stop_requested:
            self._wake.wait(tick)
            self._wake.clear()
            if self._reload_requested:
                self._reload_requested = False
                self.reload()
            if self.healthy():
                self._notifier.watchdog()
                self._notifier.status(self.board.summary())

    def _shutdown(self) -> int:
        log.info("daemon_stopping")
        self._notifier.stopping()
        self._stopping = True
        self._scheduler.shutdown(wait=False)  # no new passes
        self._halt.set()  # passes running finish their writes in flight, then end
        deadline = time.monotonic() + self.config.stop_timeout_seconds
        with self._lock:
            busy = list(self._busy.items())
        unfinished = [n for n, b in busy if not _wait_lock(b, deadline - time.monotonic())]
        if unfinished:
            # A write hung past stop_timeout: the process must still end in bounded time.
            # Each object write is atomic; the pass's inventory update may be lost, so
            # this is reported as a failure.
            log.error("stop_timeout_passes_abandoned", targets=unfinished)
            os._exit(1)
        for slot in list(self._slots.values()):
            self._close_slot(slot)
        log.info("daemon_stopped")
        return 0

    def request_stop(self) -> None:
        self._stop_requested = True
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_requested = True
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

    def _start_http(self) -> Any:
        if self.config.http is None:
            return None
        from gitopsd.http import HttpListener

        listener = HttpListener(self, self.config.http.address, self.config.http.port)
        listener.start()
        return listener

    # -- targets and their jobs ------------------------------------------------

    def _interval(self, target: TargetSettings, config: Config) -> float:
        return target.interval_seconds or config.interval_seconds

    def _start_target(self, target: TargetSettings, config: Config) -> None:
        interval = self._interval(target, config)
        slot = _Slot(target, config)
        self.board.track(target.name, interval)
        with self._lock:
            self._slots[target.name] = slot
            self._busy.setdefault(target.name, threading.Lock())
        self._scheduler.add_job(
            self._run_pass,
            "interval",
            args=[target.name],
            id=target.name,
            name=f"pass {target.name}",
            seconds=interval,
            jitter=min(interval * 0.1, 30.0),  # spread targets so they do not hit Git at once
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            replace_existing=True,
        )

    def _run_pass(self, name: str) -> None:
        with self._lock:
            slot, busy = self._slots.get(name), self._busy.get(name)
            if slot is None or busy is None or self._stopping:
                return
            if not busy.acquire(blocking=False):
                self._pending.add(name)  # the old runner of a reloaded target is still at it
                return
            self.board.started(name)
        try:
            self._pass_with(name, slot)
        finally:
            busy.release()
            if slot.retired:
                self._close_slot(slot)
            self._schedule_next(name, slot)

    def _pass_with(self, name: str, slot: _Slot) -> None:
        started = time.time()
        try:
            if slot.runner is None:
                slot.runner = self._factory(slot.config, slot.settings, self._journal)
            result = slot.runner.run_pass(dry_run=self._dry_run, stop=self._halt)
        except Exception as exc:
            if not isinstance(exc, GitopsdError):  # a bug must not end the target's schedule
                log.exception("pass_crashed", target=name)
            result = PassResult.failed(name, _as_gitopsd_error(exc), started, time.time() - started)
        self.board.record(result)

    def _schedule_next(self, name: str, slot: _Slot) -> None:
        """An immediate run when one was asked for during the pass; a later one after failure."""
        with self._lock:
            if self._stopping:
                return
            # A webhook during the pass, or a reload that replaced this target's runner.
            rerun = name in self._pending or (slot.retired and name in self._slots)
            self._pending.discard(name)
        if rerun:
            self._reschedule(name, 0.0)
            return
        if slot.retired:
            return
        status = self.board.get(name)
        if status is None:  # a reload removed the target since the check above
            return
        if status.failed and status.retryable:
            cap = self.config.backoff_max_seconds
            delay = backoff_seconds(status.failures, status.interval_seconds, cap)
            log.debug("target_backoff", target=name, seconds=delay, failures=status.failures)
            self._reschedule(name, delay)

    def _reschedule(self, name: str, delay: float) -> None:
        when = datetime.now(UTC) + timedelta(seconds=delay)
        with contextlib.suppress(JobLookupError):  # removed by a reload meanwhile
            self._scheduler.modify_job(name, next_run_time=when)

    def _close_slot(self, slot: _Slot) -> None:
        with slot.guard:
            if not slot.closed and slot.runner is not None:
                slot.runner.close()
            slot.closed = True

    # -- reload ----------------------------------------------------------------

    def reload(self) -> bool:
        """Load the configuration file again; keep the old one when the new one is refused."""
        old = self.config
        try:
            new = load_config(old.path)
            secret = self._read_secret(new)
            if new.state_dir != old.state_dir:
                raise ConfigError(f"{new.path}: state_dir: cannot change without a restart")
        except ConfigError as exc:
            log.error("config_reload_refused", error=str(exc), keeping="the running configuration")
            return False
        if new.http != old.http:
            log.warning("config_reload_http_needs_restart")
        changed = self._apply_targets(old, new)
        self.config, self._secret = new, secret
        if not self._log_level_fixed:
            logs.set_level(new.log_level)
        log.info("config_reloaded", targets=[t.name for t in new.targets], changed=changed)
        return True

    def _apply_targets(self, old: Config, new: Config) -> list[str]:
        changed = []
        names = {t.name for t in new.targets}
        for name in [t.name for t in old.targets if t.name not in names]:
            self._retire(name, remove_job=True)
            self.board.forget(name)
            changed.append(name)
        for target in new.targets:
            same = _has_target(old, target.name) and old.target(target.name) == target
            if same and self._interval(target, old) == self._interval(target, new):
                continue
            self._retire(target.name, remove_job=False)
            self._start_target(target, new)
            changed.append(target.name)
        return changed

    def _retire(self, name: str, *, remove_job: bool) -> None:
        with self._lock:
            slot = self._slots.pop(name, None)
        if slot is None:
            return
        slot.retired = True
        busy = self._busy.get(name)
        if busy is not None and busy.acquire(blocking=False):
            try:
                self._close_slot(slot)  # idle: close now; a running pass closes it when it ends
            finally:
                busy.release()
        if remove_job:
            with contextlib.suppress(JobLookupError):  # never scheduled, or already gone
                self._scheduler.remove_job(name)

    def _read_secret(self, config: Config) -> str | None:
        return config.webhook.secret.read() if config.webhook is not None else None

    # -- what the HTTP listener and the watchdog ask --------------------------

    def healthy(self) -> bool:
        """The scheduler thread is alive and no pass looks hung."""
        # APScheduler exposes no public liveness check; its thread attribute is the truth.
        thread = getattr(self._scheduler, "_thread", None)
        if not self._scheduler.running or thread is None or not thread.is_alive():
            return False
        return not self.board.running_longer_than(_STALL_SECONDS)

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "config": str(self.config.path),
            "dry_run": self._dry_run,
            "targets": self.board.as_dict(self._next_run),
        }

    def readiness(self) -> list[str]:
        if self._stopping:
            return ["shutting down"]
        return self.board.failing()

    def webhook_secret(self) -> str | None:
        return self._secret

    def trigger(self, target: str | None) -> list[str]:
        """Run `target` (every target when None) as soon as possible; KeyError if unknown."""
        with self._lock:
            names = [target] if target is not None else list(self._slots)
            if any(name not in self._slots for name in names):
                raise KeyError(target)
            now_names = []
            for name in names:
                if self._busy[name].locked():
                    self._pending.add(name)  # run again right after the pass in progress
                else:
                    now_names.append(name)
        for name in now_names:
            self._reschedule(name, 0.0)
        return names

    def metrics(self) -> bytes:
        return self.board.metrics.render()

    def _next_run(self, name: str) -> float | None:
        job = self._scheduler.get_job(name) if not self._stopping else None
        when = job.next_run_time if job is not None else None
        return when.timestamp() if when is not None else None


def _as_gitopsd_error(exc: Exception) -> GitopsdError:
    """A crash as the failure of its pass, its message unchanged (the bug is logged above)."""
    if isinstance(exc, GitopsdError):
        return exc
    error = GitopsdError(str(exc) or type(exc).__name__)
    error.__cause__ = exc
    return error


def _has_target(config: Config, name: str) -> bool:
    return any(t.name == name for t in config.targets)


def _wait_lock(lock: threading.Lock, timeout: float) -> bool:
    """Whether `lock` was free within `timeout` (it is left released)."""
    acquired = lock.acquire(timeout=timeout) if timeout > 0 else lock.acquire(blocking=False)
    if acquired:
        lock.release()
    return acquired
