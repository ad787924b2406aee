"""Notification delivery: a bounded queue and a worker thread per sink, HTTP from the stdlib.

A pass hands its result to the Outbox and goes on: on the pass's thread this is
message building and an append under a lock, never network I/O. Each sink's
worker sends in order, waits for the sink's rate limit, retries 5xx answers and
timeouts with backoff (a `Retry-After` wins), and after `max_attempts` takes the
sink down with one logged error; while down, a message every five minutes
probes it. The rules are in gitopsd.delivery, the messages in
gitopsd.notifications. A sink's URL can carry a token (Slack's do), so logs and
errors show only its name and `scheme://host/…`.
"""

from __future__ import annotations

import http.client
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import structlog

from gitopsd import __version__
from gitopsd.clock import Clock
from gitopsd.config import Config
from gitopsd.delivery import (
    Attempt,
    RateLimit,
    Repeats,
    SinkHealth,
    Verdict,
    retry_after_seconds,
    retry_delay,
    verdict_of,
)
from gitopsd.errors import ConfigError
from gitopsd.metrics import Metrics
from gitopsd.notifications import (
    SIGNATURE_HEADER,
    CommitState,
    Event,
    HealthChange,
    auth_headers,
    commit_state,
    commit_status_request,
    dedupe_key,
    links,
    pass_events,
    repository_of,
    sign,
    slack_body,
    state_description,
    status_context,
    target_link,
    webhook_body,
)
from gitopsd.notifyconfig import SinkSettings, SinkType
from gitopsd.passresult import PassResult

log = structlog.get_logger(__name__)

_READ_LIMIT = 64 * 1024  # of an answer: only its status matters


def redact_url(url: str) -> str:
    """`scheme://host/…`: enough to tell sinks apart, never a path or query carrying a token."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


@dataclass(frozen=True)
class Message:
    """One HTTP POST a sink owes; `key` identifies repeats, `delivered` runs once it is sent."""

    kind: str  # the event, or commit_status
    target: str
    url: str
    body: bytes
    headers: dict[str, str]
    key: str  # empty: never a repeat
    delivered: Callable[[], None] | None = field(default=None, compare=False)


class Transport(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Attempt: ...


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would send a signed body, or a token, to wherever the answer points.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class HttpTransport:
    """POSTs with urllib: proxies from the environment, no redirects, bounded answers."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._opener = urllib.request.build_opener(_NoRedirects)

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Attempt:
        sent = {
            "Content-Type": "application/json",
            "User-Agent": f"gitopsd/{__version__}",
            **headers,
        }
        request = urllib.request.Request(url, data=body, headers=sent, method="POST")
        try:
            with self._opener.open(request, timeout=timeout) as response:
                response.read(_READ_LIMIT)
                status = int(response.status)
                return Attempt(verdict_of(status), f"HTTP {status}", status)
        except urllib.error.HTTPError as exc:
            with exc:
                wait = retry_after_seconds(exc.headers.get("Retry-After"), self._clock.time())
                return Attempt(verdict_of(exc.code), f"HTTP {exc.code}", exc.code, wait)
        except TimeoutError:
            return Attempt(Verdict.RETRY, f"no answer within {timeout:g}s")
        except urllib.error.URLError as exc:
            return Attempt(Verdict.RETRY, f"cannot connect: {_reason(exc.reason)}")
        except (OSError, http.client.HTTPException) as exc:
            return Attempt(Verdict.RETRY, f"connection failed: {_reason(exc)}")


def _reason(reason: object) -> str:
    """An OS error's words without its arguments (which may quote the URL)."""
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return type(reason).__name__


class SinkWorker:
    """One sink's queue (at most `queue_size`, the oldest dropped first) and its sending thread."""

    def __init__(
        self, settings: SinkSettings, transport: Transport, metrics: Metrics, clock: Clock
    ) -> None:
        self.name = settings.name
        self._settings, self._transport, self._clock = settings, transport, clock
        self._sent = metrics.notify_sent.labels(self.name)
        self._failed = metrics.notify_failed.labels(self.name)
        self._dropped = metrics.notify_dropped
        self._queue: deque[Message] = deque()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._busy = False
        self._overflowing = False
        self._health = SinkHealth()
        self._limit = RateLimit(settings.max_per_minute, clock.monotonic())
        self._repeats = Repeats(settings.dedupe_window_seconds)
        self._rejections_logged: set[int | None] = set()
        self._thread = threading.Thread(target=self._run, name=f"notify-{self.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, message: Message) -> None:
        """Queue `message` unless it repeats one within the window or the sink is down."""
        now = self._clock.monotonic()
        with self._changed:
            if not self._health.admit(now):
                self._drop("sink_down")
                return
            if message.key and self._repeats.repeat(message.key, now):
                self._drop("duplicate")
                return
            if len(self._queue) >= self._settings.queue_size:
                self._queue.popleft()  # the newest news matters more than the oldest
                self._drop("queue_full")
                if not self._overflowing:
                    log.warning("notify_queue_full", sink=self.name, size=len(self._queue))
                self._overflowing = True
            self._queue.append(message)
            self._changed.notify_all()

    def idle(self, timeout: float) -> bool:
        """Whether the queue is empty and nothing is being sent, within `timeout` (real) seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self, timeout: float) -> None:
        """Stop; a request in flight ends within its timeout, what is still queued is dropped."""
        with self._changed:
            self._stop.set()
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while (message := self._next()) is not None:
            try:
                self._deliver(message)
            except Exception:  # a bug must not end the sink's thread: later messages still go
                log.exception("notify_crashed", sink=self.name)
                self._drop("crashed")
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()

    def _next(self) -> Message | None:
        with self._changed:
            self._changed.wait_for(lambda: self._queue or self._stop.is_set())
            if self._stop.is_set():
                for _ in range(len(self._queue)):
                    self._drop("shutdown")
                self._queue.clear()
                return None
            self._busy = True
            self._overflowing = self._overflowing and len(self._queue) > 1
            return self._queue.popleft()

    def _deliver(self, message: Message) -> None:
        if not self._pause(self._limit.delay(self._clock.monotonic())):
            self._drop("shutdown")
            return
        self._limit.take(self._clock.monotonic())
        attempts = 1 if self._health.down else self._settings.max_attempts
        for attempt in range(1, attempts + 1):
            result = self._transport.post(
                message.url, message.body, message.headers, self._settings.timeout_seconds
            )
            if result.verdict is Verdict.SENT:
                self._delivered(message)
                return
            self._failed.inc()
            if result.verdict is Verdict.REJECTED:
                self._rejected(message, result)
                return
            if attempt < attempts:
                delay = retry_delay(attempt, result.retry_after)
                log.debug(
                    "notify_retry",
                    sink=self.name,
                    attempt=attempt,
                    seconds=delay,
                    problem=result.problem,
                )
                if not self._pause(delay):
                    self._drop("shutdown")
                    return
        self._undeliverable(message, result, attempts)

    def _pause(self, seconds: float) -> bool:
        """Wait `seconds` on the clock; False when the sink is closing meanwhile."""
        return seconds <= 0 or not self._clock.wait(self._stop, seconds)

    def _delivered(self, message: Message) -> None:
        self._sent.inc()
        self._rejections_logged.clear()
        if message.delivered is not None:
            message.delivered()
        with self._changed:
            down_since = self._health.sent()
        if down_since is not None:
            down = round(self._clock.monotonic() - down_since, 3)
            log.info("notify_sink_recovered", sink=self.name, down_seconds=down)

    def _rejected(self, message: Message, result: Attempt) -> None:
        self._drop("rejected")
        if result.status not in self._rejections_logged:  # once per answer until one passes
            self._rejections_logged.add(result.status)
            log.warning(
                "notify_rejected",
                sink=self.name,
                notification=message.kind,
                target=message.target,
                problem=result.problem,
                fix="check the sink's URL, token and permissions; messages it refuses are dropped",
            )

    def _undeliverable(self, message: Message, result: Attempt, attempts: int) -> None:
        self._drop("undeliverable")
        with self._changed:
            went_down = self._health.failed(self._clock.monotonic())
            queued = len(self._queue)
            if went_down:
                for _ in range(queued):
                    self._drop("sink_down")
                self._queue.clear()
        if went_down:
            log.error(
                "notify_sink_down",
                sink=self.name,
                endpoint=redact_url(message.url),
                attempts=attempts,
                problem=result.problem,
                dropped=queued + 1,
                fix="messages are dropped until a probe every 5 minutes gets through",
            )
        else:
            log.debug("notify_probe_failed", sink=self.name, problem=result.problem)

    def _drop(self, reason: str) -> None:
        self._dropped.labels(self.name, reason).inc()


@dataclass(frozen=True)
class SinkSpec:
    """A sink's settings with its URL, signing secret and token read: equal specs, same sink."""

    settings: SinkSettings
    url: str
    secret: str | None = None
    token: str | None = None


def read_specs(config: Config) -> tuple[SinkSpec, ...]:
    """Every sink with its secrets read; a ConfigError names the sink and the file or variable."""
    return tuple(_read_spec(index, sink, config) for index, sink in enumerate(config.notify))


def _read_spec(index: int, sink: SinkSettings, config: Config) -> SinkSpec:
    where = f"{config.path}: notify[{index}] ({sink.name})"
    try:
        url = sink.url or (sink.url_ref.read() if sink.url_ref is not None else sink.api_url or "")
        secret = sink.secret.read() if sink.secret is not None else None
        token = sink.token.read() if sink.token is not None else None
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Not quoted: the file may hold a URL whose path is the token.
        raise ConfigError(f"{where}: the URL read from its file or variable is not http(s)")
    return SinkSpec(sink, url, secret, token)


class Outbox:
    """Every sink, fed from finished passes; publishing never waits for the network."""

    def __init__(
        self,
        specs: tuple[SinkSpec, ...],
        config: Config,
        metrics: Metrics,
        clock: Clock,
        transport: Transport | None = None,
    ) -> None:
        self.specs = specs
        self._repos = {t.name: t.source.repo for t in config.targets}
        transport = transport or HttpTransport(clock)
        self._sinks = [
            _Sink(spec, SinkWorker(spec.settings, transport, metrics, clock)) for spec in specs
        ]

    def start(self) -> None:
        for sink in self._sinks:
            sink.worker.start()
        if self._sinks:
            shown = [
                {
                    "sink": s.spec.settings.name,
                    "type": s.spec.settings.type.value,
                    "endpoint": redact_url(s.spec.url),
                }
                for s in self._sinks
            ]
            log.info("notify_sinks", sinks=shown)

    def retarget(self, config: Config) -> None:
        """Follow a reload's targets (their repository URLs give links and forge repositories)."""
        self._repos = {t.name: t.source.repo for t in config.targets}

    def publish(self, result: PassResult, change: HealthChange | None, *, dry_run: bool) -> None:
        """Queue what `result` tells each sink."""
        if not self._sinks:
            return
        events = pass_events(result, change, dry_run=dry_run)
        repo = self._repos.get(result.target, "")
        for sink in self._sinks:
            for message in sink.messages(result, events, repo):
                sink.worker.put(message)

    def publish_event(self, event: Event) -> None:
        """Queue an event that no pass produced (a drift fight, a lost Lease)."""
        repo = self._repos.get(event.target, "")
        for sink in self._sinks:
            if sink.wants(event):
                sink.worker.put(sink.post(event, repo))

    def idle(self, timeout: float) -> bool:
        return all(sink.worker.idle(timeout) for sink in self._sinks)

    def close(self, timeout: float = 5.0) -> None:
        for sink in self._sinks:
            sink.worker.close(timeout)


class _Sink:
    """Turns a pass into the messages of one sink; remembers the commit statuses it set."""

    def __init__(self, spec: SinkSpec, worker: SinkWorker) -> None:
        self.spec, self.worker = spec, worker
        self._lock = threading.Lock()
        self._statuses: dict[str, tuple[str, CommitState]] = {}  # target -> what the forge shows

    def messages(self, result: PassResult, events: Iterable[Event], repo: str) -> list[Message]:
        settings = self.spec.settings
        if settings.type is SinkType.COMMIT_STATUS:
            if settings.targets and result.target not in settings.targets:
                return []
            message = self._commit_status(result, repo)
            return [message] if message is not None else []
        return [self.post(event, repo) for event in events if self.wants(event)]

    def wants(self, event: Event) -> bool:
        """Whether this sink sends `event` (a commit status says how a pass went, no more)."""
        settings = self.spec.settings
        if settings.targets and event.target not in settings.targets:
            return False
        return settings.type is not SinkType.COMMIT_STATUS and event.type in settings.events

    def post(self, event: Event, repo: str) -> Message:
        settings = self.spec.settings
        link_map = links(event, status_url=settings.status_url, repo=repo)
        headers: dict[str, str] = {}
        if settings.type is SinkType.SLACK:
            body = slack_body(event, link_map)
        else:
            body = webhook_body(event, link_map)
            headers["X-Gitopsd-Event"] = event.type.value
            if self.spec.secret is not None:
                headers[SIGNATURE_HEADER] = sign(self.spec.secret, body)
        key = dedupe_key(event)
        return Message(event.type.value, event.target, self.spec.url, body, headers, key)

    def _commit_status(self, result: PassResult, repo: str) -> Message | None:
        settings, state, commit = self.spec.settings, commit_state(result), result.commit
        forge = settings.forge
        repository = settings.repository or (repository_of(repo, forge) if forge else None)
        if state is None or commit is None or forge is None or not repository:
            return None
        with self._lock:
            if self._statuses.get(result.target) == (commit, state):
                return None  # the forge shows this already: a status per pass would flood it
        request = commit_status_request(
            forge,
            repository,
            commit,
            state,
            context=status_context(result.target),
            description=state_description(result),
            target_url=target_link(settings.status_url, result.target),
        )

        def delivered(target: str = result.target) -> None:
            with self._lock:
                self._statuses[target] = (commit, state)

        headers = auth_headers(forge, self.spec.token or "")
        url = self.spec.url + request.path
        # Repeats are told by what the forge shows (above), not by a time window: a commit
        # may go from success to failure and back within one.
        return Message("commit_status", result.target, url, request.body, headers, "", delivered)
