"""Bounds on a YAML text's shape, measured before PyYAML builds it.

Both of PyYAML's composers recurse once per nesting level: the pure-Python one hits the
interpreter's recursion limit near 500 levels (RecursionError; the configuration fuzz
target found it), libyaml's recurses in C and overflows the thread stack, killing the
process. The parsers keep an explicit stack, so their events measure depth safely;
a cheap upper bound on the depth tells when that scan is worth its cost. Aliases are
kept as references, so an alias bomb costs nothing until something expands it: merge
keys (`<<: [*a, *a]`) do, at construction, so nodes are counted, expanded, before it.
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


def first_too_deep(text: str, limit: int = MAX_DEPTH) -> int | None:
    """The line (1-based) where `text` first nests deeper than `limit`, as far as libyaml reads.

    None when it does not, or when libyaml stops at a syntax error first: a loader meets
    the same error, or (PyYAML reading past what libyaml refuses) its own guard decides.
    libyaml's parser is about 40 times faster than PyYAML's, whose scanner looks ahead up
    to 1,024 characters at every open flow collection (0.5 s for a line of brackets).
    """
    if depth_bound(text) <= limit:
        return None
    loader: Any = getattr(yaml, "CBaseLoader", yaml.BaseLoader)(text)  # methods untyped
    depth = 0
    try:
        while (event := loader.get_event()) is not None:
            if isinstance(event, _OPEN):
                depth += 1
                if depth > limit:
                    mark: Any = event.start_mark  # libyaml's Mark or PyYAML's: 0-based
                    return int(mark.line) + 1
            elif isinstance(event, _CLOSE):
                depth -= 1
        return None
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()


def expansion_problem(root: yaml.Node, max_nodes: int, max_aliases: int) -> str | None:
    """Why the document at `root` is too big with its aliases expanded, or None.

    The walk stops at the limit, so it costs at most `max_nodes` steps.
    """
    seen: set[int] = set()
    aliases = 0
    count = 0
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack.pop()
        count += 1
        if count > max_nodes:
            return f"more than {max_nodes} nodes with aliases expanded"
        if id(node) in seen:
            aliases += 1
            if aliases > max_aliases:
                return f"more than {max_aliases} aliases"
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
    return None
