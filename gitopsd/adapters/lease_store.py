"""Leases in the coordination cluster: the I/O of coordinator.py, through the client's LeaseLock.

Reused from `kubernetes.leaderelection`: LeaseLock's record-to-spec conversion
(`get_lease_spec`, its UTC time handling) and its read-then-replace flow, where the
replace carries the resourceVersion read, so two replicas racing for one Lease are
told apart by a 409. Not reused: its single-leader loop (one Lease per target here)
and its I/O methods as they stand, which build a client from the default
configuration, wait without a timeout and log failures instead of raising them;
`_Lock` overrides those three.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection.leaderelectionrecord import LeaderElectionRecord
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from gitopsd.adapters.kube_errors import cluster_error
from gitopsd.adapters.kubernetes import credentials
from gitopsd.configread import FILE_ERRORS, file_problem
from gitopsd.errors import ClusterError, ClusterUnreachableError, ConflictError
from gitopsd.haconfig import HaSettings
from gitopsd.leases import LeaseView

LEASE_LABEL = "gitopsd.io/lease"


class _Lock(LeaseLock):
    """LeaseLock on our ApiClient, with a timeout and errors raised."""

    def __init__(self, api: Any, name: str, namespace: str, timeout: float) -> None:
        super().__init__(name, namespace, "")
        self.api_instance = client.CoordinationV1Api(api)
        self.timeout = timeout

    def create(self, name: str, namespace: str, election_record: Any) -> bool:
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=name, labels={LEASE_LABEL: "gitopsd"}),
            spec=self.get_lease_spec(election_record),
        )
        self.lease_reference = self.api_instance.create_namespaced_lease(
            namespace, body, _request_timeout=self.timeout
        )
        return True

    def update(self, name: str, namespace: str, updated_record: Any) -> bool:
        reference: Any = self.lease_reference  # set by the caller: the Lease as read
        reference.spec = self.get_lease_spec(updated_record, reference.spec)
        self.lease_reference = self.api_instance.replace_namespaced_lease(
            name=name, namespace=namespace, body=reference, _request_timeout=self.timeout
        )
        return True


class KubernetesLeaseStore:
    """The gitopsd Leases of one namespace (coordinator.LeaseStore)."""

    def __init__(self, settings: HaSettings) -> None:
        try:
            configuration = credentials(settings.kubeconfig, settings.context)
        except (config.ConfigException, *FILE_ERRORS) as error:
            where = settings.kubeconfig or "the in-cluster service account"
            raise ClusterError(
                f"ha: cannot load cluster credentials from {where}: {file_problem(error)}"
            ) from error
        configuration.retries = 0  # a missed round is retried by the next one
        self._api = client.ApiClient(configuration)
        self._namespace = settings.namespace
        self._timeout = max(settings.renew_deadline_seconds - settings.retry_period_seconds, 1.0)
        self._objects: dict[str, Any] = {}  # name -> the V1Lease last read or written

    def close(self) -> None:
        self._api.close()

    def list(self) -> list[LeaseView]:
        api = client.CoordinationV1Api(self._api)
        with _translated(f"list Leases in namespace {self._namespace}"):
            found = api.list_namespaced_lease(
                self._namespace, label_selector=LEASE_LABEL, _request_timeout=self._timeout
            )
        views = [_view(lease) for lease in found.items]
        self._objects = {view.name: lease for view, lease in zip(views, found.items, strict=True)}
        return views

    def create(self, name: str, holder: str, duration: float, now: float) -> LeaseView:
        lock = _Lock(self._api, name, self._namespace, self._timeout)
        record = LeaderElectionRecord(holder, str(int(duration)), _stamp(now), _stamp(now))
        with _translated(f"create Lease {self._namespace}/{name}"):
            lock.create(name, self._namespace, record)
        self._objects[name] = lock.lease_reference
        return _view(lock.lease_reference)

    def update(self, lease: LeaseView, holder: str, duration: float, now: float) -> LeaseView:
        current = self._objects.get(lease.name)
        if current is None or current.metadata.resource_version != lease.version:
            raise ConflictError(f"Lease {lease.name}: changed since it was read")
        lock = _Lock(self._api, lease.name, self._namespace, self._timeout)
        lock.lease_reference = current
        acquired = lease.acquired_at if holder == lease.holder else now
        record = LeaderElectionRecord(
            holder or None, str(int(duration)), _stamp(acquired or now), _stamp(now)
        )
        if holder != lease.holder and holder:
            current.spec.lease_transitions = lease.transitions + 1
        with _translated(f"update Lease {self._namespace}/{lease.name}"):
            lock.update(lease.name, self._namespace, record)
        self._objects[lease.name] = lock.lease_reference
        return _view(lock.lease_reference)

    def delete(self, lease: LeaseView) -> None:
        api = client.CoordinationV1Api(self._api)
        with _translated(f"delete Lease {self._namespace}/{lease.name}"):
            api.delete_namespaced_lease(
                lease.name,
                self._namespace,
                body=client.V1DeleteOptions(
                    preconditions=client.V1Preconditions(resource_version=lease.version)
                ),
                _request_timeout=self._timeout,
            )


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """ApiException and connection failures as our errors, the original as __cause__."""
    try:
        yield
    except ApiException as error:
        raise cluster_error(error.status or 0, _parsed(error.body), what) from error
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise ClusterUnreachableError(f"{what}: no answer: {error}") from error


def _parsed(body: Any) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _stamp(wall: float) -> str:
    """A time as LeaderElectionRecord holds it (str of a local naive datetime). Never on a
    whole second: the client writes such a datetime without a fraction (`08:00:00+00:00`)
    and the API server refuses it as a MicroTime (400); the client's models turn any text
    back into a datetime, so a microsecond is added instead."""
    moment = datetime.fromtimestamp(wall)
    return str(moment if moment.microsecond else moment.replace(microsecond=1))


def _view(lease: Any) -> LeaseView:
    spec = lease.spec or client.V1LeaseSpec()
    return LeaseView(
        name=lease.metadata.name,
        holder=spec.holder_identity or "",
        version=lease.metadata.resource_version or "",
        acquired_at=_epoch(spec.acquire_time),
        renewed_at=_epoch(spec.renew_time),
        duration=float(spec.lease_duration_seconds or 0),
        transitions=spec.lease_transitions or 0,
    )


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
