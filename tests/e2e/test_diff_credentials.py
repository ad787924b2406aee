"""`gitopsd diff` with credentials that cannot write: a CI job's reviewer account.

A client certificate signed by the cluster's CA names the user; RBAC grants it get, list
and patch (patch carries server-side dry-runs). RBAC cannot tell a dry-run from a write,
so the second test adds what the README recommends for CI: create too, and a
ValidatingAdmissionPolicy that lets this user only dry-run.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.e2e.conftest import Gitopsd, wait_for
from tests.e2e.test_diff_ref import (
    EXPECTED,
    applied_main,
    cluster_state,
    feature_files,
    json_objects,
    markdown_objects,
    outputs,
    text_objects,
)
from tests.support.cluster import ControlPlane

KINDS = [
    {"apiGroups": [""], "resources": ["configmaps", "secrets", "services"]},
    {"apiGroups": ["apps"], "resources": ["deployments"]},
]


def dry_run_only_policy(user: str) -> tuple[dict[str, object], dict[str, object]]:
    """The README's ValidatingAdmissionPolicy: `user` may send dry-runs, never a write."""
    rule = {
        "apiGroups": ["*"],
        "apiVersions": ["*"],
        "resources": ["*"],
        "operations": ["CREATE", "UPDATE", "DELETE"],
    }
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": user},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [rule]},
            "matchConditions": [
                {"name": "reviewer", "expression": f'request.userInfo.username == "{user}"'}
            ],
            "validations": [{"expression": "request.dryRun == true", "message": "dry-run only"}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": user},
        "spec": {"policyName": user, "validationActions": ["Deny"]},
    }
    return policy, binding


class Reviewer:
    """A user with its own kubeconfig, and the cluster-wide objects made for it."""

    def __init__(self, cluster: ControlPlane, api_client: object, verbs: list[str]) -> None:
        self.name = f"preview-{uuid.uuid4().hex[:8]}"
        self.kubeconfig = cluster.user_kubeconfig(self.name)
        self.rbac = client.RbacAuthorizationV1Api(api_client)
        self.admission = client.AdmissionregistrationV1Api(api_client)
        # Listed across namespaces: gitopsd lists what a target owns by label, cluster-wide.
        rules = [{**kinds, "verbs": verbs} for kinds in KINDS]
        self.rbac.create_cluster_role({"metadata": {"name": self.name}, "rules": rules})
        self.rbac.create_cluster_role_binding(
            {
                "metadata": {"name": self.name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": self.name,
                },
                "subjects": [
                    {"kind": "User", "name": self.name, "apiGroup": "rbac.authorization.k8s.io"}
                ],
            }
        )
        self.policy = False

    def dry_run_only(self, ns: str) -> None:
        policy, binding = dry_run_only_policy(self.name)
        self.admission.create_validating_admission_policy(policy)
        self.admission.create_validating_admission_policy_binding(binding)
        self.policy = True
        # The API server enforces a new policy once its informer has it: wait for a refusal.
        wait_for(lambda: self.create_status(ns, "probe") == 422)

    def delete(self) -> None:
        if self.policy:
            self.admission.delete_validating_admission_policy_binding(self.name)
            self.admission.delete_validating_admission_policy(self.name)
        self.rbac.delete_cluster_role_binding(self.name)
        self.rbac.delete_cluster_role(self.name)

    def create_status(self, ns: str, name: str) -> int:
        return self.write_status(ns, {"create": name})["create"]

    def write_status(self, ns: str, names: dict[str, str] | None = None) -> dict[str, int]:
        """The HTTP status of each real write this user tries (0: it was made)."""
        names = names or {"create": "by-reviewer", "patch": "other", "delete": "web"}
        api = config.new_client_from_config(config_file=str(self.kubeconfig))
        core = client.CoreV1Api(api)
        writes = {
            "create": lambda n: core.create_namespaced_config_map(ns, {"metadata": {"name": n}}),
            "patch": lambda n: core.patch_namespaced_config_map(n, ns, {"data": {"k": "changed"}}),
            "delete": lambda n: core.delete_namespaced_service(n, ns),
        }
        try:
            return {verb: _status(writes[verb], name) for verb, name in names.items()}
        finally:
            api.close()


def _status(write: Callable[[str], object], name: str) -> int:
    try:
        write(name)
    except client.ApiException as exc:
        return int(exc.status)
    return 0


@pytest.fixture
def reviewers(cluster: ControlPlane, api_client: object) -> Iterator[list[Reviewer]]:
    made: list[Reviewer] = []
    yield made
    for reviewer in made:
        reviewer.delete()


def preview_as(gitopsd: Gitopsd, kubeconfig: Path, api_client: object) -> dict[str, object]:
    """The branch previewed in the three formats with `kubeconfig`; nothing changed."""
    ns = gitopsd.namespace
    applied_main(gitopsd)  # by the admin, as the daemon would have
    gitopsd.remote.commit(feature_files(ns), branch="feature")
    gitopsd.write_config(gitopsd.target(kubeconfig=str(kubeconfig)))
    before = cluster_state(api_client, ns)
    shown = outputs(gitopsd, "--ref", "feature")
    for fmt, result in shown.items():
        assert result.returncode == 3, (fmt, result.stderr)
    assert text_objects(shown["text"].stdout) == EXPECTED
    assert markdown_objects(shown["markdown"].stdout) == EXPECTED
    document = json.loads(shown["json"].stdout)
    assert json_objects(document) == EXPECTED
    assert cluster_state(api_client, ns) == before
    return {
        "document": document,
        "markdown": shown["markdown"].stdout,
        "text": shown["text"].stdout,
    }


def test_get_list_and_patch_suffice_a_new_object_shown_unvalidated(
    gitopsd: Gitopsd, cluster: ControlPlane, api_client: object, reviewers: list[Reviewer]
) -> None:
    reviewer = Reviewer(cluster, api_client, ["get", "list", "patch"])
    reviewers.append(reviewer)

    shown = preview_as(gitopsd, reviewer.kubeconfig, api_client)

    (target,) = shown["document"]["targets"]  # type: ignore[index]
    notes = {o["kind"]: o["note"] for o in target["objects"]}
    # The API server authorises the dry-run of a create as a create.
    assert notes["Deployment"].startswith("not validated by the API server, which refuses")
    assert "may not create deployments.apps in namespace" in notes["Deployment"]
    assert 'verbs: ["create"]' in notes["Deployment"]  # the RBAC rule to add
    assert notes["ConfigMap"] is None and notes["Service"] is None
    assert "NOTE: Deployment.apps " in shown["text"]  # type: ignore[operator]
    assert "_not validated by the API server" in shown["markdown"]  # type: ignore[operator]
    # Writes this user cannot make; patch it can: RBAC has no verb for dry-run alone.
    assert reviewer.write_status(gitopsd.namespace) == {"create": 403, "patch": 0, "delete": 403}


def test_with_the_dry_run_only_policy_every_write_is_refused(
    gitopsd: Gitopsd, cluster: ControlPlane, api_client: object, reviewers: list[Reviewer]
) -> None:
    reviewer = Reviewer(cluster, api_client, ["get", "list", "patch", "create"])
    reviewers.append(reviewer)
    reviewer.dry_run_only(gitopsd.namespace)

    shown = preview_as(gitopsd, reviewer.kubeconfig, api_client)

    (target,) = shown["document"]["targets"]  # type: ignore[index]
    assert [o["note"] for o in target["objects"]] == [None, None, None]  # all validated
    # 422: denied by the admission policy; 403: no RBAC verb at all.
    assert reviewer.write_status(gitopsd.namespace) == {"create": 422, "patch": 422, "delete": 403}
