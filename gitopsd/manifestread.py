"""Parse one manifest file into plain documents, within bounds, with one-line errors.

Git content is untrusted input: a file may nest 100,000 levels deep (libyaml's composer
recurses in C and crashes the process), expand an alias bomb, hold a 4 MiB object the
API server will refuse after minutes of work, or write a key twice (PyYAML keeps the last
silently; kubectl refuses it). Each is refused here, naming the file and document, before
the costly step: building Python objects.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any, cast

import yaml

from gitopsd.errors import RenderError
from gitopsd.model import SourceFile
from gitopsd.yamlbounds import MAX_DEPTH, compose_depth, depth_bound, expansion_problem

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# A document's nodes counted with every alias expanded: far above any real manifest, far
# below what an alias bomb ("billion laughs") needs to exhaust memory.
MAX_NODES = 500_000
MAX_ALIASES = 10_000
# etcd's default request limit (--max-request-bytes): the API server cannot store more.
MAX_OBJECT_BYTES = 1536 * 1024


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int | None) -> None:
        super().__init__(key, line)
        self.key, self.line = key, line


class Unquoted(str):
    """A plain (unquoted) YAML scalar holding `${`: once substituted, its text is typed as
    YAML types it (`replicas: ${N}` becomes a number, `"${N}"` stays text), as Flux's
    postBuild does by substituting in the text. Only while substituting: see substitute."""


def read_documents(file: SourceFile, *, mark_unquoted: bool = False) -> Iterator[tuple[int, Any]]:
    """(1-based document index, JSON-compatible data) for each non-empty document;
    `mark_unquoted`: plain scalars holding `${` come as Unquoted (for substitution)."""
    try:
        text = file.content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RenderError(f"{file.path}: is not valid UTF-8 (byte {error.start})") from None
    if file.path.lower().endswith(".json"):
        data = _load_json(file.path, text, len(file.content))
        if data is not None:
            yield 1, data
        return
    yield from _load_yaml(file.path, text, len(file.content), mark_unquoted)


def _load_json(path: str, text: str, size: int) -> Any:
    where = f"{path} document 1"
    try:
        data = json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as error:
        # error.msg and the position only: the line itself may hold a secret.
        raise RenderError(
            f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except RecursionError:
        # The decoder's own guard, at about 1,000 levels: far past the limit.
        raise _too_deep(where) from None
    except _DuplicateKey as duplicate:
        raise RenderError(f"{where}: key {duplicate.key!r} is given twice") from None
    if text.count("[") + text.count("{") > MAX_DEPTH:  # fewer openers cannot nest deeper
        data = _plain(data, where)
    if size > MAX_OBJECT_BYTES:
        _check_json_sizes(data, where, size)
    return data


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key, None)
            seen.add(key)
    return result


def _check_json_sizes(data: Any, where: str, size: int) -> None:
    """Each object of a JSON file above the per-object limit: the file, or a List's items."""
    if not _is_list(data):
        raise _too_large(where, size)
    for position, item in enumerate(data["items"]):
        item_size = len(json.dumps(item).encode())
        if item_size > MAX_OBJECT_BYTES:
            raise _too_large(f"{where} items[{position}]", item_size)


def _load_yaml(
    path: str, text: str, size: int, mark_unquoted: bool = False
) -> Iterator[tuple[int, Any]]:
    # Only aliases (`*name`) can make a document bigger than its text, which the source
    # already bounds; without a `*` the node count is not worth walking.
    has_aliases = "*" in text
    loader = (_marking(_Loader) if mark_unquoted else _strict(_Loader))(text)
    index = 0
    try:
        if size > MAX_OBJECT_BYTES or depth_bound(text) > compose_depth(_Loader):
            _inspect(path, text)
        while loader.check_node():
            node = loader.get_node()
            index += 1
            if node is None:
                continue
            where = f"{path} document {index}"
            if has_aliases:
                _check_size(node, where)
            data = _plain(_construct(loader, node, where), where)
            if data is not None:
                yield index, data
    except yaml.MarkedYAMLError as error:
        # problem and position only: PyYAML's message quotes the line, which may be a secret.
        mark = error.problem_mark
        position = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RenderError(f"{path}: invalid YAML{position}: {error.problem}") from None
    except yaml.YAMLError as error:
        raise RenderError(f"{path}: invalid YAML: {type(error).__name__}") from None
    finally:
        loader.dispose()


def _construct(loader: yaml.SafeLoader, node: yaml.Node, where: str) -> Any:
    try:
        return loader.construct_document(node)
    except _DuplicateKey as duplicate:
        line = f" (line {duplicate.line})" if duplicate.line else ""
        raise RenderError(f"{where}: key {duplicate.key!r} is given twice{line}") from None
    except (ValueError, LookupError, AttributeError) as error:
        # PyYAML's int, float, bool and timestamp constructors fail so (IndexError, KeyError
        # too) on a value that does not fit: `!!bool x`, `!!int ""`, `2020-13-45`. Their
        # message quotes the value, which may be a secret: not shown.
        raise RenderError(
            f"{where}: a value cannot be read as the number, boolean or date it is written as "
            f"({type(error).__name__}): quote it to keep it text"
        ) from None


class _UniqueKeys(yaml.constructor.SafeConstructor):
    """Refuses a key written twice in one mapping; merged keys (`<<: *base`) may be overridden."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # flatten_mapping (in super) deletes merge entries from this very list and prepends
        # the merged pairs to a new one: `explicit` keeps the keys written here.
        explicit = node.value
        mapping = super().construct_mapping(node, deep=deep)
        if len(mapping) < len(explicit) or node.value is not explicit:
            seen: set[Any] = set()
            for key_node, _ in explicit:
                key = self.construct_object(key_node)  # cached: the same object as above
                if key in seen:
                    written = key_node.value if isinstance(key_node, yaml.ScalarNode) else key
                    raise _DuplicateKey(written, key_node.start_mark.line + 1)
                seen.add(key)
        return cast("dict[Any, Any]", mapping)


_STRICT: dict[type[yaml.SafeLoader], type[yaml.SafeLoader]] = {}


def _strict(base: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    """`base` (libyaml's loader or the pure-Python one) with duplicate keys refused."""
    if base not in _STRICT:
        derived = type(f"Strict{base.__name__}", (_UniqueKeys, base), {})
        _STRICT[base] = cast("type[yaml.SafeLoader]", derived)
    return _STRICT[base]


class _MarkUnquoted(yaml.constructor.SafeConstructor):
    """Constructs plain scalars holding `${` as Unquoted (registered on derived classes)."""

    def construct_marked_str(self, node: yaml.ScalarNode) -> str:
        value = self.construct_yaml_str(node)
        # PyYAML gives a plain scalar style None, libyaml ''.
        return Unquoted(value) if not node.style and "${" in value else value


_MARKING: dict[type[yaml.SafeLoader], type[yaml.SafeLoader]] = {}


def _marking(base: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    """`_strict(base)` that also marks unquoted `${` scalars."""
    if base not in _MARKING:
        derived: Any = type(f"Marking{base.__name__}", (_MarkUnquoted, _strict(base)), {})
        derived.add_constructor("tag:yaml.org,2002:str", _MarkUnquoted.construct_marked_str)
        _MARKING[base] = cast("type[yaml.SafeLoader]", derived)
    return _MARKING[base]


def _inspect(path: str, text: str) -> None:
    """Depth and object sizes from the parser's events, before any node is built."""
    loader: Any = _Loader(text)  # PyYAML's parser methods carry no types
    measure = _Measure(text)
    try:
        index = 0
        document: _Document | None = None
        while (event := loader.get_event()) is not None:
            if isinstance(event, yaml.DocumentStartEvent):
                index += 1
                document = _Document(f"{path} document {index}", measure)
            elif document is not None:
                document.feed(event)
    finally:
        loader.dispose()


class _Measure:
    """Byte sizes of spans of the text, cheap when it is ASCII."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.ascii = text.isascii()

    def size(self, start: Any, end: Any) -> int:
        """Bytes from one mark (libyaml's or PyYAML's: both have `index`) to another."""
        first, last = int(start.index), int(end.index)
        return last - first if self.ascii else len(self.text[first:last].encode())


_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


class _Document:
    """One document's events: its depth, its size, and a `kind: List`'s item sizes."""

    def __init__(self, where: str, measure: _Measure) -> None:
        self.where, self.measure = where, measure
        self.depth = 0
        self.starts: list[Any] = []  # the marks where each open collection began
        self.root_children = 0  # keys and values of the top-level mapping, so far
        self.key: Any = None  # the top-level key whose value comes next
        self.is_list = False
        self.in_items = False
        self.items: list[int] = []  # sizes of a List's items

    def feed(self, event: yaml.Event) -> None:
        if isinstance(event, _OPEN):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _too_deep(self.where)
            self.starts.append(event.start_mark)
            if self.depth == 2 and self.key == "items":
                self.in_items = isinstance(event, yaml.SequenceStartEvent)
        elif isinstance(event, _CLOSE):
            self.depth -= 1
            start = self.starts.pop()
            self._ended(event, self.measure.size(start, event.end_mark))
        elif isinstance(event, yaml.NodeEvent):  # a scalar or an alias
            self._ended(event, self.measure.size(event.start_mark, event.end_mark))

    def _ended(self, event: yaml.Event, size: int) -> None:
        """A node at `self.depth` (its parent's depth) ended, `size` bytes long."""
        if self.depth == 0:
            self._root_ended(size)
        elif self.depth == 1:
            self._top_level_ended(event)
        elif self.depth == 2 and self.in_items:
            self.items.append(size)

    def _top_level_ended(self, event: yaml.Event) -> None:
        value = getattr(event, "value", None) if isinstance(event, yaml.ScalarEvent) else None
        if self.root_children % 2 == 0:
            self.key = value
        else:
            self.is_list = self.is_list or (self.key == "kind" and value == "List")
            self.in_items = False
            self.key = None
        self.root_children += 1

    def _root_ended(self, size: int) -> None:
        if size <= MAX_OBJECT_BYTES:
            return
        if not self.is_list:
            raise _too_large(self.where, size)
        for position, item in enumerate(self.items):
            if item > MAX_OBJECT_BYTES:
                raise _too_large(f"{self.where} items[{position}]", item)


def _is_list(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and data.get("kind") == "List"
        and isinstance(data.get("items"), list)
    )


def _too_deep(where: str) -> RenderError:
    return RenderError(f"{where}: nested more than {MAX_DEPTH} levels deep, which no object needs")


def _too_large(where: str, size: int) -> RenderError:
    return RenderError(
        f"{where}: is {size} bytes, above the limit of {MAX_OBJECT_BYTES} bytes per object "
        "that the API server stores: split it, or keep large data out of the manifest"
    )


def _check_size(root: yaml.Node, where: str) -> None:
    """Refuse documents that would be huge once aliases are expanded, before expanding them."""
    if (problem := expansion_problem(root, MAX_NODES, MAX_ALIASES)) is not None:
        raise RenderError(f"{where}: {problem}")


def _plain(value: Any, where: str, depth: int = 0) -> Any:
    """JSON-compatible data, as the API server would read it (timestamps as strings)."""
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise _too_deep(where)
        result = {_plain_key(k): _plain(v, where, depth + 1) for k, v in value.items()}
        if len(result) < len(value):
            _refuse_same_keys(value, where)
        return result
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            raise _too_deep(where)
        return [_plain(v, where, depth + 1) for v in value]
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        raise RenderError(f"{where}: binary values (!!binary) are not supported")
    if isinstance(value, set | frozenset | tuple):
        # The API server reads JSON: a set or an ordered map has no form it would store.
        raise RenderError(
            f"{where}: YAML sets and ordered maps (!!set, !!omap, !!pairs) are not supported; "
            "write a list or a mapping"
        )
    return value


def _plain_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return key if isinstance(key, str) else str(key)


def _refuse_same_keys(mapping: dict[Any, Any], where: str) -> None:
    """Two keys that differ in YAML (`1` and `'1'`) but not once the API server reads them."""
    seen: dict[str, Any] = {}
    for key in mapping:
        text = _plain_key(key)
        if text in seen:
            raise RenderError(f"{where}: keys {seen[text]!r} and {key!r} both read as {text!r}")
        seen[text] = key
