"""A target's renderer settings: `render`, `kustomize`, `helm`, `substitute`, `tools`.

Kept apart from config.py so the renderer keys, their defaults and their checks live in
one place; config.py only calls `read_render` for each target.
"""

from __future__ import annotations

import enum
import json
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitopsd.configread import Section
from gitopsd.errors import ConfigError

RENDER_KEYS = frozenset(
    {"render", "kustomize", "helm", "substitute", "substitute_from", "render_timeout",
     "render_max_output", "tools"}
)  # fmt: skip
_HELM_KEYS = {
    "release", "namespace", "values_files", "values", "include_crds", "chart", "repo",
    "version", "username", "password_file", "password_env",
}  # fmt: skip
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RELEASE = re.compile(r"[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?")
_MAX_RENDER_SECONDS = 3600.0


class RenderKind(enum.Enum):
    """Which tool turns the target's path into manifests."""

    AUTO = "auto"
    PLAIN = "plain"
    KUSTOMIZE = "kustomize"
    HELM = "helm"


@dataclass(frozen=True)
class HelmSettings:
    """`helm template` options; `chart` + `repo` take the chart from a chart repository."""

    release: str | None = None  # None: the target's name
    namespace: str | None = None  # None: the target's namespace
    values_files: tuple[str, ...] = ()  # relative to the target's path, inside the repository
    values_json: str = "{}"  # the inline `values` map, canonical JSON (merged last)
    include_crds: bool = True
    chart: str | None = None
    repo: str | None = None
    version: str | None = None  # exact or a semver range
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None


@dataclass(frozen=True)
class SubstituteSource:
    """One `substitute_from` entry: a file of KEY=value lines or a YAML map, or a variable."""

    file: Path | None = None
    env: str | None = None
    secret: bool = False  # values never shown in logs or diffs
    optional: bool = False


@dataclass(frozen=True)
class RenderSettings:
    """How a target is rendered; the defaults render plain YAML as before."""

    kind: RenderKind = RenderKind.AUTO
    allow_remote: bool = False  # kustomize: remote bases and resources
    helm: HelmSettings = field(default_factory=HelmSettings)
    substitute: tuple[tuple[str, str], ...] = ()
    substitute_from: tuple[SubstituteSource, ...] = ()
    timeout_seconds: float = 60.0
    max_output_bytes: int = 64 * 1024 * 1024
    kustomize_tool: str | None = None  # None: `kustomize`, else `kubectl kustomize`
    helm_tool: str | None = None  # None: `helm` on PATH
    # Where chart archives and indexes are kept: <state_dir>/charts, set by the runner.
    chart_cache: Path | None = None

    @property
    def substitutes(self) -> bool:
        """Whether variable substitution runs at all (only when configured)."""
        return bool(self.substitute or self.substitute_from)


def read_render(node: Section) -> RenderSettings:
    """The renderer settings of one target section."""
    tools = node.section("tools", {"kustomize", "helm", "sops"})  # sops: decryptconfig.py
    kustomize = node.section("kustomize", {"allow_remote"})
    return RenderSettings(
        kind=node.choice("render", RenderKind, RenderKind.AUTO),
        allow_remote=kustomize.flag("allow_remote", False) if kustomize else False,
        helm=_helm(node),
        substitute=_substitute(node),
        substitute_from=_substitute_from(node),
        timeout_seconds=node.duration("render_timeout", 60.0, maximum=_MAX_RENDER_SECONDS) or 60.0,
        max_output_bytes=node.size("render_max_output", 64 * 1024 * 1024),
        kustomize_tool=_tool(tools, "kustomize"),
        helm_tool=_tool(tools, "helm"),
    )


def _tool(tools: Section | None, name: str) -> str | None:
    if tools is None or not tools.has(name):
        return None
    value = tools.required_text(name)
    # A bare name is looked up on PATH; anything with a slash is a file.
    return str(tools.path(name)) if "/" in value or value.startswith("~") else value


def _helm(node: Section) -> HelmSettings:
    helm = node.section("helm", _HELM_KEYS)
    if helm is None:
        return HelmSettings()
    release = helm.text("release")
    if release is not None and not _RELEASE.fullmatch(release):
        raise helm.error("must be lower-case letters, digits and '-', at most 53", key="release")
    values = helm.data.get("values", {})
    if not isinstance(values, dict):
        raise helm.error("must be a mapping of Helm values", key="values")
    chart, repo = helm.text("chart"), helm.text("repo")
    if (chart is None) != (repo is None):
        raise helm.error("chart and repo go together: set both, or neither", key="chart")
    if repo is not None and not repo.startswith(("https://", "http://")):
        raise helm.error("must be an http(s) URL of a chart repository", key="repo")
    password_file, password_env = _helm_password(helm)
    username = helm.text("username")
    if (password_file or password_env) and username is None:
        raise helm.error("password_file or password_env needs a username", key="username")
    return HelmSettings(
        release=release,
        namespace=helm.text("namespace"),
        values_files=tuple(_repo_file(helm, where, f) for where, f in _indexed(helm)),
        values_json=json.dumps(values, sort_keys=True, separators=(",", ":"), default=str),
        include_crds=helm.flag("include_crds", True),
        chart=chart,
        repo=repo,
        version=helm.string("version"),
        username=username,
        password_file=password_file,
        password_env=password_env,
    )


def _helm_password(helm: Section) -> tuple[Path | None, str | None]:
    file, env = helm.path("password_file"), helm.text("password_env")
    if file is not None and env is not None:
        raise helm.error("give password_file or password_env, not both", key="password_env")
    if env is not None and not _VARIABLE.fullmatch(env):
        raise helm.error("must be a variable name: letters, digits and _", key="password_env")
    return file, env


def _indexed(helm: Section) -> list[tuple[str, str]]:
    return list(zip(_wheres(helm, "values_files"), helm.strings("values_files"), strict=True))


def _wheres(node: Section, key: str) -> list[str]:
    return [where for where, _ in node.items(key)]


def _repo_file(helm: Section, where: str, value: str) -> str:
    """A values file path, refused when it is absolute or climbs out with `..` at the top."""
    if value.startswith("/") or "\\" in value:
        raise ConfigError(f"{helm.file}: {where}: must be a path inside the repository")
    return posixpath.normpath(value)


def _substitute(node: Section) -> tuple[tuple[str, str], ...]:
    value = node.data.get("substitute")
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise node.error("must be a mapping of VARIABLE: value", key="substitute")
    pairs = []
    for name, text in value.items():
        if not isinstance(name, str) or not _VARIABLE.fullmatch(name):
            raise node.error(f"{name!r} is not a variable name", key="substitute")
        if isinstance(text, dict | list) or text is None:
            raise node.error(f"{name}: must be a string", key="substitute")
        pairs.append((name, _scalar(text)))
    return tuple(sorted(pairs))


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _substitute_from(node: Section) -> tuple[SubstituteSource, ...]:
    sources = []
    for where, item in node.items("substitute_from"):
        entry = Section(
            item, file=node.file, where=where, keys={"file", "env", "secret", "optional"}
        )
        file, env = entry.path("file"), entry.text("env")
        if (file is None) == (env is None):
            raise entry.error("give one of file or env")
        if env is not None and not _VARIABLE.fullmatch(env):
            raise entry.error("must be a variable name: letters, digits and _", key="env")
        sources.append(
            SubstituteSource(
                file=file,
                env=env,
                secret=entry.flag("secret", False),
                optional=entry.flag("optional", False),
            )
        )
    return tuple(sources)
