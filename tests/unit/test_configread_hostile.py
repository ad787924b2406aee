"""Configuration files that broke the loader (found by the config fuzz target, or by hand).

Each must end in one ConfigError on one line that names the file, and the key path or
line where there is one: never a traceback, never a multi-line message.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gitopsd import configread
from gitopsd.config import load_config
from gitopsd.errors import ConfigError
from gitopsd.yamlbounds import MAX_DEPTH

TARGET = "targets:\n  - {name: web, repo: r, branch: main}\n"


def refusal(tmp_path: Path, content: str | bytes) -> str:
    """The one-line message loading `content` as the configuration file ends in."""
    path = tmp_path / "gitopsd.yaml"
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"{path}: "), message
    return message.removeprefix(f"{path}: ")


def test_a_control_character_is_named_on_one_line(tmp_path: Path) -> None:
    message = refusal(tmp_path, "targets:\x03\n")
    assert message == (
        "not valid YAML (line 1, column 9): character #x0003 is not allowed in YAML text"
    )


@pytest.mark.parametrize(
    ("text", "line", "kind"),
    [
        ("targets:\n  - name: web\n    repo: r\n    tag: 2024-02-30\n", 4, "a date"),
        ("targets:\n  - !!timestamp nope\n", 2, "a date"),
        ("targets: !!float nch\n", 1, "a number"),
        ("targets: !!float\n", 1, "a number"),
        ("targets: !!int ''\n", 1, "a number"),
        ("targets: !!bool maybe\n", 1, "a boolean"),
    ],
)
def test_a_value_that_does_not_fit_its_type_names_the_line(
    tmp_path: Path, text: str, line: int, kind: str
) -> None:
    message = refusal(tmp_path, text)
    assert message.startswith(f"not valid YAML (line {line}"), message
    assert f"cannot be read as {kind}" in message
    assert "quote it" in message


def test_a_value_that_does_not_fit_its_type_is_not_quoted(tmp_path: Path) -> None:
    # The value may be a password written inline by mistake.
    assert "hunter2" not in refusal(tmp_path, "targets: !!float hunter2\n")


DEEP = [
    "targets: " + "[" * 5_000,
    "targets: " + "{a: " * 2_000,
    "targets:\n" + "".join(" " * level + "-\n" for level in range(600)),
    "targets:\n" + "".join(" " * level + "a:\n" for level in range(600)),
]
DEEP_IDS = ["flow-sequences", "flow-mappings", "block-sequences", "block-mappings"]


@pytest.mark.parametrize("text", DEEP, ids=DEEP_IDS)
def test_deep_nesting_is_refused_naming_the_line(tmp_path: Path, text: str) -> None:
    message = refusal(tmp_path, text)
    assert re.fullmatch(
        rf"not valid YAML \(line \d+\): nested more than {MAX_DEPTH} levels deep, "
        "which no configuration needs",
        message,
    ), message


@pytest.mark.parametrize("text", DEEP, ids=DEEP_IDS)
def test_the_loader_refuses_deep_nesting_that_libyaml_did_not_read(
    tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As when libyaml stops at a syntax error that PyYAML reads past, or is not installed.
    monkeypatch.setattr(configread, "first_too_deep", lambda text: None)
    message = refusal(tmp_path, text)
    assert re.fullmatch(
        rf"not valid YAML \(line \d+\): nested more than {MAX_DEPTH} levels deep, "
        "which no configuration needs",
        message,
    ), message


def test_nesting_up_to_the_limit_is_read(tmp_path: Path) -> None:
    nested = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    message = refusal(tmp_path, f"targets: {nested}\n")
    assert message == "targets[0]: must be a mapping, not a list"


def test_a_key_with_a_line_break_is_quoted_in_the_key_path(tmp_path: Path) -> None:
    message = refusal(tmp_path, '"bad\\nkey": 1\n' + TARGET)
    assert message.startswith("'bad\\nkey': unknown key;"), message


@pytest.mark.parametrize("separator", ["\\r", "\\u2028", "\\x85", "\\x1c", "\\f"])
def test_a_nested_key_with_any_line_separator_stays_on_one_line(
    tmp_path: Path, separator: str
) -> None:
    refusal(tmp_path, f'http: {{"a{separator}b": 1}}\n' + TARGET)


def test_an_unknown_user_in_a_path_names_the_key(tmp_path: Path) -> None:
    message = refusal(tmp_path, "state_dir: ~nosuchuser/x\n" + TARGET)
    assert message == (
        "state_dir: cannot expand '~nosuchuser/x': no such user (write the path in full)"
    )


@pytest.mark.parametrize("path", ["a\\0b", "gitopsd.yaml/a\\nb", "a\\u2028b", "a\\tb"])
def test_a_control_character_in_a_path_names_the_key(tmp_path: Path, path: str) -> None:
    # `gitopsd.yaml/...`: under a file, so the state-directory check quoted the path.
    message = refusal(tmp_path, f'state_dir: "{path}"\n' + TARGET)
    assert message == "state_dir: must not contain control characters or line breaks"


@pytest.mark.parametrize("name", ["A\\nB", "A=B", "1A", "A B"])
def test_a_secret_variable_must_be_a_variable_name(tmp_path: Path, name: str) -> None:
    # The name is quoted, unescaped, in the error a pass would raise when it is unset.
    message = refusal(tmp_path, f'http: {{port: 1}}\nwebhook: {{secret_env: "{name}"}}\n' + TARGET)
    assert message == "webhook.secret_env: must be a variable name: letters, digits and _"


@pytest.mark.parametrize("value", ["0x" + "f" * 1_100, "9" * 400], ids=["hex", "decimal"])
@pytest.mark.parametrize(
    "text",
    ["interval: N\n" + TARGET, "targets: [{name: web, repo: r, branch: main, burst: N}]\n"],
    ids=["duration", "integer"],
)
def test_a_number_too_large_for_a_float_names_the_line(
    tmp_path: Path, value: str, text: str
) -> None:
    # Found while fixing the above: float() or isfinite() of such an int overflows.
    message = refusal(tmp_path, text.replace("N", value))
    assert message == (
        "not valid YAML (line 1): the number is larger than 9223372036854775807 (2^63 - 1)"
    )


def test_a_merge_key_bomb_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    # Found while fixing the above: merge keys expand aliases at construction; seven such
    # lines (537 bytes) took 24 s of CPU.
    lines = ["a0: &a0 {k: v}"] + [
        f"a{n}: &a{n} {{<<: [{', '.join([f'*a{n - 1}'] * 10)}]}}" for n in range(1, 7)
    ]
    text = "x:\n" + "".join(f"  {line}\n" for line in lines) + TARGET
    message = refusal(tmp_path, text)
    assert message == "not valid YAML (line 1): more than 10000 aliases"


def test_a_hundred_targets_sharing_settings_are_read(tmp_path: Path) -> None:
    first = "  - &base {name: t0, repo: r0, branch: main, interval: 1m, namespace: web, qps: 5}\n"
    others = "".join(f"  - {{<<: *base, name: t{n}, repo: r{n}}}\n" for n in range(1, 100))
    path = tmp_path / "gitopsd.yaml"
    path.write_text("targets:\n" + first + others)
    assert [target.name for target in load_config(path).targets] == [f"t{n}" for n in range(100)]
