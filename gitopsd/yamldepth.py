"""How deep a YAML text nests, measured before PyYAML composes it.

Both of PyYAML's composers recurse once per nesting level: the pure-Python one hits the
interpreter's recursion limit near 500 levels (RecursionError; the configuration fuzz
target found it), libyaml's recurses in C and overflows the thread stack, killing the
process. The parsers keep an explicit stack, so their events measure depth safely;
a cheap upper bound on the depth tells when that scan is worth its cost.
"""

from __future__ import annotations

from typing import Any

import yaml

# Nested collections in one document: the deepest CRDs measured (Gateway API,
# Prometheus) nest under 30; a configuration file under 6.
MAX_DEPTH = 100
# How deep a document may be for libyaml's composer to recurse safely on a 1 MiB thread
# stack (about 300 bytes a level); the pure-Python composer uses two frames a level.
_C_COMPOSE_DEPTH = 2_000
_PY_COMPOSE_DEPTH = 200

_C_PARSER: Any = getattr(yaml, "CParser", ())
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def depth_bound(text: str) -> int:
    """An upper bound on how deep the text nests, from two C-speed scans.

    A nested block collection starts further right than its parent, except a sequence
    under a mapping key, so block nesting is at most twice the longest line; flow
    collections each need an opening bracket and hold no block collections.
    """
    # Split at \n only: fewer breaks than YAML knows make longer lines, a looser bound.
    longest = max(map(len, text.split("\n")))
    return 2 * (longest + 1) + text.count("[") + text.count("{")


def compose_depth(loader: type[object]) -> int:
    """How deep a document may nest for `loader`'s composer to build it without crashing."""
    return _C_COMPOSE_DEPTH if issubclass(loader, _C_PARSER) else _PY_COMPOSE_DEPTH


def first_too_deep(text: str, limit: int = MAX_DEPTH) -> tuple[int, int] | None:
    """(line, column), 1-based, where `text` first nests deeper than `limit`, or None.

    Scanned with libyaml when present (about 40 times faster than PyYAML's own parser);
    if libyaml stops at a syntax error, PyYAML's parser scans again, as a pure-Python
    loader may read past what libyaml refuses.
    """
    if depth_bound(text) <= limit:
        return None
    fast: type[yaml.BaseLoader] = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
    try:
        return _scan(fast, text, limit)
    except yaml.YAMLError:
        if fast is yaml.BaseLoader:
            return None  # a loader meets the same error before any deeper level
    try:
        return _scan(yaml.BaseLoader, text, limit)
    except yaml.YAMLError:
        return None


def _scan(loader_class: type[yaml.BaseLoader], text: str, limit: int) -> tuple[int, int] | None:
    loader: Any = loader_class(text)  # PyYAML's parser methods carry no types
    depth = 0
    try:
        while (event := loader.get_event()) is not None:
            if isinstance(event, _OPEN):
                depth += 1
                if depth > limit:
                    mark: Any = event.start_mark  # libyaml's or PyYAML's: both 0-based
                    return int(mark.line) + 1, int(mark.column) + 1
            elif isinstance(event, _CLOSE):
                depth -= 1
        return None
    finally:
        loader.dispose()
