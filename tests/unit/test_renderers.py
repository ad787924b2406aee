"""Renderer selection, settings and the kustomization path checks (issue 12)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitopsd.config import load_config
from gitopsd.errors import ConfigError, RenderError
from gitopsd.model import SourceFile
from gitopsd.renderconfig import HelmSettings, RenderKind, RenderSettings
from gitopsd.renderers import choose
from gitopsd.renderers.helm import check_dependencies, kube_version, values_redactor
from gitopsd.renderers.kustomize import KustomizeCheck
from gitopsd.renderers.run import error_line


def _files(*names: str) -> list[SourceFile]:
    return [SourceFile(name, b"") for name in names]


@pytest.mark.parametrize(
    ("names", "kind"),
    [
        (("kustomization.yaml", "a.yaml"), RenderKind.KUSTOMIZE),
        (("kustomization.yml",), RenderKind.KUSTOMIZE),
        (("Kustomization", "a.yaml"), RenderKind.KUSTOMIZE),
        (("Chart.yaml", "templates/a.yaml"), RenderKind.HELM),
        (("a.yaml", "sub/kustomization.yaml", "sub/Chart.yaml"), RenderKind.PLAIN),
    ],
)
def test_auto_picks_the_renderer_from_the_files_at_path(
    names: tuple[str, ...], kind: RenderKind
) -> None:
    assert choose(RenderSettings(), _files(*names)) is kind


def test_an_explicit_renderer_or_a_chart_repository_wins() -> None:
    files = _files("kustomization.yaml")
    assert choose(RenderSettings(kind=RenderKind.PLAIN), files) is RenderKind.PLAIN
    chart = RenderSettings(helm=HelmSettings(chart="web", repo="https://charts.example"))
    assert choose(chart, files) is RenderKind.HELM


def _config(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "gitopsd.yaml"
    path.write_text(
        f"state_dir: {tmp_path}/state\ntargets:\n  - name: web\n    repo: /srv/repo\n"
        f"    branch: main\n{extra}"
    )
    return path


def test_render_settings_are_read(tmp_path: Path) -> None:
    config = load_config(
        _config(
            tmp_path,
            "    render: helm\n    render_timeout: 90s\n    render_max_output: 8MiB\n"
            "    kustomize: {allow_remote: true}\n"
            "    tools: {kustomize: ./bin/kustomize, helm: helm3}\n"
            "    helm:\n      release: web\n      values_files: [values.yaml, ../env/prod.yaml]\n"
            "      values: {replicas: 3}\n      include_crds: false\n"
            "    substitute: {ENV: prod, REPLICAS: 3}\n"
            "    substitute_from:\n      - file: vars.env\n        secret: true\n"
            "      - env: REGION\n",
        )
    )
    render = config.targets[0].render
    assert render.kind is RenderKind.HELM
    assert (render.timeout_seconds, render.max_output_bytes) == (90.0, 8 * 1024 * 1024)
    assert render.allow_remote is True
    assert render.kustomize_tool == str(tmp_path / "bin/kustomize")
    assert render.helm_tool == "helm3"
    assert render.helm.values_files == ("values.yaml", "../env/prod.yaml")
    assert render.helm.values_json == '{"replicas":3}'
    assert render.helm.include_crds is False
    assert render.substitute == (("ENV", "prod"), ("REPLICAS", "3"))
    assert render.substitute_from[0].file == tmp_path / "vars.env"
    assert render.substitute_from[0].secret is True
    assert render.substitute_from[1].env == "REGION"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    render: jsonnet\n", "targets[0].render: must be one of auto, plain"),
        ("    helm: {chart: web}\n", "targets[0].helm.chart: chart and repo go together"),
        ("    helm: {values_files: [/etc/x.yaml]}\n", "values_files[0]: must be a path inside"),
        ("    substitute: {1A: x}\n", "targets[0].substitute: '1A' is not a variable name"),
        ("    substitute_from: [{file: a, env: B}]\n", "give one of file or env"),
        ("    kustomize: {allow_remot: true}\n", "did you mean 'allow_remote'"),
    ],
)
def test_render_settings_errors_name_the_key(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(_config(tmp_path, extra))


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _check(
    root: Path, path: str, *, allow_remote: bool = False, escaping: frozenset[str] = frozenset()
) -> None:
    KustomizeCheck(
        root, "target t: kustomize render of " + path, allow_remote=allow_remote, escaping=escaping
    ).check(path)


BASE = {"base/kustomization.yaml": "resources: [cm.yaml]\n", "base/cm.yaml": "kind: ConfigMap\n"}


@pytest.mark.parametrize(
    ("kustomization", "message"),
    [
        ("resources: [../../base, ../../../etc]\n", "resources '../../../etc' points outside"),
        ("resources: [/etc]\n", "resources '/etc' points outside"),
        ("patches: [{path: ../../../etc/passwd}]\n", "patches '../../../etc/passwd' points"),
        ("configMapGenerator: [{name: x, files: [k=../../../x]}]\n", "configMapGenerator.files"),
        ("secretGenerator: [{name: x, envs: [../../../x.env]}]\n", "secretGenerator.envs"),
        ("resources: ['github.com/org/repo//base?ref=v1']\n", "is remote"),
        ("resources: [https://example.com/app.yaml]\n", "is remote"),
        ("components: [git@github.com:org/repo.git]\n", "is remote"),
        ("helmCharts: [{name: x}]\n", "`helmCharts` is refused"),
    ],
)
def test_kustomizations_that_reach_outside_are_refused(
    tmp_path: Path, kustomization: str, message: str
) -> None:
    root = _tree(tmp_path, {**BASE, "overlays/prod/kustomization.yaml": kustomization})
    with pytest.raises(RenderError) as caught:
        _check(root, "overlays/prod")
    assert message in str(caught.value)
    assert str(caught.value).startswith(
        "target t: kustomize render of overlays/prod: overlays/prod/kustomization.yaml: "
    )


def test_a_base_reached_through_an_overlay_is_checked_too(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "base/kustomization.yaml": "patches: [{path: ../../etc/passwd}]\n",
            "overlays/prod/kustomization.yaml": "resources: [../../base]\n",
        },
    )
    with pytest.raises(RenderError, match=r"base/kustomization\.yaml: patches"):
        _check(root, "overlays/prod")


def test_allowed_remote_and_local_references_pass(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            **BASE,
            "overlays/prod/kustomization.yaml": (
                "resources: [../../base, 'github.com/org/repo//x?ref=v1', extra.yaml]\n"
                "patches: [{path: p.yaml}, {patch: 'kind: ConfigMap'}]\n"
                'patchesStrategicMerge: ["apiVersion: v1\\nkind: ConfigMap\\n"]\n'
            ),
            "overlays/prod/extra.yaml": "kind: ConfigMap\n",
            "overlays/prod/p.yaml": "kind: ConfigMap\n",
        },
    )
    _check(root, "overlays/prod", allow_remote=True)


def test_symlinks_out_of_the_tree_are_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**BASE, "app/kustomization.yaml": "patches: [{path: p.yaml}]\n"})
    with pytest.raises(RenderError, match=r"goes through symlink 'app/p\.yaml'"):
        _check(root, "app", escaping=frozenset({"app/p.yaml"}))
    # A symlink in the tree (written by hand here) that resolves outside is refused too.
    (root / "app/kustomization.yaml").write_text("patches: [{path: q.yaml}]\n")
    os.symlink("/etc/passwd", root / "app/q.yaml")
    with pytest.raises(RenderError, match="resolves outside the repository"):
        _check(root, "app")


def test_a_chart_with_dependencies_not_vendored_is_a_clear_error(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "Chart.yaml": "apiVersion: v2\nname: web\nversion: 1.0.0\n"
            "dependencies: [{name: redis, version: 1.x, repository: https://charts.example}]\n",
            "Chart.lock": "dependencies: []\n",
        },
    )
    with pytest.raises(RenderError) as caught:
        check_dependencies(tmp_path, "target t: helm render of chart")
    assert "dependencies redis are not vendored under charts/ (Chart.lock lists them)" in str(
        caught.value
    )
    assert "helm dependency build" in str(caught.value)
    _tree(tmp_path, {"charts/redis/Chart.yaml": "name: redis\n"})
    check_dependencies(tmp_path, "target t: helm render of chart")


@pytest.mark.parametrize(
    ("stderr", "line"),
    [
        (
            b"some warning\nError: accumulating resources: boom\n",
            "Error: accumulating resources: boom",
        ),
        (b"\n\nlast words\n", "last words"),
        (b"", "exited with status 3"),
        (b"Error: " + b"x" * 500, "Error: " + "x" * 290 + "..."),
    ],
)
def test_the_tools_error_line_is_one_trimmed_line(stderr: bytes, line: str) -> None:
    assert error_line(stderr, 3) == line


@pytest.mark.parametrize(
    ("git_version", "flag"),
    [
        ("v1.37.2", "v1.37.2"),
        ("v1.30.1+k3s1", "v1.30.1"),
        ("v1.29.0-eks-5e0fdde", "v1.29.0-eks-5e0fdde"),
        ("v0.0.0-master+$Format:%H$", "v0.0.0-master"),
        ("", None),
        ("unknown", None),
    ],
)
def test_the_servers_version_becomes_a_kube_version_helm_accepts(
    git_version: str, flag: str | None
) -> None:
    assert kube_version(git_version) == flag


def test_values_quoted_in_helms_error_line_are_replaced_before_the_trim(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        "db: &db {password: s3cret-pass, port: 5432}\nother: *db\n"
        "cert: |\n  line-one-of-cert\n  line-two-of-cert\nshort: web\nprefix: s3cret\n"
    )
    redact = values_redactor([values, tmp_path / "gone.yaml"])
    stderr = (
        b"Error: execution error: password s3cret-pass on 5432 for web, "
        b"cert line-one-of-cert line-two-of-cert " + b"x" * 400
    )
    line = error_line(stderr, 1, redact)
    assert "s3cret" not in line and "5432" not in line and "line-one" not in line
    assert line.startswith(
        "Error: execution error: password <a value from a values file> on <a value from a "
        "values file> for web, cert <a value from a values file>"
    )
    assert len(line) <= 300
