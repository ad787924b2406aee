"""Variable substitution after a real kustomize build, applied to the real kube-apiserver
(issue 12)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubernetes import client

from gitopsd.passresult import PassOutcome
from gitopsd.renderconfig import SubstituteSource
from tests.cluster.render_rig import RenderRig

SECRET = "s3cr3t-substituted-value"
CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  env: ${ENV}
  region: ${REGION:=eu-west-1}
  literal: $${ENV}
  greeting: "hello ${NAME}"
"""
TOKEN = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: token
data:
  token: ${TOKEN}
"""
UNTOUCHED = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: raw
  annotations:
    gitopsd.io/substitute: disabled
data:
  script: echo ${HOME}
"""


def _data(api_client: Any, namespace: str, name: str) -> dict[str, str]:
    return dict(client.CoreV1Api(api_client).read_namespaced_config_map(name, namespace).data)


def test_substitution_with_defaults_escapes_secrets_and_a_missing_variable(
    render_rig: RenderRig, api_client: Any, tmp_path: Path
) -> None:
    secrets = tmp_path / "secret.env"
    secrets.write_text(f"TOKEN={SECRET}\n")
    names = tmp_path / "names.yaml"
    names.write_text("NAME: world\n")
    render_rig.commit(
        {
            "app/kustomization.yaml": "resources: [config.yaml, token.yaml, raw.yaml]\n",
            "app/config.yaml": CONFIG,
            "app/token.yaml": TOKEN,
            "app/raw.yaml": UNTOUCHED,
        }
    )
    target = render_rig.target(
        "subst",
        "app",
        substitute=(("ENV", "prod"),),
        substitute_from=(SubstituteSource(file=names), SubstituteSource(file=secrets, secret=True)),
    )
    result = render_rig.run(target)
    assert result.outcome is PassOutcome.CONVERGED, result.error
    namespace = render_rig.namespace
    assert _data(api_client, namespace, "settings") == {
        "env": "prod",
        "region": "eu-west-1",
        "literal": "${ENV}",
        "greeting": "hello world",
    }
    assert _data(api_client, namespace, "token") == {"token": SECRET}
    assert _data(api_client, namespace, "raw") == {"script": "echo ${HOME}"}

    # A changed secret is drift shown only as a stand-in, in the journal as in the result.
    secrets.write_text("TOKEN=another-secret-value\n")
    changed = render_rig.run(target, previews=True)
    assert changed.outcome is PassOutcome.CONVERGED, changed.error
    recorded = json.dumps(render_rig.journal.drifts(target.name), default=str)
    shown = json.dumps([str(p) for p in changed.previews], default=str)
    for text in (recorded, shown):
        assert SECRET not in text and "another-secret-value" not in text

    # A variable nobody defines refuses the revision, naming it and the object; nothing is
    # pruned (raw and token stay).
    render_rig.commit(
        {
            "app/kustomization.yaml": "resources: [config.yaml]\n",
            "app/config.yaml": CONFIG.replace("${ENV}\n", "${UNDEFINED_THING}\n"),
        }
    )
    failed = render_rig.run(target)
    assert failed.outcome is PassOutcome.FAILED
    error = str(failed.error)
    assert "variable UNDEFINED_THING is not defined" in error, error
    assert "ConfigMap settings" in error, error
    assert _data(api_client, namespace, "raw") == {"script": "echo ${HOME}"}
    assert _data(api_client, namespace, "token") == {"token": "another-secret-value"}


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: ${REPLICAS}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: "nginx:${TAG:=1.27}"
          ports:
            - containerPort: ${PORT}
          env:
            - name: PORT
              value: "${PORT}"
"""


def test_an_unquoted_number_is_substituted_as_a_number_and_a_quoted_one_stays_text(
    render_rig: RenderRig, api_client: Any
) -> None:
    # As Flux's postBuild (which substitutes in the YAML text): `replicas: ${REPLICAS}`
    # becomes the number 3, `value: "${PORT}"` stays the string "8080". kustomize writes
    # the second without its quotes; the sources still say it was quoted.
    render_rig.commit(
        {
            "plain/web.yaml": DEPLOYMENT,
            "kust/web.yaml": DEPLOYMENT,
            "kust/kustomization.yaml": "resources: [web.yaml]\nnamePrefix: k-\n",
        }
    )
    apps = client.AppsV1Api(api_client)
    for name, path, prefix in (("num-plain", "plain", ""), ("num-kust", "kust", "k-")):
        target = render_rig.target(name, path, substitute=(("REPLICAS", "3"), ("PORT", "8080")))
        result = render_rig.run(target)
        assert result.outcome is PassOutcome.CONVERGED, (path, result.error)
        deployment = apps.read_namespaced_deployment(f"{prefix}web", render_rig.namespace)
        assert deployment.spec.replicas == 3, path
        container = deployment.spec.template.spec.containers[0]
        assert container.ports[0].container_port == 8080, path
        assert [(e.name, e.value) for e in container.env] == [("PORT", "8080")], path
        assert container.image == "nginx:1.27", path
