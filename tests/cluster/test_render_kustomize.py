"""kustomize targets from a real Git remote, built by the real `kustomize`, applied to the
real kube-apiserver (issue 12)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from gitopsd.passresult import PassOutcome
from gitopsd.runner import preview_pass
from gitopsd.source.git import GitSource
from tests.cluster.render_rig import RenderRig
from tests.support.cluster import cache_dir
from tests.support.git_remotes import Symlink

BASE = {
    "base/kustomization.yaml": "resources:\n  - settings.yaml\n",
    "base/settings.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  level: v1\n"
    ),
}


def _overlay(prefix: str, extra: str = "") -> str:
    return f"resources:\n  - ../../base\nnamePrefix: {prefix}-\n{extra}"


def _config(api_client: Any, namespace: str, name: str) -> dict[str, str]:
    found = client.CoreV1Api(api_client).read_namespaced_config_map(name, namespace)
    return dict(found.data)


def _two_overlays(rig: RenderRig) -> tuple[Any, Any]:
    rig.commit(
        {
            **BASE,
            "overlays/prod/kustomization.yaml": _overlay("prod"),
            "overlays/staging/kustomization.yaml": _overlay("staging"),
        }
    )
    return rig.target("prod", "overlays/prod"), rig.target("staging", "overlays/staging")


def test_a_change_in_the_base_reaches_both_overlays(render_rig: RenderRig, api_client: Any) -> None:
    prod, staging = _two_overlays(render_rig)
    for target in (prod, staging):
        result = render_rig.run(target)
        assert result.outcome is PassOutcome.CONVERGED, result.error
    assert _config(api_client, render_rig.namespace, "prod-settings") == {"level": "v1"}

    render_rig.commit(
        {"base/settings.yaml": BASE["base/settings.yaml"].replace("level: v1", "level: v2")}
    )
    for target, name in ((prod, "prod-settings"), (staging, "staging-settings")):
        result = render_rig.run(target)
        assert result.outcome is PassOutcome.CONVERGED, result.error
        assert _config(api_client, render_rig.namespace, name) == {"level": "v2"}


def test_a_broken_overlay_refuses_only_its_revision_and_prunes_nothing(
    render_rig: RenderRig, api_client: Any
) -> None:
    prod, staging = _two_overlays(render_rig)
    for target in (prod, staging):
        assert render_rig.run(target).outcome is PassOutcome.CONVERGED
    # A patch the API server refuses (a label key that is no valid name), and a new
    # object that would be created if the revision were applied in part.
    render_rig.commit(
        {
            "overlays/staging/kustomization.yaml": (
                "resources:\n  - ../../base\n  - extra.yaml\nnamePrefix: staging-\n"
                "patches:\n  - path: broken.yaml\n"
            ),
            "overlays/staging/broken.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
                "  labels:\n    'not a/valid/key': x\n"
            ),
            "overlays/staging/extra.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata: {}\n"
            ),
        }
    )
    failed = render_rig.run(staging)
    assert failed.outcome is PassOutcome.FAILED
    assert "staging-settings" in str(failed.error)
    assert _config(api_client, render_rig.namespace, "staging-settings") == {"level": "v1"}
    names = {
        item.metadata.name
        for item in client.CoreV1Api(api_client)
        .list_namespaced_config_map(render_rig.namespace)
        .items
    }
    assert "staging-extra" not in names
    assert render_rig.run(prod).outcome is PassOutcome.IN_SYNC


def _refused(rig: RenderRig, files: dict[str, Any], path: str = "overlays/bad") -> str:
    """Apply the base first, then commit `files`: the pass fails and nothing is pruned."""
    rig.commit({**BASE, "overlays/bad/kustomization.yaml": _overlay("bad")})
    target = rig.target("bad", path)
    assert rig.run(target).outcome is PassOutcome.CONVERGED
    rig.commit(files)
    result = rig.run(target)
    assert result.outcome is PassOutcome.FAILED
    assert result.changes.entries == ()
    return str(result.error)


def test_a_remote_base_is_refused_unless_allowed(render_rig: RenderRig, api_client: Any) -> None:
    remote = "https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v3.3.1"
    error = _refused(
        render_rig,
        {"overlays/bad/kustomization.yaml": f"resources:\n  - ../../base\n  - {remote}\n"},
    )
    assert "is remote" in error and "kustomize.allow_remote: true" in error, error
    assert f"target bad-{render_rig.unique}: kustomize render of overlays/bad" in error
    assert _config(api_client, render_rig.namespace, "bad-settings") == {"level": "v1"}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {
                "overlays/bad/kustomization.yaml": _overlay(
                    "bad", "patches:\n  - path: ../../../../etc/passwd\n"
                )
            },
            "points outside the repository",
        ),
        (
            {
                "overlays/bad/kustomization.yaml": (
                    "resources:\n  - ../../base\n  - ../../../../../etc\n"
                )
            },
            "points outside the repository",
        ),
        (
            {
                "overlays/bad/kustomization.yaml": _overlay(
                    "bad", "patches:\n  - path: patch.txt\n"
                ),
                "overlays/bad/patch.txt": Symlink("/etc/passwd"),
            },
            "leads outside the repository",
        ),
        (
            {
                "overlays/bad/kustomization.yaml": "resources:\n  - ../../base\n  - outside\n",
                "overlays/bad/outside": Symlink("../../../.."),
            },
            "leads outside the repository",
        ),
    ],
    ids=["patch-escape", "resource-escape", "symlinked-file", "symlinked-directory"],
)
def test_a_file_outside_the_repository_is_refused(
    render_rig: RenderRig, api_client: Any, files: dict[str, Any], expected: str
) -> None:
    error = _refused(render_rig, files)
    assert expected in error, error
    assert "nothing was applied or pruned" in error
    assert _config(api_client, render_rig.namespace, "bad-settings") == {"level": "v1"}


def _wrapper(directory: Path, real: str, *, sleep: float = 0.0) -> tuple[Path, Path]:
    """A tool that counts its calls in a file, optionally sleeps, then runs the real one."""
    calls = directory / "calls"
    script = directory / "kustomize"
    script.write_text(
        "#!/bin/sh\n"
        f"echo call >> {calls}\n" + (f"sleep {sleep}\n" if sleep else "") + f'exec {real} "$@"\n'
    )
    os.chmod(script, 0o755)
    return script, calls


def test_a_slow_render_is_killed_and_prunes_nothing(
    render_rig: RenderRig, api_client: Any, tmp_path: Path
) -> None:
    render_rig.commit({**BASE, "overlays/bad/kustomization.yaml": _overlay("bad")})
    target = render_rig.target("slow", "overlays/bad")
    assert render_rig.run(target).outcome is PassOutcome.CONVERGED
    slow, _ = _wrapper(tmp_path, render_rig.tools["kustomize"], sleep=60)
    render_rig.commit(
        {"base/settings.yaml": BASE["base/settings.yaml"].replace("level: v1", "level: v2")}
    )
    slowed = render_rig.target(
        "slow", "overlays/bad", kustomize_tool=str(slow), timeout_seconds=1.0
    )
    result = render_rig.run(slowed)
    assert result.outcome is PassOutcome.FAILED
    assert "killed after render_timeout (1s)" in str(result.error), result.error
    assert _config(api_client, render_rig.namespace, "bad-settings") == {"level": "v1"}


def test_a_rendered_commit_runs_no_tool_on_the_next_once(
    render_rig: RenderRig, tmp_path: Path
) -> None:
    wrapper, calls = _wrapper(tmp_path, render_rig.tools["kustomize"])
    render_rig.commit({**BASE, "overlays/prod/kustomization.yaml": _overlay("prod")})
    target = render_rig.target("cached", "overlays/prod", kustomize_tool=str(wrapper))
    assert render_rig.run(target).outcome is PassOutcome.CONVERGED
    assert calls.read_text().count("call") == 1
    again = render_rig.run(target)  # a new Reconciler, as a new `--once` process
    assert again.outcome is PassOutcome.IN_SYNC, again.error
    assert calls.read_text().count("call") == 1
    # A change of renderer settings renders again.
    changed = render_rig.target(
        "cached", "overlays/prod", kustomize_tool=str(wrapper), timeout_seconds=30.0
    )
    assert render_rig.run(changed).outcome is PassOutcome.IN_SYNC
    assert calls.read_text().count("call") == 2
    assert json.loads((render_rig.state / "render" / f"{target.name}.json").read_text())["key"]


def test_a_render_writing_past_the_output_cap_is_killed_and_prunes_nothing(
    render_rig: RenderRig, api_client: Any, tmp_path: Path
) -> None:
    render_rig.commit({**BASE, "overlays/bad/kustomization.yaml": _overlay("bad")})
    target = render_rig.target("big", "overlays/bad")
    assert render_rig.run(target).outcome is PassOutcome.CONVERGED
    endless = tmp_path / "kustomize"
    endless.write_text("#!/bin/sh\nexec yes 'data: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'\n")
    os.chmod(endless, 0o755)
    render_rig.commit(
        {"base/settings.yaml": BASE["base/settings.yaml"].replace("level: v1", "level: v3")}
    )
    capped = render_rig.target(
        "big", "overlays/bad", kustomize_tool=str(endless), max_output_bytes=1024 * 1024
    )
    result = render_rig.run(capped)
    assert result.outcome is PassOutcome.FAILED
    assert "killed: output above render_max_output (1048576 bytes)" in str(result.error)
    assert _config(api_client, render_rig.namespace, "bad-settings") == {"level": "v1"}


def test_kubectl_kustomize_builds_the_overlay_when_it_is_the_tool(
    render_rig: RenderRig, api_client: Any
) -> None:
    kubectl = cache_dir() / "kubectl"
    render_rig.commit({**BASE, "overlays/prod/kustomization.yaml": _overlay("kubectl")})
    target = render_rig.target("kubectl", "overlays/prod", kustomize_tool=str(kubectl))
    result = render_rig.run(target)
    assert result.outcome is PassOutcome.CONVERGED, result.error
    assert _config(api_client, render_rig.namespace, "kubectl-settings") == {"level": "v1"}


def test_a_preview_of_another_commit_renders_it_and_writes_nothing(
    render_rig: RenderRig, api_client: Any
) -> None:
    prod, _ = _two_overlays(render_rig)
    assert render_rig.run(prod).outcome is PassOutcome.CONVERGED
    render_rig.commit(
        {"base/settings.yaml": BASE["base/settings.yaml"].replace("level: v1", "level: v9")}
    )
    # What `gitopsd diff` runs: the snapshot of the ref, through a read-only adapter.
    snapshot = GitSource(prod.name, prod.source, render_rig.state).snapshot("main")
    result, _ = preview_pass(prod, snapshot)
    assert result.outcome is PassOutcome.WOULD_CHANGE, result.error
    [preview] = result.previews
    assert preview.key.name == "prod-settings"
    assert "-  level: v1" in preview.diff_text and "+  level: v9" in preview.diff_text
    assert _config(api_client, render_rig.namespace, "prod-settings") == {"level": "v1"}


def test_a_bad_wave_in_kustomize_output_names_the_object(render_rig: RenderRig) -> None:
    render_rig.commit(
        {
            "kwave/kustomization.yaml": "resources: [config.yaml]\nnamespace: shop\n",
            "kwave/config.yaml": (
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: waved\n"
                "  annotations:\n    gitopsd.io/wave: first\n"
            ),
        }
    )
    result = render_rig.run(render_rig.target("kwave", "kwave"))
    assert result.outcome is PassOutcome.FAILED
    error = str(result.error)
    assert "kustomize output of kwave#1 (ConfigMap shop/waved): annotation" in error, error
    assert "gitopsd.io/wave: 'first' is not an integer" in error, error
