"""Variable substitution after rendering, as Flux's `postBuild` does.

`${VAR}` and `${VAR:=default}` (also `${VAR=default}`) in string values of every object
are replaced; `$${VAR}` stays as the literal `${VAR}`; an undefined variable with no
default refuses the revision, naming the variable and the object. An object annotated
`gitopsd.io/substitute: disabled` is left alone. Pure: the variables are read first.

Flux substitutes in each object's YAML text, so an unquoted `replicas: ${N}` becomes the
number 3 while a quoted `"${N}"` stays text. Objects here are parsed first, so the reader
marks unquoted scalars holding `${` (manifestread.Unquoted) and their substituted text is
typed here as YAML would type it (int, float, bool, null); no marker outlives this step.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gitopsd.errors import RenderError
from gitopsd.manifestread import Unquoted
from gitopsd.renderconfig import RenderSettings, SubstituteSource

DISABLE_ANNOTATION = "gitopsd.io/substitute"
_PATTERN = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?=)([^}]*))?\}")
_TYPED = frozenset(f"tag:yaml.org,2002:{name}" for name in ("int", "float", "bool", "null"))
_RESOLVER: Any = yaml.resolver.Resolver()  # PyYAML's resolver carries no types
_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)")


@dataclass(frozen=True)
class Variables:
    """The values to substitute, where each came from, and which are secret."""

    values: Mapping[str, str]
    origins: Mapping[str, str]  # name -> "substitute" or the file or variable it came from
    secret: frozenset[str] = frozenset()  # names whose values came from a `secret: true` source

    def digest(self) -> str:
        """A digest of every name and value, for the render cache (never the values)."""
        digest = hashlib.sha256()
        for name in sorted(self.values):
            digest.update(f"{name}\0{self.values[name]}\0".encode())
        return digest.hexdigest()


def read_variables(settings: RenderSettings, target: str) -> Variables:
    """`substitute_from` in order (later wins), then `substitute`; RenderError naming a
    file or variable that is missing and not optional."""
    values: dict[str, str] = {}
    origins: dict[str, str] = {}
    secret: set[str] = set()
    for source in settings.substitute_from:
        found = _read_source(source, target)
        values.update(found)
        origins.update(dict.fromkeys(found, _origin(source)))
        secret = (secret | set(found)) if source.secret else (secret - set(found))
    for name, value in settings.substitute:
        values[name], origins[name] = value, "substitute"
        secret.discard(name)
    return Variables(values, origins, frozenset(secret))


def _origin(source: SubstituteSource) -> str:
    return f"file {source.file}" if source.file is not None else f"environment {source.env}"


def _read_source(source: SubstituteSource, target: str) -> dict[str, str]:
    if source.env is not None:
        value = os.environ.get(source.env)
        if value is None:
            if source.optional:
                return {}
            raise RenderError(
                f"target {target}: substitute_from env {source.env} is not set "
                "(set it, or mark the entry optional: true)"
            )
        return {source.env: value}
    assert source.file is not None
    return _read_file(source.file, target, optional=source.optional)


def _read_file(path: Path, target: str, *, optional: bool) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if optional:
            return {}
        raise RenderError(
            f"target {target}: substitute_from file {path} does not exist: create it, or mark "
            "the entry `optional: true`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RenderError(
            f"target {target}: substitute_from file {path} cannot be read: {type(exc).__name__}"
        ) from exc
    return parse_variables(text, str(path), target)


def parse_variables(text: str, where: str, target: str) -> dict[str, str]:
    """A YAML map of names to scalars, or `KEY=value` lines (`#` comments allowed).

    Errors name the file and line, never a value: these files may be secret.
    """
    if _looks_like_env(text):
        result = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            match = _LINE.fullmatch(line)
            if match is None:
                raise RenderError(
                    f"target {target}: {where} line {number}: not KEY=value (nor a YAML map)"
                )
            result[match.group(1)] = _unquote(match.group(2).strip())
        return result
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise RenderError(f"target {target}: {where}: neither KEY=value lines nor YAML") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and not isinstance(v, dict | list) for k, v in data.items()
    ):
        raise RenderError(f"target {target}: {where}: must map variable names to values")
    return {k: "" if v is None else _scalar(v) for k, v in data.items()}


def _looks_like_env(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return bool(lines) and all(_LINE.fullmatch(line) for line in lines)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def substitute(manifest: dict[str, Any], variables: Variables, where: str) -> dict[str, Any]:
    """`manifest` with every `${VAR}` in its string values replaced (a new object)."""
    return substitute_marking(manifest, variables, where)[0]


def substitute_marking(
    manifest: dict[str, Any], variables: Variables, where: str
) -> tuple[dict[str, Any], bool]:
    """As `substitute`, and whether a secret variable's value went into the object."""
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    if isinstance(annotations, dict) and annotations.get(DISABLE_ANNOTATION) == "disabled":
        return unmarked(manifest), False
    used: set[str] = set()
    result: dict[str, Any] = _walk(manifest, variables, where, used)
    return result, bool(used & variables.secret)


def _walk(value: Any, variables: Variables, where: str, used: set[str]) -> Any:
    if isinstance(value, str):
        if "${" not in value:
            return value
        text = _replace(value, variables, where, used)
        return typed(text) if isinstance(value, Unquoted) else text
    if isinstance(value, dict):
        return {str(key): _walk(item, variables, where, used) for key, item in value.items()}
    if isinstance(value, list):
        return [_walk(item, variables, where, used) for item in value]
    return value


def unmarked(value: Any) -> Any:
    """`value` with every Unquoted (keys too) as a plain str: nothing outside sees one."""
    if isinstance(value, str):
        return str(value) if isinstance(value, Unquoted) else value
    if isinstance(value, dict):
        return {str(key): unmarked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unmarked(item) for item in value]
    return value


def typed(text: str) -> Any:
    """The text of an unquoted scalar as YAML types it: `3` a number, `true` a boolean,
    `null`/empty nothing, anything else text (non-finite floats too: JSON has none)."""
    tag = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))
    if tag not in _TYPED:
        return text
    value = yaml.safe_load(text)
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return value


def _replace(text: str, variables: Variables, where: str, used: set[str]) -> str:
    def one(match: re.Match[str]) -> str:
        escaped, name, operator, default = match.groups()
        if escaped:
            return match.group(0)[1:]
        if name in variables.values:
            used.add(name)
            return variables.values[name]
        if operator is not None:
            return str(default)
        raise RenderError(
            f"{where}: variable {name} is not defined (add it to substitute or substitute_from, "
            f"give a default as ${{{name}:=value}}, or escape it as $${{{name}}})"
        )

    return _PATTERN.sub(one, text)
