"""API server answers become the right ClusterError, with the fix in the message."""

from __future__ import annotations

import pytest

from gitopsd.adapters.kube_errors import (
    MAX_RETRY_AFTER,
    cluster_error,
    conflict_managers,
    retry_after_seconds,
    retry_wait,
)
from gitopsd.errors import (
    ClusterError,
    ConflictError,
    ForbiddenError,
    ImmutableFieldError,
    InvalidObjectError,
    NotFoundError,
    UnavailableError,
)

IMMUTABLE = {
    "message": 'Deployment.apps "web" is invalid: spec.selector: Invalid value: '
    '{"matchLabels":{"app":"web2"}}: field is immutable'
}


@pytest.mark.parametrize(
    ("status", "body", "expected", "retryable"),
    [
        (404, {"message": "not found"}, NotFoundError, False),
        (409, {"message": "Apply failed with 1 conflict"}, ConflictError, False),
        (403, {"message": "forbidden"}, ForbiddenError, False),
        (401, None, ForbiddenError, False),
        (422, {"message": "spec.ports[0].port: Invalid value"}, InvalidObjectError, False),
        (422, IMMUTABLE, ImmutableFieldError, False),
        (429, {"message": "too many requests"}, UnavailableError, True),
        (500, {"message": "etcdserver: request timed out"}, UnavailableError, True),
        # What server-side apply answers for `replicas: three` (a schema mismatch): the
        # object is wrong, retrying cannot help (acceptance test: reported as server trouble).
        (
            500,
            {
                "message": "failed to create typed patch object (ns/web; apps/v1, "
                "Kind=Deployment): .spec.replicas: expected numeric (int or float), got string"
            },
            InvalidObjectError,
            False,
        ),
        (
            500,
            {
                "message": "failed to convert new object (ns/s; /v1, Kind=Secret) to proper "
                "version: unable to convert unstructured object to /v1, Kind=Secret: error "
                "decoding from json: illegal base64 data at input byte 3"
            },
            InvalidObjectError,
            False,
        ),
        (503, None, UnavailableError, True),
        (418, {"message": "teapot"}, ClusterError, False),
    ],
)
def test_status_maps_to_error_family(
    status: int, body: object, expected: type[ClusterError], retryable: bool
) -> None:
    error = cluster_error(status, body, "ConfigMap ns/settings")
    assert type(error) is expected
    assert error.retryable is retryable
    assert error.status == status
    assert str(error).startswith("ConfigMap ns/settings: ")


def test_immutable_error_says_how_to_fix_it() -> None:
    assert "recreate: true" in str(cluster_error(422, IMMUTABLE, "Deployment.apps ns/web"))


def test_forbidden_error_says_what_to_grant() -> None:
    assert "permission" in str(cluster_error(403, {"message": "forbidden"}, "x"))


def test_multiline_server_message_stays_one_line() -> None:
    error = cluster_error(422, {"message": "first\nsecond"}, "x")
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"Retry-After": "3"}, None, 3.0),
        ({}, {"details": {"retryAfterSeconds": 2}}, 2.0),
        ({"Retry-After": "soon"}, {"details": {"retryAfterSeconds": 4}}, 4.0),
        ({}, {"message": "x"}, 0.5),
        (None, None, 0.5),
    ],
)
def test_retry_after(headers: dict[str, str] | None, body: object, expected: float) -> None:
    assert retry_after_seconds(headers, body, 0.5) == expected


@pytest.mark.parametrize(
    ("headers", "body", "tries", "jitter", "expected"),
    [
        ({"Retry-After": "1"}, None, 1, 0.0, 1.0),  # what a 429 from max-inflight asks
        ({"Retry-After": "1"}, None, 7, 1.0, 1.5),  # never sooner, at most half again
        ({}, {"details": {"retryAfterSeconds": 2}}, 1, 0.5, 2.5),
        ({"Retry-After": "3600"}, None, 1, 0.0, MAX_RETRY_AFTER),
        ({}, None, 1, 0.0, 0.2),  # no Retry-After: exponential backoff
        ({}, None, 3, 0.0, 0.8),
        ({}, None, 12, 0.0, 5.0),
    ],
)
def test_retry_wait(
    headers: dict[str, str], body: object, tries: int, jitter: float, expected: float
) -> None:
    assert retry_wait(headers, body, tries, jitter) == pytest.approx(expected)


def test_conflict_managers_are_read_from_causes() -> None:
    body = {
        "details": {
            "causes": [
                {"message": 'conflict with "kubectl-scale" using apps/v1', "field": ".spec.r"},
                {"message": 'conflict with "kubectl-edit" using apps/v1', "field": ".spec.x"},
                {"message": 'conflict with "kubectl-scale" using apps/v1', "field": ".spec.y"},
            ]
        }
    }
    assert conflict_managers(body) == ("kubectl-edit", "kubectl-scale")


def test_conflict_error_names_the_other_manager_and_the_setting() -> None:
    body = {
        "message": "Apply failed with 1 conflict",
        "details": {"causes": [{"message": 'conflict with "kubectl-scale" using apps/v1'}]},
    }
    message = str(cluster_error(409, body, "Deployment.apps ns/web"))
    assert "kubectl-scale" in message and "conflicts: force" in message
