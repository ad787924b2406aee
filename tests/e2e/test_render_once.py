"""`gitopsd --once` and `validate` on a kustomize target, as processes (issue 12)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kubernetes import client

from tests.e2e.conftest import Gitopsd
from tests.support.tools import KUSTOMIZE, build_tool


def test_a_second_once_on_a_rendered_commit_runs_no_tool(
    gitopsd: Gitopsd, api_client: object, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    wrapper = tmp_path / "kustomize"
    wrapper.write_text(f'#!/bin/sh\necho call >> {calls}\nexec {build_tool(KUSTOMIZE)} "$@"\n')
    os.chmod(wrapper, 0o755)
    ns = gitopsd.namespace
    gitopsd.remote.commit(
        {
            "base/kustomization.yaml": "resources: [settings.yaml]\n",
            "base/settings.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
                "data:\n  env: ${ENV}\n"
            ),
            "overlays/prod/kustomization.yaml": "resources: [../../base]\nnamePrefix: prod-\n",
        }
    )
    gitopsd.write_config(
        gitopsd.target(
            path="overlays/prod", tools={"kustomize": str(wrapper)}, substitute={"ENV": "prod"}
        )
    )
    for expected_calls in (1, 1):
        result = gitopsd.run("--once")
        assert result.returncode == 0, result.stderr
        assert calls.read_text().count("call") == expected_calls
    live = client.CoreV1Api(api_client).read_namespaced_config_map("prod-settings", ns)
    assert live.data == {"env": "prod"}
    history = gitopsd.run("history", "--json")
    assert [p["outcome"] for p in json.loads(history.stdout)["passes"]] == [
        "converged",
        "in_sync",
    ]
    validated = gitopsd.run("validate")
    assert validated.returncode == 0, validated.stderr
    assert "app: ok, 1 objects (kustomize)" in validated.stdout


def test_diff_path_previews_a_kustomize_overlay_in_a_working_copy(
    gitopsd: Gitopsd, api_client: object, tmp_path: Path
) -> None:
    base = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  env: {env}\n"
    gitopsd.remote.commit(
        {
            "base/kustomization.yaml": "resources: [settings.yaml]\n",
            "base/settings.yaml": base.format(env="blue"),
            "overlays/prod/kustomization.yaml": "resources: [../../base]\nnamePrefix: prod-\n",
        }
    )
    gitopsd.write_config(gitopsd.target(path="overlays/prod", tools={"kustomize": _kustomize()}))
    assert gitopsd.run("--once").returncode == 0
    # A working copy with an edit in the base, which the overlay reaches through ../../base.
    work = tmp_path / "work"
    for name, text in {
        "base/kustomization.yaml": "resources: [settings.yaml]\n",
        "base/settings.yaml": base.format(env="red"),
        "overlays/prod/kustomization.yaml": "resources: [../../base]\nnamePrefix: prod-\n",
    }.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)

    result = gitopsd.run("diff", "--path", str(work / "overlays" / "prod"), "--output", "json")

    assert result.returncode == 3, result.stderr
    (target,) = json.loads(result.stdout)["targets"]
    assert [(o["kind"], o["name"], o["fields"]) for o in target["objects"]] == [
        ("ConfigMap", "prod-settings", ["data.env"])
    ]
    # The folder alone (not inside a copy of the repository) cannot reach ../../base.
    alone = gitopsd.run("diff", "--path", str(work / "base"))
    assert alone.returncode == 1
    assert "a folder ending in 'overlays/prod'" in alone.stderr
    live = client.CoreV1Api(api_client).read_namespaced_config_map(
        "prod-settings", gitopsd.namespace
    )
    assert live.data == {"env": "blue"}


def _kustomize() -> str:
    return str(build_tool(KUSTOMIZE))
