"""Drift is a declared field with another value live; nothing else."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gitopsd.diff import compare, format_path, object_diff_text, owners_of, parse_path
from gitopsd.model import FieldOwner
from gitopsd.normalize import LAST_APPLIED_ANNOTATION
from tests.support.standins import shown_as
from tests.unit._data import cases, desired, live

SECRET_VALUE = "s3cret-value"
NEW_SECRET_VALUE = "n3w-s3cret"


@pytest.mark.parametrize("case", cases("diff_cases.yaml"))
def test_compare_table(case: dict[str, Any]) -> None:
    report = compare(desired(case["desired"]), live(case["live"]))

    if not case["changes"]:
        assert report is None
        return
    assert report is not None
    assert not report.missing
    assert list(report.field_paths) == case["changes"]
    by_path = {change.path: change for change in report.changes}
    for path, values in (case.get("values") or {}).items():
        assert (by_path[path].desired, by_path[path].live) == (values["desired"], values["live"])


def test_compare_does_not_mutate_its_inputs() -> None:
    case = next(c.values[0] for c in cases("diff_cases.yaml") if "label with dots" in c.id)
    want, have = copy.deepcopy(case["desired"]), copy.deepcopy(case["live"])

    compare(desired(want), live(have))

    assert (want, have) == (case["desired"], case["live"])


def test_missing_live_object_is_reported_missing() -> None:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}

    report = compare(desired(manifest), None)

    assert report is not None
    assert report.missing
    assert report.changes == ()


def _secret(data: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    manifest = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "p"}}
    if data is not None:
        manifest["data"] = data
    return {**manifest, **fields}


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def test_changed_secret_value_is_reported_by_hash_only() -> None:
    want = _secret(stringData={"password": NEW_SECRET_VALUE})
    have = _secret({"password": _b64(SECRET_VALUE)})

    report = compare(desired(want), live(have))

    assert report is not None
    assert report.field_paths == ("data.password",)
    change = report.changes[0]
    assert change.desired == shown_as(NEW_SECRET_VALUE)
    assert change.live == shown_as(SECRET_VALUE)
    for value in (SECRET_VALUE, NEW_SECRET_VALUE, _b64(SECRET_VALUE), _b64(NEW_SECRET_VALUE)):
        assert value not in repr(report)


def test_secret_data_missing_live_is_redacted_as_a_whole() -> None:
    want = _secret({"password": _b64(SECRET_VALUE), "user": _b64("admin")})
    have = _secret()

    report = compare(desired(want), live(have))

    assert report is not None
    assert report.field_paths == ("data",)
    assert report.changes[0].live is None
    assert SECRET_VALUE not in repr(report)
    assert _b64(SECRET_VALUE) not in repr(report)


MANAGED_FIELDS = [
    {
        "manager": "gitopsd",
        "operation": "Apply",
        "time": "2025-01-01T00:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:spec": {
                "f:replicas": {},
                "f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {"f:image": {}}}}},
            }
        },
    },
    {
        "manager": "kubectl",
        "operation": "Update",
        "subresource": "scale",
        "time": "2025-02-01T10:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {"f:replicas": {}}},
    },
    {
        "manager": "kubectl-edit",
        "operation": "Update",
        "time": "2025-03-01T10:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app.kubernetes.io/name": {}}},
            "f:spec": {
                "f:template": {
                    "f:spec": {
                        "f:containers": {
                            'k:{"name":"web"}': {".": {}, "f:image": {}, "f:args": {}},
                        }
                    }
                }
            },
        },
    },
]


def _owned_live() -> Any:
    return live(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "p", "managedFields": MANAGED_FIELDS},
        }
    )


KUBECTL = FieldOwner("kubectl", "Update", "2025-02-01T10:00:00Z")
KUBECTL_EDIT = FieldOwner("kubectl-edit", "Update", "2025-03-01T10:00:00Z")


@pytest.mark.parametrize(
    ("paths", "owners"),
    [
        (["spec.replicas"], (KUBECTL,)),
        (["spec.template.spec.containers[name=web].image"], (KUBECTL_EDIT,)),
        (["spec.template.spec.containers[name=web].args[1]"], (KUBECTL_EDIT,)),
        (['metadata.labels["app.kubernetes.io/name"]'], (KUBECTL_EDIT,)),
        (["spec.replicas", "spec.template.spec.containers[name=web]"], (KUBECTL_EDIT, KUBECTL)),
        (["spec.template.spec.containers[name=log].image"], ()),
        (["spec.paused"], ()),
    ],
)
def test_owners_of_names_other_managers_newest_first(
    paths: list[str], owners: tuple[FieldOwner, ...]
) -> None:
    assert owners_of(_owned_live(), paths) == owners


def test_compare_names_the_manager_that_changed_the_field() -> None:
    want = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "p"},
    }
    have = copy.deepcopy(_owned_live().manifest)
    want["spec"] = {"replicas": 3}
    have["spec"] = {"replicas": 7}

    report = compare(desired(want), live(have))

    assert report is not None
    assert report.owners == (KUBECTL,)


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("spec.replicas", [("f", "spec"), ("f", "replicas")]),
        (
            "spec.containers[name=web].image",
            [("f", "spec"), ("f", "containers"), ("k", "name", "web"), ("f", "image")],
        ),
        ('metadata.labels["a.b/c"]', [("f", "metadata"), ("f", "labels"), ("f", "a.b/c")]),
        ("subjects[1]", [("f", "subjects"), ("i", "1")]),
        (
            "spec.volumeMounts[mountPath=/data]",
            [("f", "spec"), ("f", "volumeMounts"), ("k", "mountPath", "/data")],
        ),
    ],
)
def test_parse_path(path: str, segments: list[tuple[str, ...]]) -> None:
    assert parse_path(path) == segments


@pytest.mark.parametrize(
    ("segments", "path"),
    [
        (["spec", "replicas"], "spec.replicas"),
        (
            ["metadata", "labels", "app.kubernetes.io/name"],
            'metadata.labels["app.kubernetes.io/name"]',
        ),
        (["subjects", 1, "name"], "subjects[1].name"),
    ],
)
def test_format_path(segments: list[Any], path: str) -> None:
    assert format_path(segments) == path


def test_object_diff_text_shows_declared_fields_only() -> None:
    want = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "p"},
        "spec": {"replicas": 3},
    }
    have = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "p",
            "uid": "u-1",
            "managedFields": MANAGED_FIELDS,
        },
        "spec": {"replicas": 5, "revisionHistoryLimit": 10},
        "status": {"readyReplicas": 5},
    }

    text = object_diff_text(want, have, "Deployment p/web")

    assert text.startswith("--- live/Deployment p/web\n+++ desired/Deployment p/web\n")
    assert "-  replicas: 5\n" in text
    assert "+  replicas: 3\n" in text
    for server_owned in ("revisionHistoryLimit", "u-1", "managedFields", "readyReplicas"):
        assert server_owned not in text


def test_object_diff_text_in_sync_is_empty() -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a"},
        "data": {"k": "v"},
    }

    assert object_diff_text(manifest, {**manifest, "status": {}}, "ConfigMap a") == ""


@pytest.mark.parametrize(
    ("want", "have"),
    [
        (
            _secret(stringData={"password": NEW_SECRET_VALUE}),
            _secret({"password": _b64(SECRET_VALUE)}),
        ),
        (None, _secret({"password": _b64(SECRET_VALUE)})),
        (_secret({"password": _b64(SECRET_VALUE)}), None),
    ],
    ids=["changed", "deleted", "created"],
)
def test_object_diff_text_never_shows_a_secret_value(
    want: dict[str, Any] | None, have: dict[str, Any] | None
) -> None:
    if have is not None:
        last_applied = json.dumps({"stringData": {"password": SECRET_VALUE}})
        have["metadata"]["annotations"] = {LAST_APPLIED_ANNOTATION: last_applied}

    text = object_diff_text(want, have, "Secret p/db")

    assert "password: <redacted hmac:" in text
    for value in (SECRET_VALUE, NEW_SECRET_VALUE, _b64(SECRET_VALUE), _b64(NEW_SECRET_VALUE)):
        assert value not in text


def test_object_diff_text_of_a_deletion_drops_server_fields() -> None:
    have = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "resourceVersion": "99", "managedFields": MANAGED_FIELDS},
        "data": {"k": "v"},
    }

    text = object_diff_text(None, have, "ConfigMap a")

    assert "-  k: v\n" in text
    assert "resourceVersion" not in text
    assert "managedFields" not in text


def test_object_diff_text_shows_equivalent_spellings_as_no_change() -> None:
    case = next(c.values[0] for c in cases("diff_cases.yaml") if c.id.startswith("cpu 0.5"))
    want = copy.deepcopy(case["desired"])
    want["spec"]["replicas"] = 4

    text = object_diff_text(want, case["live"], "Deployment prod/web")

    lines = text.splitlines()[2:]  # after the ---/+++ header
    changed = [line for line in lines if line.startswith(("+", "-"))]
    assert changed == ["+  replicas: 4"]
