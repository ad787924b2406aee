"""Charts from a real chart repository (`helm package` + `helm repo index`, served on
loopback with Basic auth), values from Git, applied to the real kube-apiserver (issue 12)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gitopsd.passresult import PassOutcome
from gitopsd.renderconfig import HelmSettings
from gitopsd.renderers import with_chart_cache
from gitopsd.status import TargetStatus
from tests.cluster.render_rig import RenderRig
from tests.support.chart_server import ChartServer

TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}
data:
  chart: {{ .Chart.Version | quote }}
  env: {{ .Values.env | quote }}
"""


def _chart(directory: Path, version: str) -> Path:
    chart = directory / f"src-{version}" / "web"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: web\nversion: {version}\n")
    (chart / "values.yaml").write_text("env: dev\n")
    (chart / "templates" / "config.yaml").write_text(TEMPLATE)
    return chart


@pytest.fixture
def charts(
    tmp_path: Path, helm_tool: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ChartServer]:
    password = secrets.token_hex(12)
    monkeypatch.setenv("GITOPSD_TEST_CHARTS_PASSWORD", password)
    server = ChartServer(tmp_path / "repo", str(helm_tool), "reader", password)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _data(api_client: Any, namespace: str, name: str) -> dict[str, str]:
    return dict(client.CoreV1Api(api_client).read_namespaced_config_map(name, namespace).data)


def test_a_chart_from_a_repository_then_a_newer_version_in_range(
    render_rig: RenderRig, charts: ChartServer, helm_tool: Path, api_client: Any, tmp_path: Path
) -> None:
    render_rig.tools["helm"] = str(helm_tool)
    charts.publish(_chart(tmp_path, "0.1.0"))
    charts.publish(_chart(tmp_path, "1.0.0"))  # outside the range: never chosen
    render_rig.commit({"deploy/prod.yaml": "env: prod\n"})
    helm = HelmSettings(
        release="web",
        values_files=("prod.yaml",),
        chart="web",
        repo=charts.url,
        version=">=0.1.0 <1.0.0",
        username="reader",
        password_env="GITOPSD_TEST_CHARTS_PASSWORD",
    )
    target = with_chart_cache(
        render_rig.target("charted", "deploy", helm=helm), render_rig.state / "charts"
    )
    first = render_rig.run(target)
    assert first.outcome is PassOutcome.CONVERGED, first.error
    assert _data(api_client, render_rig.namespace, "web") == {"chart": "0.1.0", "env": "prod"}

    # Nothing changed: one conditional index request, answered 304; no archive fetched.
    charts.requests.clear()
    again = render_rig.run(target)
    assert again.outcome is PassOutcome.IN_SYNC, again.error
    assert [(r.path, r.status, r.conditional) for r in charts.requests] == [
        ("/charts/index.yaml", 304, True)
    ]

    # A new version in the range is picked up on the next pass, its archive fetched once.
    charts.publish(_chart(tmp_path, "0.2.0"))
    charts.requests.clear()
    newer = render_rig.run(target)
    assert newer.outcome is PassOutcome.CONVERGED, newer.error
    assert _data(api_client, render_rig.namespace, "web") == {"chart": "0.2.0", "env": "prod"}
    archives = [r.path for r in charts.requests if r.path.endswith(".tgz")]
    assert archives == ["/charts/web-0.2.0.tgz"]

    # The chart version goes with the commit: in the pass result (/status shows it) and
    # once per commit and version in the journal.
    assert (first.revision and first.revision.chart) == "web 0.1.0"
    assert (newer.revision and newer.revision.chart) == "web 0.2.0"
    commit = render_rig.remote.head()
    events = [e["detail"] for e in render_rig.journal.events(target.name)]
    assert events == [
        {"revision": commit, "chart": "web", "version": "0.1.0"},
        {"revision": commit, "chart": "web", "version": "0.2.0"},
    ]
    board = TargetStatus(target.name, 60.0)
    board.record(newer)
    assert board.as_dict(None)["chart"] == "web 0.2.0"


def test_a_wrong_password_is_refused_without_showing_it(
    render_rig: RenderRig, charts: ChartServer, helm_tool: Path, tmp_path: Path
) -> None:
    render_rig.tools["helm"] = str(helm_tool)
    charts.publish(_chart(tmp_path, "0.1.0"))
    render_rig.commit({"deploy/prod.yaml": "env: prod\n"})
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password-xyz\n")
    helm = HelmSettings(chart="web", repo=charts.url, username="reader", password_file=wrong)
    target = render_rig.target("denied", "deploy", helm=helm)
    target = replace(target, render=replace(target.render, chart_cache=tmp_path / "charts"))
    result = render_rig.run(target)
    assert result.outcome is PassOutcome.FAILED
    error = str(result.error)
    assert "answered 401: check helm.username and helm.password_file/password_env" in error, error
    assert "not-the-password-xyz" not in error


def test_an_archive_that_does_not_match_the_index_digest_is_not_used(
    render_rig: RenderRig, charts: ChartServer, helm_tool: Path, api_client: Any, tmp_path: Path
) -> None:
    render_rig.tools["helm"] = str(helm_tool)
    charts.publish(_chart(tmp_path, "0.1.0"))
    archive = charts.root / "web-0.1.0.tgz"
    archive.write_bytes(archive.read_bytes() + b"tampered")
    render_rig.commit({"deploy/prod.yaml": "env: prod\n"})
    helm = HelmSettings(
        chart="web",
        repo=charts.url,
        username="reader",
        password_env="GITOPSD_TEST_CHARTS_PASSWORD",
    )
    target = with_chart_cache(
        render_rig.target("tampered", "deploy", helm=helm), render_rig.state / "charts"
    )
    result = render_rig.run(target)
    assert result.outcome is PassOutcome.FAILED
    assert "does not match the index's digest; not used" in str(result.error), result.error
    assert not list((render_rig.state / "charts").rglob("*.tgz"))
