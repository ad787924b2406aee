"""A dry-run the API server fails (5xx or 429 after every retry) did not refuse the revision:
the pass fails retryable, so the daemon backs off, instead of blaming the commit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from gitopsd.passresult import PassOutcome
from tests.cluster.conftest import Rig
from tests.support.cluster import free_port

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n"


@pytest.fixture
def failing_webhook(api_client: Any, rig: Rig) -> Iterator[None]:
    """A validating webhook on the test's namespace that nothing serves: the API server
    answers every write there with 500 (failurePolicy Fail)."""
    admission = client.AdmissionregistrationV1Api(api_client)
    name = f"unserved-{rig.unique}"
    admission.create_validating_webhook_configuration(
        {
            "metadata": {"name": name},
            "webhooks": [
                {
                    "name": "unserved.gitopsd.io",
                    "clientConfig": {"url": f"https://127.0.0.1:{free_port()}/validate"},
                    "rules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["configmaps"],
                        }
                    ],
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": rig.namespace}
                    },
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "timeoutSeconds": 2,
                }
            ],
        }
    )
    try:
        yield
    finally:
        admission.delete_validating_webhook_configuration(name)


@pytest.mark.usefixtures("failing_webhook")
def test_server_failing_the_dry_run_is_retryable_not_a_refusal(rig: Rig) -> None:
    rig.source.files["settings.yaml"] = CONFIGMAP

    result = rig.run()

    assert result.outcome is PassOutcome.FAILED
    assert result.error is not None and result.error.retryable, result.error
    assert "revision refused" not in str(result.error)
    assert "could not validate" in str(result.error)
    assert result.changes.writes == 0
