"""`kustomize build` of a target's path, refused first when it would read outside the checkout.

kustomize's own root-only load restrictor stops a patch file at `../../../../etc/passwd`,
but not a resource *directory* outside the tree, nor a remote base (a Git URL kustomize
clones at build time). So every kustomization reachable from the target's path is read
here first, and each path it names is checked: inside the checkout, not through a
symlink that leads out (CVE-2022-24348 and CVE-2022-24904 were both of this kind), not
remote unless the target allows it. Exec and container KRM functions, alpha plugins and
Helm inflation stay off: kustomize refuses them unless a flag enables them, and none is
ever passed.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from gitopsd.errors import RenderError
from gitopsd.model import KUSTOMIZATION_NAME
from gitopsd.renderers.run import resolve

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", KUSTOMIZATION_NAME)
# Fields whose strings are files or directories (kustomize's Kustomization type).
_PATH_LISTS = (
    "resources", "bases", "components", "crds", "configurations", "generators",
    "transformers", "validators", "patchesStrategicMerge",
)  # fmt: skip
_REMOTE_LISTS = ("resources", "bases", "components")
_PATH_OBJECTS = ("patches", "patchesJson6902", "replacements")
_REFUSED = {
    "helmCharts": "Helm chart inflation needs network access and --enable-helm",
    "helmChartInflationGenerator": "Helm chart inflation needs network access and --enable-helm",
    "helmGlobals": "Helm chart inflation needs network access and --enable-helm",
}
_REMOTE = re.compile(
    r"^([a-z][a-z0-9+.-]*://|git@|[a-z0-9-]+(\.[a-z0-9-]+)+(:\d+)?/)|\?ref=|//", re.IGNORECASE
)


class KustomizeCheck:
    """Walks the kustomizations reachable from one directory of a checkout."""

    def __init__(
        self, root: Path, describe: str, *, allow_remote: bool, escaping: frozenset[str]
    ) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.describe = describe
        self.allow_remote = allow_remote
        self.escaping = escaping
        self.seen: set[str] = set()

    def check(self, directory: str) -> None:
        """Refuse the first path that escapes, is remote (unless allowed) or is refused."""
        if directory in self.seen:
            return
        self.seen.add(directory)
        name = find_kustomization(self.root / directory)
        if name is None:
            return  # a plain directory of resources: kustomize reads only its own files
        where = posixpath.join(directory, name) if directory != "." else name
        data = self._read(where)
        for key, why in _REFUSED.items():
            if key in data:
                raise self._error(where, f"`{key}` is refused: {why}; vendor the rendered YAML")
        for field, value in _references(data):
            self._reference(where, directory, field, value)

    def _read(self, where: str) -> dict[str, Any]:
        try:
            data = yaml.safe_load((self.root / where).read_bytes())
        except (OSError, yaml.YAMLError) as exc:
            raise self._error(where, f"cannot be read: {_short(exc)}") from exc
        if not isinstance(data, dict):
            raise self._error(where, "is not a mapping")
        return data

    def _reference(self, where: str, directory: str, field: str, value: str) -> None:
        if "\n" in value:
            return  # an inline patch or plugin configuration, not a path
        if field in _REMOTE_LISTS and _is_remote(value) and not self._exists(directory, value):
            if self.allow_remote:
                return
            raise self._error(
                where,
                f"{field} {value!r} is remote; remote bases and resources are refused "
                "(vendor it into the repository, or set kustomize.allow_remote: true)",
            )
        path = posixpath.normpath(posixpath.join(directory, value))
        if value.startswith("/") or path == ".." or path.startswith("../"):
            raise self._error(where, f"{field} {value!r} points outside the repository")
        link = self._escaping_link(path)
        if link is not None:
            raise self._error(
                where,
                f"{field} {value!r} goes through symlink {link!r}, which leads outside "
                "the repository",
            )
        real = os.path.realpath(self.root / path)
        if real != self.real_root and not real.startswith(self.real_root + os.sep):
            raise self._error(where, f"{field} {value!r} resolves outside the repository")
        if field in _REMOTE_LISTS and os.path.isdir(real):
            self.check(path)

    def _exists(self, directory: str, value: str) -> bool:
        return os.path.lexists(self.root / directory / value)

    def _escaping_link(self, path: str) -> str | None:
        parts = path.split("/")
        for end in range(1, len(parts) + 1):
            if "/".join(parts[:end]) in self.escaping:
                return "/".join(parts[:end])
        return None

    def _error(self, where: str, what: str) -> RenderError:
        return RenderError(f"{self.describe}: {where}: {what}; nothing was applied or pruned")


def find_kustomization(directory: Path) -> str | None:
    """The kustomization file's name in `directory`, or None."""
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return name
    return None


def _references(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, path) for every path-like string a kustomization names."""
    for field in _PATH_LISTS:
        for item in _list(data.get(field)):
            if isinstance(item, str):
                yield field, item
    for field in _PATH_OBJECTS:
        for item in _list(data.get(field)):
            if isinstance(item, dict) and isinstance(item.get("path"), str):
                yield field, item["path"]
    for field in ("configMapGenerator", "secretGenerator"):
        for item in _list(data.get(field)):
            if isinstance(item, dict):
                yield from _generator_files(field, item)
    openapi = data.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        yield "openapi", openapi["path"]


def _generator_files(field: str, item: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for entry in _list(item.get("files")):
        if isinstance(entry, str):
            yield f"{field}.files", entry.split("=", 1)[-1]  # `key=path` or `path`
    for entry in [*_list(item.get("envs")), item.get("env")]:
        if isinstance(entry, str):
            yield f"{field}.envs", entry


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_remote(value: str) -> bool:
    return bool(_REMOTE.search(value))


def _short(exc: BaseException) -> str:
    text = getattr(exc, "problem", None) or getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:200]


def kustomize_argv(tool: str | None, directory: Path) -> tuple[str, ...]:
    """The build command: the configured tool, `kustomize`, or `kubectl kustomize`."""
    restrictor = "--load-restrictor=LoadRestrictionsRootOnly"
    if tool is None:
        if resolve("kustomize") is None and resolve("kubectl") is not None:
            return ("kubectl", "kustomize", restrictor, str(directory))
        tool = "kustomize"
    if os.path.basename(tool) == "kubectl":
        return (tool, "kustomize", restrictor, str(directory))
    return (tool, "build", restrictor, str(directory))
