"""Helm charts from a real Git remote, rendered by the real `helm template` with the test
cluster's capabilities, applied to the real kube-apiserver (issue 12)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gitopsd.passresult import PassOutcome
from gitopsd.renderconfig import HelmSettings
from tests.cluster.render_rig import RenderRig
from tests.support.git_remotes import Symlink
from tests.support.waiting import eventually

TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
  namespace: {{ .Release.Namespace }}
data:
  env: {{ .Values.env | quote }}
  replicas: {{ .Values.replicas | quote }}
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
  {{- if .Capabilities.APIVersions.Has (printf "%s/v1/Gadget" .Values.gadgetGroup) }}
  gadgets: "served"
  {{- else }}
  gadgets: "absent"
  {{- end }}
"""


LEAK = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: leak
data:
  leaked: {{ .Files.Get "files/leak.txt" | quote }}
"""


def _chart(group: str) -> dict[str, str]:
    return {
        "chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
        "chart/values.yaml": f"env: dev\nreplicas: 1\ngadgetGroup: {group}\n",
        "chart/templates/config.yaml": TEMPLATE,
        "env/prod.yaml": "env: prod\n",
        "env/staging.yaml": "env: staging\nreplicas: 2\n",
    }


@pytest.fixture
def gadget_group(api_client: Any, render_rig: RenderRig) -> Iterator[str]:
    """A CRD served by the cluster, for the chart's `.Capabilities.APIVersions.Has`."""
    group = f"g-{render_rig.unique}.test.gitopsd.io"
    with _gadgets(api_client, render_rig.namespace, group):
        yield group


@contextlib.contextmanager
def _gadgets(api_client: Any, namespace: str, group: str) -> Iterator[None]:
    """The Gadget CRD of `group`, served until the block ends."""
    extensions = client.ApiextensionsV1Api(api_client)
    extensions.create_custom_resource_definition(
        {
            "metadata": {"name": f"gadgets.{group}"},
            "spec": {
                "group": group,
                "names": {"kind": "Gadget", "plural": "gadgets"},
                "scope": "Namespaced",
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": {"type": "object"}},
                    }
                ],
            },
        }
    )
    custom = client.CustomObjectsApi(api_client)

    def served() -> bool:
        try:
            custom.list_namespaced_custom_object(group, "v1", namespace, "gadgets")
        except client.ApiException:
            return False
        return True

    try:
        assert eventually(served, 30), "the CRD was never served"
        yield
    finally:
        extensions.delete_custom_resource_definition(f"gadgets.{group}")


def _data(api_client: Any, namespace: str, name: str) -> dict[str, str]:
    return dict(client.CoreV1Api(api_client).read_namespaced_config_map(name, namespace).data)


def test_a_chart_per_environment_renders_with_the_clusters_capabilities(
    render_rig: RenderRig, helm_tool: Path, gadget_group: str, api_client: Any
) -> None:
    render_rig.tools["helm"] = str(helm_tool)
    render_rig.commit(_chart(gadget_group))
    # The server's version, not helm's default (v1.20.0); helm keeps major.minor.patch only
    # (this test cluster's is v0.0.0-master+$Format:%H$).
    version = client.VersionApi(api_client).get_code().git_version.split("+")[0].split("-")[0]
    # prod: replicas from the inline values (merged last); staging: from its values file.
    for env, inline, replicas in (("prod", '{"replicas":3}', "3"), ("staging", "{}", "2")):
        helm = HelmSettings(
            release=f"web-{env}", values_files=(f"../env/{env}.yaml",), values_json=inline
        )
        target = render_rig.target(env, "chart", helm=helm)
        result = render_rig.run(target)
        assert result.outcome is PassOutcome.CONVERGED, result.error
        assert _data(api_client, render_rig.namespace, f"web-{env}-config") == {
            "env": env,
            "replicas": replicas,
            "kube": version,
            "gadgets": "served",
        }


def test_a_template_error_names_the_target_the_renderer_and_helms_line(
    render_rig: RenderRig, helm_tool: Path
) -> None:
    render_rig.tools["helm"] = str(helm_tool)
    files = _chart("none.example")
    files["chart/templates/bad.yaml"] = "{{ .Values.nope.deeper }}\n"
    render_rig.commit(files)
    result = render_rig.run(render_rig.target("bad", "chart"))
    assert result.outcome is PassOutcome.FAILED
    error = str(result.error)
    assert error.startswith(f"target bad-{render_rig.unique}: helm render of chart: Error:"), error
    assert "nil pointer evaluating interface {}.deeper" in error, error


def test_a_cached_helm_render_is_rendered_again_once_a_crd_is_served(
    render_rig: RenderRig, helm_tool: Path, api_client: Any, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    wrapper = tmp_path / "helm"
    wrapper.write_text(f'#!/bin/sh\necho call >> {calls}\nexec {helm_tool} "$@"\n')
    os.chmod(wrapper, 0o755)
    render_rig.tools["helm"] = str(wrapper)
    group = f"late-{render_rig.unique}.test.gitopsd.io"
    render_rig.commit(_chart(group))
    target = render_rig.target("late", "chart", helm=HelmSettings(release="late"))
    assert render_rig.run(target).outcome is PassOutcome.CONVERGED
    assert _data(api_client, render_rig.namespace, "late-config")["gadgets"] == "absent"
    # A no-change pass on an unchanged cluster runs no tool (a new Reconciler, as `--once`).
    assert render_rig.run(target).outcome is PassOutcome.IN_SYNC
    assert calls.read_text().count("call") == 1
    with _gadgets(api_client, render_rig.namespace, group):
        render_rig.adapter.refresh_discovery()  # as a new `--once` process discovers it
        result = render_rig.run(target)
        assert result.outcome is PassOutcome.CONVERGED, result.error
        assert calls.read_text().count("call") == 2
        assert _data(api_client, render_rig.namespace, "late-config")["gadgets"] == "served"


def test_a_missing_helm_says_how_to_install_it_or_set_tools_helm(
    render_rig: RenderRig, tmp_path: Path
) -> None:
    render_rig.tools["helm"] = str(tmp_path / "no-helm")
    render_rig.commit(_chart("none.example"))
    result = render_rig.run(render_rig.target("nohelm", "chart"))
    assert result.outcome is PassOutcome.FAILED
    error = str(result.error)
    assert "cannot run" in error and "No such file or directory" in error, error
    assert "install no-helm" in error and "or set `tools.helm` to its path" in error, error


@pytest.mark.parametrize(
    ("files", "values_files", "expected"),
    [
        (
            {"env/prod.yaml": Symlink("../../../../../../etc/hostname")},
            ("../env/prod.yaml",),
            "helm.values_files '../env/prod.yaml' goes through symlink 'env/prod.yaml', "
            "which leads outside the repository: refused",
        ),
        (
            {  # read by `.Files.Get`: left out of the checkout, it would render as empty
                "chart/files/leak.txt": Symlink("../../../../../../../etc/hostname"),
                "chart/templates/leak.yaml": LEAK,
            },
            (),
            "'chart/files/leak.txt' is a symlink leading outside the repository: refused",
        ),
    ],
    ids=["values-file", "chart-file"],
)
def test_a_symlink_out_of_the_repository_is_refused_by_name(
    render_rig: RenderRig,
    helm_tool: Path,
    files: dict[str, Symlink],
    values_files: tuple[str, ...],
    expected: str,
) -> None:
    render_rig.tools["helm"] = str(helm_tool)
    render_rig.commit({**_chart("none.example"), **files})
    target = render_rig.target("link", "chart", helm=HelmSettings(values_files=values_files))
    result = render_rig.run(target)
    assert result.outcome is PassOutcome.FAILED
    assert expected in str(result.error), result.error


def test_a_value_a_chart_quotes_in_its_error_is_not_shown(
    render_rig: RenderRig, helm_tool: Path
) -> None:
    render_rig.tools["helm"] = str(helm_tool)
    files = _chart("none.example")
    files["env/prod.yaml"] = "env: prod\ndb:\n  password: hunter2-from-values\n"
    files["chart/templates/check.yaml"] = (
        '{{ fail (printf "password %s is too weak" .Values.db.password) }}\n'
    )
    render_rig.commit(files)
    helm = HelmSettings(values_files=("../env/prod.yaml",))
    result = render_rig.run(render_rig.target("weak", "chart", helm=helm))
    assert result.outcome is PassOutcome.FAILED
    error = str(result.error)
    assert "password <a value from a values file> is too weak" in error, error
    assert "hunter2" not in error
