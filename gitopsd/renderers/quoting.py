"""Which `${...}` references the repository's YAML quotes, for kustomize's output.

`kustomize build` writes every string that needs no quotes without them, so
`value: "${PORT}"` in a source file comes out as `value: ${PORT}`, and a substituted
`8080` would turn an env value into a number the API server refuses. The sources still
say which were quoted: a reference found only quoted in them (under the same key, else
anywhere) stays text after substitution; any other is typed as Flux types it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gitopsd.manifestread import Unquoted

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SUFFIXES = (".yaml", ".yml")


@dataclass
class QuoteHints:
    """`(key, text)` of the scalars holding `${` in the sources, by quoting."""

    quoted: set[tuple[str | None, str]] = field(default_factory=set)
    plain: set[tuple[str | None, str]] = field(default_factory=set)

    def stays_text(self, key: str | None, text: str) -> bool:
        """Whether `text` under `key`, written unquoted by kustomize, was quoted at source."""
        if (key, text) in self.plain:
            return False
        if (key, text) in self.quoted:
            return True
        return any(t == text for _, t in self.quoted) and not any(t == text for _, t in self.plain)

    def apply(self, value: Any, key: str | None = None) -> Any:
        """`value` with the Unquoted scalars that were quoted at source as plain str."""
        if isinstance(value, Unquoted):
            return str(value) if self.stays_text(key, value) else value
        if isinstance(value, dict):
            return {k: self.apply(item, str(k)) for k, item in value.items()}
        if isinstance(value, list):
            return [self.apply(item, key) for item in value]
        return value


def quote_hints(checkout: Path) -> QuoteHints:
    """The hints of every YAML file in the checkout holding `${` (symlinks not followed)."""
    hints = QuoteHints()
    for directory, folders, files in os.walk(checkout):
        folders[:] = [name for name in folders if name != ".git"]
        for name in files:
            path = Path(directory, name)
            if name.lower().endswith(_SUFFIXES) and not path.is_symlink():
                _scan(path, hints)
    return hints


def _scan(path: Path, hints: QuoteHints) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    if "${" not in text:
        return
    # Events, not nodes: linear in the text whatever its aliases; a file that is no YAML
    # (a template) is kustomize's to refuse, not ours.
    stack: list[_Frame] = []
    try:
        for event in yaml.parse(text, Loader=_Loader):
            _feed(event, stack, hints)
    except yaml.YAMLError:
        return


_NO_KEY = object()  # a mapping's key that is no scalar (a complex key): context unknown


@dataclass
class _Frame:
    """An open mapping or sequence: the key it sits under; a mapping's pending key."""

    mapping: bool
    key: str | None
    pending: object = None  # None: the mapping's next scalar is a key


def _feed(event: Any, stack: list[_Frame], hints: QuoteHints) -> None:
    top = stack[-1] if stack else None
    if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
        stack.append(_Frame(isinstance(event, yaml.MappingStartEvent), _context(top)))
    elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
        stack.pop()
        _value_done(stack[-1] if stack else None)
    elif isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
        if top is not None and top.mapping and top.pending is None:
            top.pending = event.value if isinstance(event, yaml.ScalarEvent) else _NO_KEY
            return
        if isinstance(event, yaml.ScalarEvent) and "${" in event.value:
            (hints.quoted if event.style else hints.plain).add((_context(top), event.value))
        _value_done(top)


def _context(frame: _Frame | None) -> str | None:
    """The key a value coming next in `frame` sits under (a list's items: the list's)."""
    if frame is None:
        return None
    if not frame.mapping:
        return frame.key
    return frame.pending if isinstance(frame.pending, str) else None


def _value_done(frame: _Frame | None) -> None:
    if frame is not None and frame.mapping:
        if frame.pending is None:
            frame.pending = _NO_KEY  # a collection was the key; its value comes next
        else:
            frame.pending = None
