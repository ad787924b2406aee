"""Variable substitution after rendering (issue 12): pure, on plain data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gitopsd.errors import RenderError
from gitopsd.renderconfig import RenderSettings, SubstituteSource
from gitopsd.renderers.substitute import (
    Variables,
    parse_variables,
    read_variables,
    substitute,
)


def _vars(**values: str) -> Variables:
    return Variables(values, dict.fromkeys(values, "substitute"))


def _config_map(**data: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${ENV}", "prod"),
        ("a-${ENV}-b-${ENV}", "a-prod-b-prod"),
        ("${MISSING:=fallback}", "fallback"),
        ("${MISSING=fallback}", "fallback"),
        ("${ENV:=fallback}", "prod"),
        ("$${ENV}", "${ENV}"),
        ("$${MISSING}", "${MISSING}"),
        ("$ENV {ENV} $", "$ENV {ENV} $"),
        ("${MISSING:=}", ""),
    ],
)
def test_values_are_substituted_with_defaults_and_escapes(text: str, expected: str) -> None:
    result = substitute(_config_map(key=text), _vars(ENV="prod"), "x")
    assert result["data"]["key"] == expected


def test_nested_strings_in_lists_and_maps_are_substituted_and_the_input_is_untouched() -> None:
    manifest = {
        "kind": "X",
        "metadata": {"name": "n"},
        "spec": {"list": ["${A}", 3, {"k": "${A}"}]},
    }
    result = substitute(manifest, _vars(A="1"), "x")
    assert result["spec"] == {"list": ["1", 3, {"k": "1"}]}
    assert manifest["spec"]["list"][0] == "${A}"


def test_a_missing_variable_refuses_naming_it_and_the_object() -> None:
    with pytest.raises(RenderError) as caught:
        substitute(_config_map(key="${NOPE}"), _vars(), "out document 2 (ConfigMap c)")
    assert str(caught.value).startswith(
        "out document 2 (ConfigMap c): variable NOPE is not defined"
    )


def test_an_object_can_opt_out() -> None:
    manifest = _config_map(key="${NOPE}")
    manifest["metadata"]["annotations"] = {"gitopsd.io/substitute": "disabled"}
    assert substitute(manifest, _vars(), "x") is manifest


def test_variables_files_read_as_env_lines_or_yaml() -> None:
    assert parse_variables("# c\nA=1\nexport B='two'\n\nC=x=y\n", "f", "t") == {
        "A": "1",
        "B": "two",
        "C": "x=y",
    }
    assert parse_variables("A: 1\nB: true\nC:\n", "f", "t") == {"A": "1", "B": "true", "C": ""}
    with pytest.raises(RenderError, match="f: must map variable names"):
        parse_variables("- a\n", "f", "t")


def test_a_secret_value_never_appears_in_a_parse_error() -> None:
    with pytest.raises(RenderError) as caught:
        parse_variables("A=1\nnot a line hunter2\n", "secret.env", "t")
    assert "hunter2" not in str(caught.value)


def test_sources_are_read_in_order_and_inline_values_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tmp_path / "a.env"
    first.write_text("A=file\nB=file\n")
    monkeypatch.setenv("B", "env")
    settings = RenderSettings(
        substitute=(("C", "inline"), ("A", "inline")),
        substitute_from=(
            SubstituteSource(file=first),
            SubstituteSource(env="B"),
            SubstituteSource(file=tmp_path / "absent", optional=True),
        ),
    )
    found = read_variables(settings, "t")
    assert dict(found.values) == {"A": "inline", "B": "env", "C": "inline"}
    changed = read_variables(RenderSettings(substitute=(("A", "x"),)), "t")
    assert found.digest() != changed.digest()


def test_a_missing_required_source_is_named(tmp_path: Path) -> None:
    settings = RenderSettings(substitute_from=(SubstituteSource(file=tmp_path / "gone.env"),))
    with pytest.raises(RenderError, match=r"target t: substitute_from file .*gone.env does not"):
        read_variables(settings, "t")
    settings = RenderSettings(substitute_from=(SubstituteSource(env="GITOPSD_TEST_UNSET_VAR"),))
    with pytest.raises(RenderError, match="GITOPSD_TEST_UNSET_VAR is not set"):
        read_variables(settings, "t")
