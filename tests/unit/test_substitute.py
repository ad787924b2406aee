"""Variable substitution after rendering (issue 12): pure, on plain data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gitopsd.errors import RenderError
from gitopsd.manifestread import read_documents
from gitopsd.model import SourceFile
from gitopsd.renderconfig import RenderSettings, SubstituteSource
from gitopsd.renderers.quoting import quote_hints
from gitopsd.renderers.substitute import (
    DISABLE_ANNOTATION,
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
    assert substitute(manifest, _vars(), "x") == manifest


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
    fix = r"does not exist: create it, or mark the entry `optional: true`"
    with pytest.raises(RenderError, match=r"target t: substitute_from file .*gone.env " + fix):
        read_variables(settings, "t")
    settings = RenderSettings(substitute_from=(SubstituteSource(env="GITOPSD_TEST_UNSET_VAR"),))
    with pytest.raises(RenderError, match="GITOPSD_TEST_UNSET_VAR is not set"):
        read_variables(settings, "t")


def _parsed(text: str) -> dict[str, Any]:
    file = SourceFile("web.yaml", text.encode())
    return dict(next(iter(read_documents(file, mark_unquoted=True)))[1])


def _exact_types(value: Any) -> set[type]:
    if isinstance(value, dict):
        return {type(k) for k in value} | {t for v in value.values() for t in _exact_types(v)}
    if isinstance(value, list):
        return {t for v in value for t in _exact_types(v)}
    return {type(value)}


UNQUOTED = """\
kind: Deployment
metadata: {name: web}
spec:
  replicas: ${REPLICAS}
  paused: ${PAUSED:=false}
  ratio: ${RATIO}
  name: web-${REPLICAS}
  port: "${PORT}"
  single: '${PORT}'
  literal: $${PORT}
  ${KEY}: kept
"""


def test_an_unquoted_reference_is_typed_as_yaml_types_it_and_a_quoted_one_stays_text() -> None:
    variables = _vars(REPLICAS="3", PORT="8080", RATIO="0.5", KEY="k")
    result = substitute(_parsed(UNQUOTED), variables, "web.yaml")
    assert result["spec"] == {
        "replicas": 3,
        "paused": False,
        "ratio": 0.5,
        "name": "web-3",
        "port": "8080",
        "single": "8080",
        "literal": "${PORT}",
        "${KEY}": "kept",  # keys are not substituted
    }
    # The marker never leaves substitution: plain str everywhere (yaml refuses subclasses).
    assert str in _exact_types(result) and not _exact_types(result) - {str, int, float, bool}
    assert yaml.safe_load(yaml.safe_dump(result)) == result


def test_an_opted_out_object_keeps_its_text_and_loses_the_marker() -> None:
    parsed = _parsed(
        UNQUOTED.replace(
            "{name: web}", "{name: web, annotations: {" + DISABLE_ANNOTATION + ": disabled}}"
        )
    )
    result = substitute(parsed, _vars(), "web.yaml")
    assert result["spec"]["replicas"] == "${REPLICAS}"
    assert not _exact_types(result) - {str}
    yaml.safe_dump(result)


def test_kustomize_output_keeps_as_text_what_the_sources_quoted(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "web.yaml").write_text(UNQUOTED)
    (tmp_path / "other.yml").write_text("env:\n  - value: '${ONLY_QUOTED}'\n")
    (tmp_path / "broken.yaml").write_text("a: [${\n")  # no YAML: skipped
    # kustomize writes every one of them unquoted.
    output = _parsed(
        "spec:\n  replicas: ${REPLICAS}\n  port: ${PORT}\n  single: ${PORT}\n"
        "  value: ${ONLY_QUOTED}\n  elsewhere: ${ONLY_QUOTED}\n  new: ${NEW}\n"
    )
    hinted = quote_hints(tmp_path).apply(output)
    result = substitute(hinted, _vars(REPLICAS="3", PORT="8080", ONLY_QUOTED="1", NEW="2"), "out")
    assert result["spec"] == {
        "replicas": 3,
        "port": "8080",
        "single": "8080",
        "value": "1",
        "elsewhere": "1",  # quoted wherever the sources hold it
        "new": 2,  # not in the sources (kustomize made it): typed, as Flux does
    }
