"""Reading one YAML configuration document with precise, one-line errors.

Every value is taken through a `Section`, which knows the file and the key path
it came from, so an error reads `FILE: targets[0].interval: ...`. Keys a
section does not know are refused with the closest valid key suggested.
"""

from __future__ import annotations

import datetime
import difflib
import math
import re
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gitopsd.errors import ConfigError
from gitopsd.yamlbounds import MAX_DEPTH, expansion_problem, first_too_deep

E = TypeVar("E", bound=Enum)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SIZE = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB|K|M|G)?")
# A unit table reads best packed, so it is not formatted (fmt: skip).
_SIZE_UNITS = {
    None: 1, "B": 1, "K": 1024, "KiB": 1024, "M": 1024**2, "MiB": 1024**2,
    "G": 1024**3, "GiB": 1024**3, "KB": 1000, "MB": 1000**2, "GB": 1000**3,
}  # fmt: skip
# Nodes with aliases expanded, and nodes reached again through an alias: far above any
# real file (100 targets sharing settings through a merge key make 1,897 and 1,287), far
# below what a merge-key bomb needs (537 bytes of `<<: [*a, *a, ...]` took 24 s of CPU).
MAX_NODES = 100_000
MAX_ALIASES = 10_000
# The longest duration any key accepts unless it says otherwise: finite and far beyond
# any sensible setting, so `99999999999d` is refused here instead of overflowing a
# timer at start, at SIGTERM or at the first fetch.
MAX_DURATION_SECONDS = 7 * 86400.0


def parse_duration(text: str) -> float:
    """Seconds in `30s`, `5m`, `1h30m`, `250ms`, `2d`; ValueError otherwise."""
    text = text.strip()
    if not text or _DURATION_PART.sub("", text):
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h)")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """`7d`, `1h`, `90s`: the largest unit that divides `seconds`, for messages."""
    for unit in ("d", "h", "m", "s"):
        count = seconds / _DURATION_UNITS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{seconds:g}s"


def parse_size(text: str) -> int:
    """Bytes in `4MiB`, `512KiB`, `1000000`; ValueError otherwise."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 4MiB, 512KiB)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing a key written twice in one mapping (PyYAML keeps the last).

    Also refuses what would crash or stall building the data: nesting deeper than
    MAX_DEPTH, alias bombs, and values that do not fit their tag.
    """

    _depth = 0  # collections open in the composer, which recurses once per level

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if not self.check_event(yaml.MappingStartEvent, yaml.SequenceStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                parser: Any = self  # PyYAML's parser methods carry no types
                raise yaml.composer.ComposerError(
                    None, None, _TOO_DEEP, parser.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            # Merge keys (`<<: *base`) may be overridden on purpose; only plain keys count.
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            if key_node.value in seen:
                line = key_node.start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key_node.value!r} is given twice (line {line})", None
                )
            seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)

    def construct_document(self, node: yaml.Node) -> Any:
        if (problem := expansion_problem(node, MAX_NODES, MAX_ALIASES)) is not None:
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)
        return super().construct_document(node)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, LookupError, AttributeError, TypeError, ArithmeticError) as exc:
            # PyYAML's int, float, bool and timestamp constructors fail so on a value that
            # does not fit (`!!float x`, `!!float ""`, `2024-02-30`). Their message quotes
            # the value, which may be a password written inline: not shown.
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"the value cannot be read as {_tag_kind(node.tag)} ({type(exc).__name__}): "
                "quote it to keep it text",
                node.start_mark,
            ) from exc

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        value = super().construct_yaml_int(node)
        # No setting needs more, and a larger one overflows float() in every check after.
        if abs(value) > _MAX_INT:
            raise yaml.constructor.ConstructorError(
                None, None, f"the number is larger than {_MAX_INT} (2^63 - 1)", node.start_mark
            )
        return value


_MAX_INT = 2**63 - 1
_TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep, which no configuration needs"
# The constructor looks int up by its tag, bound to the base class's function.
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


def _tag_kind(tag: str) -> str:
    kinds = {"int": "a number", "float": "a number", "bool": "a boolean", "timestamp": "a date"}
    return kinds.get(tag.rsplit(":", 1)[-1], f"its tag {tag}")


# What reading a YAML file can raise: the file, its encoding, its syntax; and its shape,
# from a loader that indexes into what it expects to be a mapping (the kubeconfig's).
FILE_ERRORS = (OSError, UnicodeDecodeError, yaml.YAMLError, TypeError, AttributeError)


def file_problem(exc: BaseException) -> str:
    """What went wrong reading a configuration file, in a few words for a one-line error."""
    if isinstance(exc, TypeError | AttributeError):
        return f"not the expected structure ({exc})"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if isinstance(exc, yaml.reader.ReaderError):
        # Its str() has two lines and no problem_mark; read_document tells the line.
        return f"not valid YAML (offset {exc.position}): {_reader_problem(exc)}"
    if isinstance(exc, yaml.YAMLError):
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return one_line(f"not valid YAML{line}: {problem}")
    return one_line(str(exc)) or type(exc).__name__


def _reader_problem(exc: yaml.reader.ReaderError) -> str:
    if exc.encoding != "unicode":  # a byte stream that did not decode
        return f"not {exc.encoding} text"
    return f"character #x{exc.character:04x} is not allowed in YAML text"


def one_line(text: str) -> str:
    """`text` with every run of whitespace, line breaks included, made one space."""
    # str.split() breaks on \r, \v, \f, \x1c-\x1f, \x85, \u2028 and \u2029 too.
    return " ".join(text.split())


def read_document(path: Path) -> Any:
    """The parsed YAML at `path` (safe loading only); ConfigError on any failure."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {file_problem(exc)}") from exc
    # The loader refuses deep nesting too, but only after PyYAML's slow scanner has read
    # up to 1,024 characters ahead of every open bracket; libyaml finds it at once.
    if (line := first_too_deep(text)) is not None:
        raise ConfigError(f"{path}: not valid YAML (line {line}): {_TOO_DEEP}")
    try:
        # _StrictLoader derives from SafeLoader: no arbitrary Python objects.
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.reader.ReaderError as exc:
        line, column = _line_and_column(text, exc.position)
        raise ConfigError(
            f"{path}: not valid YAML (line {line}, column {column}): {_reader_problem(exc)}"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {file_problem(exc)}") from exc


def _line_and_column(text: str, offset: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - start + 1


class Section:
    """One mapping of the document, its key path, and the keys it accepts."""

    def __init__(self, data: Any, *, file: Path, where: str, keys: set[str]) -> None:
        self.file = file
        self.where = where
        if not isinstance(data, dict):
            raise self.error(f"must be a mapping, not {_kind(data)}")
        self.data: dict[str, Any] = data
        for key in data:
            if not isinstance(key, str) or key not in keys:
                raise self.error(_unknown_key(key, keys), key=str(key))

    def error(self, message: str, *, key: str | None = None) -> ConfigError:
        """A ConfigError naming the file and the key path."""
        return ConfigError(f"{self.file}: {self._path(key)}: {message}")

    def _path(self, key: str | None) -> str:
        if key is None:
            return self.where or "top level"
        # A quoted key may hold a line break (`"a\nb": 1`): shown escaped, on one line.
        shown = key if key.isprintable() else repr(key)
        return f"{self.where}.{shown}" if self.where else shown

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(f"must be a string, not {_kind(value)}", key=key)
        if not str(value).strip():
            raise self.error("must not be empty", key=key)
        return str(value)

    def string(self, key: str, default: str | None = None) -> str | None:
        """Text that must be written as text: an unquoted `1.10` would silently become `1.1`."""
        value = self.data.get(key)
        if value is None or isinstance(value, str):
            return self.text(key, default)
        if isinstance(value, dict | list):
            raise self.error(f"must be a string, not {_kind(value)}", key=key)
        raise self.error(
            f"YAML reads the unquoted value as {_scalar_kind(value)} ({value}), not as text: "
            f'quote it, like {key}: "..."',
            key=key,
        )

    def required_text(self, key: str) -> str:
        value = self.text(key)
        if value is None:
            raise self.error("is required", key=key)
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(f"must be true or false, not {value!r}", key=key)
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(f"must be a number, not {_kind(value)}", key=key)
        if not math.isfinite(value):
            raise self.error(f"must be a finite number, not {value}", key=key)
        if value <= minimum:
            raise self.error(f"must be greater than {minimum:g}", key=key)
        return float(value)

    def integer(self, key: str, default: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(f"must be a whole number of at least 1, not {value!r}", key=key)
        return value

    def duration(
        self, key: str, default: float | None, *, maximum: float = MAX_DURATION_SECONDS
    ) -> float | None:
        """Seconds from `30s`, `5m`, `1h` (a bare number means seconds), at most `maximum`."""
        value = self.data.get(key)
        if value is None:
            return default
        try:
            seconds = float(value) if _is_number(value) else parse_duration(str(value))
        except ValueError as exc:
            raise self.error(str(exc), key=key) from None
        if math.isnan(seconds) or seconds <= 0:
            raise self.error(f"must be longer than zero, not {value}", key=key)
        if seconds > maximum:
            raise self.error(f"must be at most {format_duration(maximum)}, not {value}", key=key)
        return seconds

    def size(self, key: str, default: int) -> int:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(f"must be a finite size, not {value}", key=key)
        try:
            size = int(value) if _is_number(value) else parse_size(str(value))
        except ValueError as exc:
            raise self.error(str(exc), key=key) from None
        if size <= 0:
            raise self.error("must be larger than zero", key=key)
        return size

    def choice(self, key: str, enum: type[E], default: E) -> E:
        value = self.data.get(key)
        if value is None:
            return default
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in enum)
            raise self.error(f"must be one of {allowed}, not {value!r}", key=key) from None

    def path(self, key: str) -> Path | None:
        """A file path; a relative one is taken from the configuration file's folder."""
        value = self.text(key)
        if value is None:
            return None
        if _CONTROL.search(value):  # NUL: pathlib raises ValueError; a break: two-line errors
            raise self.error("must not contain control characters or line breaks", key=key)
        try:
            expanded = Path(value).expanduser()
        except RuntimeError:  # `~name/...` for a user this system does not know
            raise self.error(
                f"cannot expand {value!r}: no such user (write the path in full)", key=key
            ) from None
        return (self.file.parent / expanded).resolve()

    def section(self, key: str, keys: set[str]) -> Section | None:
        value = self.data.get(key)
        if value is None:
            return None
        return Section(value, file=self.file, where=self._path(key), keys=keys)

    def items(self, key: str) -> Iterator[tuple[str, Any]]:
        """(key path, item) for each item of the list at `key`."""
        value = self.data.get(key)
        if value is None:
            return
        if not isinstance(value, list):
            raise self.error(f"must be a list, not {_kind(value)}", key=key)
        for index, item in enumerate(value):
            yield f"{self._path(key)}[{index}]", item

    def strings(self, key: str) -> tuple[str, ...]:
        result = []
        for where, item in self.items(key):
            if not isinstance(item, str) or not item:
                raise ConfigError(f"{self.file}: {where}: must be a non-empty string")
            result.append(item)
        return tuple(result)


def _unknown_key(key: object, keys: set[str]) -> str:
    close = difflib.get_close_matches(str(key), sorted(keys), n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(sorted(keys))}"
    return f"unknown key{hint}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalar_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    return "a date" if isinstance(value, datetime.date) else type(value).__name__


def _kind(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), "empty" if value is None else type(value).__name__)
