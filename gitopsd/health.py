"""Is a live object up, not only accepted? Object dict in, (status, one-line reason) out.

Statuses and the order of checks follow kstatus (sigs.k8s.io/cli-utils pkg/kstatus/status),
which Flux and kubectl-style tools share, so a user reading both gets the same answer:
deletion first, then `observedGeneration` against `generation`, then the kstatus
`Reconciling`/`Stalled` conditions, then a per-kind rule, then the `Ready` (or `Available`)
condition, and an object with none of these is Current. Deviations from kstatus are
commented where they are made. Pure: no clock, no client, no logging.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard


class Health(enum.Enum):
    CURRENT = "Current"
    IN_PROGRESS = "InProgress"
    FAILED = "Failed"
    TERMINATING = "Terminating"
    NOT_FOUND = "NotFound"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class ObjectHealth:
    """One object's health and why, in one line."""

    status: Health
    reason: str


Obj = Mapping[str, Any]


class _Unreadable(Exception):
    """A status field of the wrong type: the object's health is Unknown."""


def assess(obj: Obj | None) -> ObjectHealth:
    """The health of one live object (None: it does not exist)."""
    if obj is None:
        return ObjectHealth(Health.NOT_FOUND, "not found")
    try:
        return _generic(obj) or _by_kind(obj) or _ready_condition(obj) or _current("no status")
    except _Unreadable as err:
        return ObjectHealth(Health.UNKNOWN, f"cannot read status: {err}")


def _current(reason: str) -> ObjectHealth:
    return ObjectHealth(Health.CURRENT, reason)


def _progress(reason: str) -> ObjectHealth:
    return ObjectHealth(Health.IN_PROGRESS, reason)


def _failed(reason: str) -> ObjectHealth:
    return ObjectHealth(Health.FAILED, reason)


def _field(obj: Obj, path: str) -> Any:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _int(obj: Obj, path: str, default: int) -> int:
    value = _field(obj, path)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Unreadable(f"{path} is {value!r}, not an integer")
    return value


def _str(obj: Obj, path: str, default: str = "") -> str:
    value = _field(obj, path)
    return value if isinstance(value, str) else default


def _conditions(obj: Obj) -> dict[str, Mapping[str, Any]]:
    raw = _field(obj, "status.conditions")
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise _Unreadable("status.conditions is not a list")
    return {
        str(c.get("type")): c for c in raw if isinstance(c, Mapping) and c.get("type") is not None
    }


def _is(cond: Mapping[str, Any] | None, status: str) -> TypeGuard[Mapping[str, Any]]:
    return cond is not None and cond.get("status") == status


def _explain(cond: Mapping[str, Any], fallback: str) -> str:
    """A condition as `Reason: message`, whichever parts it has."""
    parts = [str(cond[k]) for k in ("reason", "message") if cond.get(k)]
    return " ".join(": ".join(parts).split()) or fallback


def _generic(obj: Obj) -> ObjectHealth | None:
    kind = _str(obj, "kind", "object")
    if _field(obj, "metadata.deletionTimestamp"):
        return ObjectHealth(Health.TERMINATING, f"{kind} is being deleted")
    generation = _int(obj, "metadata.generation", -1)
    observed = _int(obj, "status.observedGeneration", -1)
    if generation != -1 and observed != -1 and observed != generation:
        return _progress(f"generation {generation} not yet observed (observed {observed})")
    conditions = _conditions(obj)
    if _is(conditions.get("Reconciling"), "True"):
        return _progress(_explain(conditions["Reconciling"], "reconciling"))
    if _is(conditions.get("Stalled"), "True"):
        return _failed(_explain(conditions["Stalled"], "stalled"))
    return None


def _by_kind(obj: Obj) -> ObjectHealth | None:
    api_version = _str(obj, "apiVersion")
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    rule = _RULES.get((group, _str(obj, "kind")))
    return rule(obj) if rule is not None else None


def _ready_condition(obj: Obj) -> ObjectHealth | None:
    # kstatus looks at Ready only; the issue asks for Available as well (APIService-like CRs).
    conditions = _conditions(obj)
    for name in ("Ready", "Available"):
        cond = conditions.get(name)
        if cond is None:
            continue
        if _is(cond, "True"):
            return _current(f"{name}")
        return _progress(_explain(cond, f"not {name}"))
    return None


def _deployment(obj: Obj) -> ObjectHealth:
    conditions = _conditions(obj)
    progressing = conditions.get("Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        return _failed(_explain(progressing, "ProgressDeadlineExceeded"))
    if _field(obj, "spec.paused") is True:
        # Not in kstatus: a paused rollout never completes by itself, so waiting on it could
        # only time out; Argo CD calls it Suspended. Report it as settled, saying why.
        return _current("rollout paused (spec.paused)")
    want = _int(obj, "spec.replicas", 1)
    replicas = _int(obj, "status.replicas", 0)
    updated = _int(obj, "status.updatedReplicas", 0)
    available = _int(obj, "status.availableReplicas", 0)
    ready = _int(obj, "status.readyReplicas", 0)
    if want > replicas:
        return _progress(f"{replicas}/{want} replicas created")
    if want > updated:
        return _progress(f"{updated}/{want} replicas updated")
    if replicas > want:
        return _progress(f"{replicas - want} old replicas pending termination")
    if updated > available:
        return _progress(f"{available}/{want} replicas available")
    if want > ready:
        return _progress(f"{ready}/{want} replicas ready")
    # Without progressDeadlineSeconds the controller never sets Progressing (as in kstatus).
    if _field(obj, "spec.progressDeadlineSeconds") is not None and not (
        _is(progressing, "True") and progressing.get("reason") == "NewReplicaSetAvailable"
    ):
        return _progress("new ReplicaSet not yet available")
    if not _is(conditions.get("Available"), "True"):
        return _progress("Deployment not Available")
    return _current(f"{available}/{want} replicas available")


def _statefulset(obj: Obj) -> ObjectHealth:
    if _str(obj, "spec.updateStrategy.type") == "OnDelete":
        return _current("OnDelete update strategy: updates wait for pods to be deleted")
    want = _int(obj, "spec.replicas", 1)
    replicas = _int(obj, "status.replicas", 0)
    ready = _int(obj, "status.readyReplicas", 0)
    current = _int(obj, "status.currentReplicas", 0)
    updated = _int(obj, "status.updatedReplicas", 0)
    partition = _int(obj, "spec.updateStrategy.rollingUpdate.partition", -1)
    if want > replicas:
        return _progress(f"{replicas}/{want} replicas created")
    if want > ready:
        return _progress(f"{ready}/{want} replicas ready")
    if replicas > want:
        return _progress(f"{replicas - want} old replicas pending termination")
    if partition != -1:
        target = max(want - partition, 0)
        if updated < target:
            return _progress(f"partitioned rollout: {updated}/{target} replicas updated")
        return _current(f"partitioned rollout complete: {updated} replicas updated")
    if want > current:
        return _progress(f"{current}/{want} replicas at the current revision")
    if _str(obj, "status.currentRevision") != _str(obj, "status.updateRevision"):
        return _progress("waiting for the update revision to become current")
    return _current(f"{ready}/{want} replicas ready")


def _daemonset(obj: Obj) -> ObjectHealth:
    # As kstatus: the controller always sets both, so their absence means not yet observed.
    if (
        _field(obj, "metadata.generation") is None
        or _field(obj, "status.observedGeneration") is None
    ):
        return _progress("not yet observed by the DaemonSet controller")
    want = _int(obj, "status.desiredNumberScheduled", -1)
    if want == -1:
        return _progress("status.desiredNumberScheduled not yet set")
    for path, label in (
        ("status.currentNumberScheduled", "scheduled"),
        ("status.updatedNumberScheduled", "updated"),
        ("status.numberAvailable", "available"),
        ("status.numberReady", "ready"),
    ):
        have = _int(obj, path, 0)
        if want > have:
            return _progress(f"{have}/{want} pods {label}")
    return _current(f"{want}/{want} pods ready")


def _replicaset(obj: Obj) -> ObjectHealth:
    failure = _conditions(obj).get("ReplicaFailure")
    if _is(failure, "True") and failure is not None:
        return _progress(_explain(failure, "ReplicaFailure"))
    want = _int(obj, "spec.replicas", 1)
    for path, label in (
        ("status.fullyLabeledReplicas", "labelled"),
        ("status.availableReplicas", "available"),
        ("status.readyReplicas", "ready"),
    ):
        have = _int(obj, path, 0)
        if want > have:
            return _progress(f"{have}/{want} replicas {label}")
    replicas = _int(obj, "status.replicas", 0)
    if replicas > want:
        return _progress(f"{replicas - want} replicas pending termination")
    return _current(f"{want}/{want} replicas available")


def _pod(obj: Obj) -> ObjectHealth:
    phase = _str(obj, "status.phase")
    conditions = _conditions(obj)
    if phase == "Succeeded":
        return _current("Pod completed")
    if phase == "Failed":
        # kstatus calls a finished Pod Current either way; a Pod declared in Git that failed
        # is what the user must hear about.
        return _failed(f"Pod failed: {_str(obj, 'status.reason') or 'containers exited'}")
    if phase == "Running":
        if _is(conditions.get("Ready"), "True"):
            return _current("Pod ready")
        looping = _crash_looping(obj)
        if looping:
            return _failed(f"containers in CrashLoopBackOff: {', '.join(looping)}")
        return _progress("Pod running, not ready")
    if phase == "Pending":
        # kstatus turns Unschedulable into Failed after 15 s of wall time; a pure rule has no
        # clock, so it stays InProgress and the wait's timeout decides.
        scheduled = conditions.get("PodScheduled")
        if _is(scheduled, "False") and scheduled is not None:
            return _progress(_explain(scheduled, "Pod not scheduled"))
        return _progress("Pod pending")
    return _progress("Pod not yet observed") if not phase else _progress(f"Pod phase {phase}")


def _crash_looping(obj: Obj) -> list[str]:
    statuses = _field(obj, "status.containerStatuses")
    if not isinstance(statuses, list):
        return []
    return [
        str(s.get("name"))
        for s in statuses
        if isinstance(s, Mapping) and _str(s, "state.waiting.reason") == "CrashLoopBackOff"
    ]


def _job(obj: Obj) -> ObjectHealth:
    conditions = _conditions(obj)
    completions = _int(obj, "spec.completions", _int(obj, "spec.parallelism", 1))
    succeeded = _int(obj, "status.succeeded", 0)
    if _is(conditions.get("Complete"), "True"):
        return _current(f"Job complete: {succeeded}/{completions} succeeded")
    failed = conditions.get("Failed")
    if _is(failed, "True") and failed is not None:
        return _failed(f"Job failed: {_explain(failed, 'Failed')}")
    if _is(conditions.get("Suspended"), "True") and _field(obj, "spec.suspend") is True:
        return _current("Job suspended")
    # kstatus calls a started Job Current; a wave waits for a migration Job to finish, so a
    # Job is InProgress until it completes.
    if not _str(obj, "status.startTime"):
        return _progress("Job not started")
    return _progress(f"Job running: {succeeded}/{completions} succeeded")


def _pvc(obj: Obj) -> ObjectHealth:
    phase = _str(obj, "status.phase", "unknown")
    if phase == "Bound":
        return _current("Bound")
    if phase == "Lost":
        return _failed("PersistentVolumeClaim lost its volume")
    return _progress(f"not Bound (phase {phase})")


def _ingress_address(obj: Obj) -> bool:
    ingress = _field(obj, "status.loadBalancer.ingress")
    return isinstance(ingress, list) and len(ingress) > 0


def _service(obj: Obj) -> ObjectHealth:
    # kstatus checks only spec.clusterIP; a LoadBalancer is usable once it has an address.
    if _str(obj, "spec.type") == "LoadBalancer" and not _ingress_address(obj):
        return _progress("waiting for a load balancer address")
    return _current("Service ready")


def _ingress(obj: Obj) -> ObjectHealth:
    if not _ingress_address(obj):
        return _progress("waiting for an address")
    return _current("address assigned")


def _namespace(obj: Obj) -> ObjectHealth:
    if _str(obj, "status.phase") == "Terminating":
        return ObjectHealth(Health.TERMINATING, "Namespace is terminating")
    return _current("Namespace active")


def _crd(obj: Obj) -> ObjectHealth:
    conditions = _conditions(obj)
    names = conditions.get("NamesAccepted")
    if _is(names, "False") and names is not None:
        return _failed(_explain(names, "names not accepted"))
    established = conditions.get("Established")
    if established is not None and _is(established, "True"):
        return _current("Established")
    if (
        established is not None
        and _is(established, "False")
        and established.get("reason") != "Installing"
    ):
        return _failed(_explain(established, "not Established"))
    return _progress("not yet Established")


def _apiservice(obj: Obj) -> ObjectHealth:
    available = _conditions(obj).get("Available")
    if available is not None and _is(available, "True"):
        return _current("Available")
    return _progress(_explain(available, "not Available") if available else "not Available")


def _hpa(obj: Obj) -> ObjectHealth:
    # Not in kstatus. Argo CD reads the autoscaler's conditions: a `Failed...` reason (metrics
    # that cannot be read, a target that cannot be scaled) is a failure, anything else settles.
    for cond in _conditions(obj).values():
        if _is(cond, "False") and str(cond.get("reason", "")).startswith("Failed"):
            return _failed(_explain(cond, "autoscaler failing"))
    return _current("autoscaler active")


def _always_current(obj: Obj) -> ObjectHealth:
    return _current(f"{_str(obj, 'kind')} has no rollout")


_RULES: dict[tuple[str, str], Callable[[Obj], ObjectHealth]] = {
    ("apps", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _replicaset,
    ("", "Pod"): _pod,
    ("batch", "Job"): _job,
    ("batch", "CronJob"): _always_current,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "Service"): _service,
    ("networking.k8s.io", "Ingress"): _ingress,
    ("", "Namespace"): _namespace,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
    ("apiregistration.k8s.io", "APIService"): _apiservice,
    ("autoscaling", "HorizontalPodAutoscaler"): _hpa,
}

RULE_KINDS: frozenset[tuple[str, str]] = frozenset(_RULES)
"""(group, kind) pairs with their own rule; every other kind gets the generic rule."""
