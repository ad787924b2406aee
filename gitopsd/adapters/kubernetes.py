"""The Kubernetes adapter: the only module that imports the `kubernetes` package.

It speaks REST through the client's ApiClient and keeps every object a raw
dict (deserialising into the generated model classes costs about ten times a
JSON parse). Kinds come from aggregated discovery, two requests for the whole
server, so any kind works, custom resources included.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client, config

from gitopsd.adapters.base import ApplyResult, KindInfo
from gitopsd.adapters.discovery import (
    ACCEPT,
    aggregated_kinds,
    is_aggregated,
    legacy_group_versions,
    legacy_kinds,
    legacy_path,
    nothing_usable,
)
from gitopsd.adapters.inventory_io import InventoryStore, RestConfigMaps
from gitopsd.adapters.kube_errors import (
    RETRIES,
    THROTTLED_RETRIES,
    backoff_seconds,
    cluster_error,
    retry_wait,
)
from gitopsd.adapters.rbac import Permission
from gitopsd.config import ClusterSettings
from gitopsd.configread import FILE_ERRORS, file_problem
from gitopsd.errors import (
    ClusterError,
    ClusterUnreachableError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnavailableError,
)
from gitopsd.handoff import released
from gitopsd.inventory import Inventory, StoredInventory
from gitopsd.model import (
    CRD_KIND,
    FIELD_MANAGER,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    TARGET_LABEL,
    LiveObject,
    Manifest,
    ResourceKey,
    group_of,
)
from gitopsd.normalize import redact_message

# A kind missing from discovery triggers a refresh, but not more often than this:
# a pass asks about an unserved kind several times before its CRD is applied, and
# applying a CRD refreshes explicitly once it is Established.
_MISS_REFRESH_SECONDS = 5.0
# A kind whose objects lie in one namespace is listed there: never dearer than a cluster-wide
# list. Measured on loopback, one request costs about 6 ms and a labelled cluster-wide list
# about 3 us more per object of the kind in the cluster (2,000 ConfigMaps in 40 namespaces:
# 12.6 ms wide, 18.9 ms for two namespaces), so for more namespaces one cluster-wide list is
# cheaper until a kind has thousands of objects; it is used unless the credentials forbid it.
PER_NAMESPACE_LISTS = 1


class RateLimiter:
    """A token bucket: at most `qps` requests a second on average, `burst` at once."""

    def __init__(self, qps: float, burst: int) -> None:
        self._rate, self._capacity = qps, float(max(burst, 1))
        self._tokens, self._stamp = self._capacity, time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if self._rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            self._tokens -= 1
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
        if wait:
            time.sleep(wait)


def credentials(kubeconfig: Path | None, context: str | None) -> client.Configuration:
    """A client configuration from a kubeconfig and context, or the in-cluster account."""
    configuration = client.Configuration()
    if kubeconfig is not None:
        config.load_kube_config(
            config_file=str(kubeconfig), context=context, client_configuration=configuration
        )
    else:
        config.load_incluster_config(client_configuration=configuration)
    return configuration


def _configuration(settings: ClusterSettings) -> client.Configuration:
    configuration = credentials(settings.kubeconfig, settings.context)
    configuration.connection_pool_maxsize = max(settings.concurrency, 4)
    # No urllib3 retries: they log a warning per attempt while the server is down, and
    # _request already retries what is worth retrying, honouring Retry-After.
    configuration.retries = 0
    return configuration


class KubernetesAdapter:
    """ClusterAdapter for one Kubernetes cluster."""

    def __init__(self, settings: ClusterSettings, inventory_namespace: str) -> None:
        try:
            self._api = client.ApiClient(_configuration(settings))
        except (config.ConfigException, *FILE_ERRORS) as error:
            where = settings.kubeconfig or "the in-cluster service account"
            problem = f"cannot load cluster credentials from {where}: {file_problem(error)}"
            raise ClusterError(problem) from error
        self._limiter = RateLimiter(settings.qps, settings.burst)
        self._inventory_namespace = inventory_namespace
        requests = RestConfigMaps(self._request, inventory_namespace)
        self._inventories = InventoryStore(requests, inventory_namespace)
        self._kinds: dict[tuple[str, str], list[KindInfo]] | None = None
        self._discovered_at = 0.0
        # Which discovery forms to accept; tests narrow it to exercise each one.
        self.discovery_accept = ACCEPT
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        # Set once a request used up its retries without an answer; cleared by any answer.
        self._unreachable = threading.Event()
        # Kinds a cluster-wide list was refused for: listed namespace by namespace.
        self._scoped: set[tuple[str, str]] = set()

    def close(self) -> None:
        self._api.close()

    def drop_idle_connections(self) -> None:
        """Close the connections kept open since the last pass; requests in flight finish."""
        # A daemon keeps one adapter per target: up to `concurrency` TLS connections each,
        # idle until the next pass (about 60 KiB apiece, with urllib3's SSL context per
        # connection). A pass that writes opens them again for one handshake each.
        self._api.rest_client.pool_manager.clear()

    # -- requests ---------------------------------------------------------

    def _request(
        self,
        verb: str,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        what: str = "",
    ) -> Any:
        """One REST call with rate limiting and Retry-After-aware retries; returns parsed JSON."""
        headers = {"Accept": accept, "Content-Type": content_type}
        # The REST client JSON-encodes bodies of JSON types (merge patches too) itself;
        # other types go as text.
        payload: Any = body
        if body is not None and not content_type.endswith("json"):
            payload = json.dumps(body)
        failures = throttles = 0
        while True:
            self._limiter.acquire()
            self._count(verb)
            try:
                status, data, response_headers = self._send(method, path, query, headers, payload)
            except ClusterUnreachableError:
                # Every request gitopsd makes is idempotent (GET, apply, DELETE), so a dropped
                # connection is tried again; but once one request has spent its retries on an
                # unreachable server, the others give up at their first failure.
                failures += 1
                if failures == RETRIES or self._unreachable.is_set():
                    self._unreachable.set()
                    raise
                time.sleep(backoff_seconds(failures))
                continue
            self._unreachable.clear()
            if 200 <= status < 300:
                return json.loads(data) if data else None
            parsed = _parse(data)
            error = cluster_error(status, parsed, what or f"{method} {path}")
            if status == 429:
                throttles += 1
                self._count("throttled")
                tries, budget = throttles, THROTTLED_RETRIES
            else:
                failures += 1
                tries, budget = failures, RETRIES
            if not error.retryable or tries == budget:
                raise error
            time.sleep(retry_wait(response_headers, parsed, tries, random.random()))

    def _count(self, key: str) -> None:
        with self._counts_lock:
            self._counts[key] += 1

    def _send(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None,
        headers: dict[str, str],
        payload: Any,
    ) -> tuple[int, bytes, Any]:
        url = self._api.configuration.host + path
        if query:
            url += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query)
        auth_headers = dict(headers)
        self._api.update_params_for_auth(auth_headers, [], ["BearerToken"], url, method, payload)
        try:
            response = self._api.rest_client.request(
                method, url, headers=auth_headers, body=payload, _request_timeout=60
            )
            return response.status, response.read(), response.headers
        except (urllib3.exceptions.HTTPError, OSError) as error:
            host = self._api.configuration.host
            raise ClusterUnreachableError(
                f"cannot reach the API server at {host}: {_wire_problem(error)}"
            ) from error

    def request_counts(self) -> Mapping[str, int]:
        """Requests by verb, and under `throttled` how many of them the server answered 429."""
        with self._counts_lock:
            return dict(self._counts)

    # -- discovery --------------------------------------------------------

    def _discover(self) -> dict[tuple[str, str], list[KindInfo]]:
        kinds: dict[tuple[str, str], list[KindInfo]] = {}
        for root in ("/api", "/apis"):
            for info in self._discover_root(root):
                kinds.setdefault((info.group, info.kind), []).append(info)
        if not kinds:
            host = self._api.configuration.host
            raise ClusterError(nothing_usable(host, self._request("discovery", "GET", "/version")))
        return kinds

    def _discover_root(self, root: str) -> list[KindInfo]:
        """The kinds under /api or /apis: one aggregated answer, or a request per group
        version from a server without aggregated discovery (before Kubernetes 1.27)."""
        listing = self._request("discovery", "GET", root, accept=self.discovery_accept)
        if is_aggregated(listing):
            return aggregated_kinds(listing)
        found: list[KindInfo] = []
        for group, version in legacy_group_versions(listing):
            try:
                resources = self._request("discovery", "GET", legacy_path(group, version))
            except (NotFoundError, UnavailableError):
                continue  # an aggregated API server that is down: its kinds stay unknown
            found += legacy_kinds(group, version, resources)
        return found

    def _kind_table(self) -> dict[tuple[str, str], list[KindInfo]]:
        if self._kinds is None:
            self.refresh_discovery()
        assert self._kinds is not None
        return self._kinds

    def refresh_discovery(self) -> None:
        self._kinds = self._discover()
        self._discovered_at = time.monotonic()

    def _refresh_on_miss(self) -> bool:
        if time.monotonic() - self._discovered_at < _MISS_REFRESH_SECONDS:
            return False
        self.refresh_discovery()
        return True

    def kind_info(self, api_version: str, kind: str) -> KindInfo | None:
        group, _, version = api_version.rpartition("/")
        for refresh in (False, True):
            if refresh and not self._refresh_on_miss():
                break
            for info in self._kind_table().get((group, kind), []):
                if info.version == version:
                    return info
        return None

    def capabilities(self) -> tuple[str, tuple[str, ...]]:
        """The server version and every `group/version` and `group/version/Kind` it
        serves: what `helm install` passes to a chart as `.Capabilities`."""
        version = self._request("discovery", "GET", "/version").get("gitVersion", "")
        served: set[str] = set()
        for infos in self._kind_table().values():
            for info in infos:
                prefix = f"{info.group}/{info.version}" if info.group else info.version
                served.update((prefix, f"{prefix}/{info.kind}"))
        return str(version), tuple(sorted(served))

    def kind_by_group(self, group: str, kind: str) -> KindInfo | None:
        for refresh in (False, True):
            if refresh and not self._refresh_on_miss():
                break
            versions = self._kind_table().get((group, kind))
            if versions:
                return versions[0]
        return None

    # -- reads ------------------------------------------------------------

    def list_owned(
        self, info: KindInfo, target: str, namespaces: Iterable[str] | None = None
    ) -> list[LiveObject]:
        query = [
            ("labelSelector", f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{TARGET_LABEL}={target}")
        ]
        spaces = sorted(set(namespaces)) if namespaces is not None and info.namespaced else None
        pair = (info.group, info.kind)
        if spaces is None or (len(spaces) > PER_NAMESPACE_LISTS and pair not in self._scoped):
            try:
                return self._list(_collection_path(info, ""), info, query)
            except ForbiddenError:
                if spaces is None:
                    raise
                # A namespace-scoped Role: list where the target's objects are, from now on.
                self._scoped.add(pair)
        found: list[LiveObject] = []
        for namespace in spaces:
            found += self._list(_collection_path(info, namespace), info, query)
        return found

    def list_all(self, info: KindInfo, namespaces: Iterable[str]) -> list[LiveObject]:
        if not info.namespaced:
            return self._list(_collection_path(info, ""), info, [])
        found: list[LiveObject] = []
        for namespace in sorted(set(namespaces)):
            found += self._list(_collection_path(info, namespace), info, [])
        return found

    def _list(self, path: str, info: KindInfo, query: list[tuple[str, str]]) -> list[LiveObject]:
        objects: list[LiveObject] = []
        token = ""
        while True:
            page = self._request(
                "list",
                "GET",
                path,
                query=[*query, ("limit", "2000"), *_continue(token)],
                what=f"list {info.kind}",
            )
            for item in page.get("items", []):
                item.setdefault("apiVersion", info.api_version)
                item.setdefault("kind", info.kind)
                objects.append(LiveObject(_key_of(item, info.group), item))
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return objects

    def get(self, info: KindInfo, key: ResourceKey) -> LiveObject | None:
        try:
            item = self._request("get", "GET", _object_path(info, key), what=str(key))
        except NotFoundError:
            return None
        return LiveObject(key, item)

    def allowed(self, permission: Permission) -> bool:
        """Whether these credentials hold `permission`, by a SelfSubjectAccessReview."""
        attributes = {
            "group": permission.group,
            "resource": permission.resource,
            "verb": permission.verb,
            **({"namespace": permission.namespace} if permission.namespace else {}),
        }
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }
        path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        review = self._request("access-review", "POST", path, body=body, what="access review")
        return bool((review.get("status") or {}).get("allowed"))

    # -- writes -----------------------------------------------------------

    def apply(self, manifest: Manifest, *, dry_run: bool, force: bool) -> ApplyResult:
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        info = self.kind_info(api_version, kind)
        key = _key_of(manifest, group_of(api_version))
        if info is None:
            raise NotFoundError(f"{key}: the server has no kind {kind} in {api_version}")
        query = [("fieldManager", FIELD_MANAGER), ("fieldValidation", "Strict")]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        verb = "dry-run-apply" if dry_run else "apply"
        try:
            result = self._request(
                verb,
                "PATCH",
                _object_path(info, key),
                query=query,
                body=manifest,
                content_type="application/apply-patch+yaml",
                what=str(key),
            )
        except ClusterError as error:
            error.args = (redact_message(str(error), manifest),)  # a refused value is quoted
            raise
        return ApplyResult(result)

    def delete(self, info: KindInfo, key: ResourceKey, uid: str = "") -> None:
        body: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
        }
        if uid:
            body["preconditions"] = {"uid": uid}
        # Already gone is what we wanted.
        with contextlib.suppress(NotFoundError):
            try:
                self._request("delete", "DELETE", _object_path(info, key), body=body, what=str(key))
            except ConflictError as error:
                raise ConflictError(
                    f"{key}: not deleted: replaced by another object of that name since this "
                    "pass read it; the next pass decides again",
                    status=error.status,
                    retryable=True,
                ) from error

    def release(self, info: KindInfo, key: ResourceKey) -> None:
        live = self.get(info, key)
        if live is None:
            return  # gone: nothing left to let go of
        # A PUT carries the resourceVersion just read: a write in between fails it (409),
        # and the next pass tries again. A patch cannot edit managedFields this way.
        body = released(live.manifest)
        self._request("release", "PUT", _object_path(info, key), body=body, what=str(key))

    def crd_established(self, crd_name: str) -> bool:
        info = self.kind_by_group(*CRD_KIND)
        assert info is not None, "every API server serves CustomResourceDefinitions"
        key = ResourceKey(*CRD_KIND, "", crd_name)
        live = self.get(info, key)
        conditions = ((live.manifest.get("status") or {}).get("conditions") or []) if live else []
        if not any(
            c.get("type") == "Established" and c.get("status") == "True" for c in conditions
        ):
            return False
        self.refresh_discovery()
        return True

    # -- inventory --------------------------------------------------------

    def load_inventories(
        self, target: str
    ) -> tuple[StoredInventory, Mapping[str, StoredInventory]]:
        return self._inventories.load(target)

    def check_inventory_fits(self, target: str, inventory: Inventory) -> None:
        self._inventories.check_fits(target, inventory)

    def describe_inventory(self, target: str) -> str:
        return self._inventories.describe(target)

    def save_inventory(self, target: str, inventory: Inventory, version: str) -> str:
        return self._inventories.save(target, inventory, version)

    def _configmap_kind(self) -> KindInfo:
        return self._kind("v1", "ConfigMap")

    def _kind(self, api_version: str, kind: str) -> KindInfo:
        info = self.kind_info(api_version, kind)
        if info is None:
            raise ClusterError(f"the API server does not serve {api_version} {kind}")
        return info


def _key_of(manifest: Manifest, group: str) -> ResourceKey:
    metadata = manifest.get("metadata") or {}
    return ResourceKey(group, manifest["kind"], metadata.get("namespace", ""), metadata["name"])


def _prefix(info: KindInfo) -> str:
    return f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"


def _collection_path(info: KindInfo, namespace: str) -> str:
    if info.namespaced and namespace:
        return f"{_prefix(info)}/namespaces/{namespace}/{info.plural}"
    return f"{_prefix(info)}/{info.plural}"


def _object_path(info: KindInfo, key: ResourceKey) -> str:
    return f"{_collection_path(info, key.namespace)}/{quote(key.name, safe='')}"


def _continue(token: str) -> list[tuple[str, str]]:
    return [("continue", token)] if token else []


def _wire_problem(error: BaseException) -> str:
    """What failed on the wire, in the OS's words ("Connection refused") when it has them:
    urllib3's wrappers repeat the pool, host and URL around it."""
    current: BaseException | None = error
    for _ in range(8):  # a cause chain is short; a cycle must not hang us
        if current is None:
            break
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        # MaxRetryError keeps the real error in .reason, urllib3's SSLError in its args.
        inner = [getattr(current, "reason", None), *current.args, current.__cause__]
        current = next((e for e in inner if isinstance(e, BaseException)), None)
    return " ".join(str(error).split())


def _parse(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return {"message": data.decode(errors="replace")[:200]}
