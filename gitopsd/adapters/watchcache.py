"""Watches of the objects gitopsd manages, one per kind and cluster, into a cache of raw dicts.

A pass reads live state from here instead of listing, and every change made by
someone else arrives as an event within milliseconds. Each kind is listed once,
then watched from the list's resourceVersion with gitopsd's managed-by label
selector, so the cache holds only what gitopsd manages.

The stream is read with `kubernetes.watch.Watch`: it frames the chunked response
into events, turns an ERROR event into an `ApiException` (410 Gone included) and
its `stop()` unblocks a read stuck in the TLS socket. With a request function that
has no return annotation it yields raw dicts (no model classes) but then records no
resourceVersion, and with `timeout_seconds` it makes exactly one request: so this
module tracks the resourceVersion itself (events and BOOKMARKs), reconnects, relists
after 410 and backs off. `kubernetes.informer.SharedInformer` does not fit: it needs
list results as model objects, asks for no bookmarks and reconnects without backoff
(a 403 would spin).
"""

from __future__ import annotations

import contextlib
import enum
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import structlog
import urllib3
from kubernetes import client
from kubernetes.watch import Watch

from gitopsd.adapters.base import KindInfo
from gitopsd.adapters.kube_errors import cluster_error
from gitopsd.adapters.kubernetes import _configuration
from gitopsd.config import ClusterSettings
from gitopsd.errors import ClusterError, ClusterUnreachableError, ForbiddenError
from gitopsd.model import MANAGED_BY_LABEL, MANAGED_BY_VALUE, Manifest, ResourceKey

log = structlog.get_logger("gitopsd.watch")

SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
_PAGE = "500"
_BACKOFF_FIRST, _BACKOFF_MAX = 0.5, 30.0
# The server ends each watch after this long (client-go picks 5-10 minutes); we reconnect
# from the last resourceVersion, which costs no list.
_WATCH_SECONDS = (300, 600)
_GONE = 410


class WatchState(enum.Enum):
    """Where one kind's watch stands; only SYNCED answers reads."""

    LISTING = "listing"
    SYNCED = "synced"
    RECONNECTING = "reconnecting"
    FORBIDDEN = "forbidden"  # RBAC without list or watch: passes list as before
    STOPPED = "stopped"


@dataclass(frozen=True)
class WatchEvent:
    """One change seen by a watch (or by a relist, which replays what it missed)."""

    info: KindInfo
    type: str  # ADDED, MODIFIED or DELETED
    key: ResourceKey
    obj: Manifest  # the object as of the event (its last state for DELETED)
    previous: Manifest | None  # what the cache held before
    arrived: float  # time.monotonic() when it was read off the wire


EventSink = Callable[[WatchEvent], None]


class WatchStats:
    """Counters for /metrics: events by type, relists, watch (re)connections."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def key_of(manifest: Manifest, group: str) -> ResourceKey:
    metadata = manifest.get("metadata") or {}
    return ResourceKey(
        group, str(manifest.get("kind", "")), metadata.get("namespace") or "", metadata["name"]
    )


def version_of(manifest: Manifest | None) -> int:
    """The resourceVersion as a number (etcd's revision); 0 when absent or opaque."""
    value = ((manifest or {}).get("metadata") or {}).get("resourceVersion", "")
    return int(value) if str(value).isdigit() else 0


class KindWatch:
    """List-then-watch of one kind across the cluster, holding the matching objects."""

    def __init__(
        self, api: client.ApiClient, info: KindInfo, sink: EventSink, stats: WatchStats
    ) -> None:
        self.info = info
        self._api, self._sink, self._stats = api, sink, stats
        self._objects: dict[ResourceKey, Manifest] = {}
        self._version = ""  # where the next watch starts; "" forces a list
        self._seen = 0  # highest resourceVersion applied to the cache
        self._state = WatchState.LISTING
        self._lost_at: float | None = None
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._watch: Watch | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{info.kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        watch = self._watch
        if watch is not None:
            watch.stop()
        self._set_state(WatchState.STOPPED)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def state(self) -> WatchState:
        with self._changed:
            return self._state

    def objects(self) -> list[Manifest]:
        with self._changed:
            return list(self._objects.values())

    def holds(self, key: ResourceKey) -> bool:
        with self._changed:
            return key in self._objects

    def wait_fresh(self, ready: Callable[[KindWatch], bool], timeout: float) -> bool:
        """Whether the cache is synced and `ready(self)` within `timeout` (the watch catching
        up with a write just made); called by passes, never by the watch thread."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if self._state is not WatchState.SYNCED:
                    return False
                if ready(self):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)

    @property
    def seen(self) -> int:
        """The highest resourceVersion the cache reflects (call under wait_fresh's lock)."""
        return self._seen

    def held_unlocked(self) -> Iterable[ResourceKey]:
        """The keys held, for a `wait_fresh` callback (which runs under the lock)."""
        return self._objects.keys()

    def lost_since(self) -> float | None:
        """Since when (time.monotonic()) the watch has been reconnecting; None if it is not."""
        with self._changed:
            return self._lost_at

    # -- the watch thread --------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                if not self._version:
                    self._relist()
                self._stream()
                failures = 0
            except ClusterError as error:
                if isinstance(error, ForbiddenError):
                    self._forbidden(error)
                    return
                failures += 1
                self._lost(error, failures)
            except client.ApiException as error:
                if error.status == _GONE:
                    self._gone()
                    continue
                failures += 1
                self._lost(error, failures)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
                failures += 1
                self._lost(error, failures)

    def _relist(self) -> None:
        self._set_state(WatchState.LISTING)
        items, version = self._list()
        fresh: dict[ResourceKey, Manifest] = {}
        for item in items:
            item.setdefault("apiVersion", self.info.api_version)
            item.setdefault("kind", self.info.kind)
            fresh[key_of(item, self.info.group)] = item
        with self._changed:
            old, replay = self._objects, bool(self._objects) or self._seen > 0
            self._objects, self._version = fresh, version
            self._seen = max(self._seen, int(version) if version.isdigit() else 0)
            self._changed.notify_all()
        if replay:  # after 410 or a reconnect: what changed while nobody watched is news
            self._stats.add("relists")
            self._replay(old, fresh)

    def _replay(self, old: dict[ResourceKey, Manifest], fresh: dict[ResourceKey, Manifest]) -> None:
        now = time.monotonic()
        for key, obj in old.items():
            if key not in fresh:
                self._sink(WatchEvent(self.info, "DELETED", key, obj, obj, now))
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None or version_of(before) != version_of(obj):
                kind = "ADDED" if before is None else "MODIFIED"
                self._sink(WatchEvent(self.info, kind, key, obj, before, now))

    def _list(self) -> tuple[list[Manifest], str]:
        items: list[Manifest] = []
        token = ""
        while True:
            query = [("labelSelector", SELECTOR), ("limit", _PAGE)]
            if token:
                query.append(("continue", token))
            self._stats.add("lists")
            response = self._get(query, timeout=60.0)
            page = json.loads(response.read())
            items += page.get("items") or []
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or ""
            if not token:
                return items, str(metadata.get("resourceVersion", ""))

    def _stream(self) -> None:
        self._watch = watch = Watch()
        seconds = random.randint(*_WATCH_SECONDS)
        try:
            stream = watch.stream(
                self._open, resource_version=self._version, timeout_seconds=seconds
            )
            for event in stream:
                if self._stopping.is_set():
                    break
                self._take(event)
        finally:
            self._watch = None

    def _open(self, **kwargs: Any) -> Any:
        """The watch request, called by Watch.stream; the raw response, or ClusterError."""
        query = [
            ("labelSelector", SELECTOR),
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", str(kwargs["resource_version"])),
            ("timeoutSeconds", str(kwargs["timeout_seconds"])),
        ]
        self._stats.add("watch_requests")
        response = self._get(query, timeout=float(kwargs["timeout_seconds"]) + 30.0)
        self._set_state(WatchState.SYNCED)
        return response.response

    def _get(self, query: list[tuple[str, str]], timeout: float) -> Any:
        path = _collection_path(self.info)
        url = self._api.configuration.host + path + "?"
        url += "&".join(f"{k}={quote(v, safe='')}" for k, v in query)
        headers = {"Accept": "application/json"}
        self._api.update_params_for_auth(headers, [], ["BearerToken"], url, "GET", None)
        try:
            response = self._api.rest_client.request(
                "GET", url, headers=headers, _request_timeout=(10.0, timeout)
            )
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise ClusterUnreachableError(
                f"watch of {self.info.kind}: cannot reach the API server: {error}"
            ) from error
        if not 200 <= response.status < 300:
            body = response.read()
            with contextlib.suppress(ValueError):
                body = json.loads(body)
            raise cluster_error(response.status, body, f"watch of {self.info.kind}")
        return response

    def _take(self, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("raw_object") or {}
        version = version_of(obj)
        if kind == "BOOKMARK":
            self._stats.add("events_bookmark")
            with self._changed:
                self._version = str(version) or self._version
                self._seen = max(self._seen, version)
                self._changed.notify_all()
            return
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return
        self._stats.add(f"events_{str(kind).lower()}")
        obj.setdefault("apiVersion", self.info.api_version)
        obj.setdefault("kind", self.info.kind)
        key = key_of(obj, self.info.group)
        with self._changed:
            previous = self._objects.get(key)
            if kind == "DELETED":
                self._objects.pop(key, None)
            else:
                self._objects[key] = obj
            self._version = str(version) or self._version
            self._seen = max(self._seen, version)
            self._changed.notify_all()
        self._sink(WatchEvent(self.info, str(kind), key, obj, previous, time.monotonic()))

    def _gone(self) -> None:
        log.info("watch_expired", kind=self.info.kind, version=self._version, action="relist")
        with self._changed:
            self._version = ""

    def _forbidden(self, error: ClusterError) -> None:
        self._set_state(WatchState.FORBIDDEN)
        log.warning(
            "watch_forbidden",
            kind=self.info.kind,
            error=str(error),
            fallback="passes list this kind on every pass",
            fix="grant list and watch on this kind to watch it (see README, watch)",
        )

    def _lost(self, error: BaseException, failures: int) -> None:
        if self._stopping.is_set():
            return
        self._set_state(WatchState.RECONNECTING)
        self._stats.add("reconnects")
        # Relist, not resume: a resumed watch counts as synced as soon as it opens, while
        # what changed during the outage is still on its way, and a pass reading the cache
        # in between could take a deleted object for present, or miss a new one.
        self._version = ""
        delay = min(_BACKOFF_FIRST * 2 ** (failures - 1), _BACKOFF_MAX)
        delay *= 0.5 + random.random() / 2
        log.info(
            "watch_lost",
            kind=self.info.kind,
            error=" ".join(str(error).split())[:300],
            retry_in=round(delay, 2),
        )
        self._stopping.wait(delay)

    def _set_state(self, state: WatchState) -> None:
        with self._changed:
            if self._state is not WatchState.STOPPED:
                self._state = state
            if state is WatchState.RECONNECTING:
                self._lost_at = self._lost_at or time.monotonic()
            elif state is WatchState.SYNCED:
                self._lost_at = None
            self._changed.notify_all()


class ClusterWatches:
    """Every kind's watch on one cluster, on a connection pool of their own (each watch holds
    one connection for minutes: sharing the passes' pool would starve their requests)."""

    def __init__(self, settings: ClusterSettings, sink: EventSink) -> None:
        self.settings = settings
        configuration = _configuration(settings)
        configuration.connection_pool_maxsize = 64
        self._api = client.ApiClient(configuration)
        self._sink = sink
        self._lock = threading.Lock()
        self._watches: dict[tuple[str, str], KindWatch] = {}
        self.stats = WatchStats()

    def watch(self, info: KindInfo) -> KindWatch:
        """The watch of `info`'s kind, started on first use."""
        with self._lock:
            current = self._watches.get((info.group, info.kind))
            if current is None or current.info != info:
                if current is not None:
                    current.stop()
                current = KindWatch(self._api, info, self._sink, self.stats)
                self._watches[(info.group, info.kind)] = current
                current.start()
            return current

    def get(self, group: str, kind: str) -> KindWatch | None:
        with self._lock:
            return self._watches.get((group, kind))

    def retain(self, kinds: Iterable[tuple[str, str]]) -> list[str]:
        """Stop the watches of kinds not in `kinds`; the kinds stopped."""
        keep = set(kinds)
        with self._lock:
            gone = [pair for pair in self._watches if pair not in keep]
            stopped = [self._watches.pop(pair) for pair in gone]
        for watch in stopped:
            watch.stop()
        return [watch.info.kind for watch in stopped]

    def all(self) -> list[KindWatch]:
        with self._lock:
            return list(self._watches.values())

    def close(self) -> None:
        watches = self.all()
        with self._lock:
            self._watches.clear()
        for watch in watches:
            watch.stop()
        for watch in watches:
            watch.join(5.0)
        self._api.close()


def _collection_path(info: KindInfo) -> str:
    prefix = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
    return f"{prefix}/{info.plural}"
